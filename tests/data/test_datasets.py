"""Every data set format on tiny fixture trees with real file names, and the malformed cases."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from metricattack.data import DATASETS, dataset_names, load_dataset
from metricattack.data.base import ImageDataset, Sample, collate_images
from metricattack.errors import InputError

HEIGHT, WIDTH = 8, 4


def write_image(path: Path, colour: tuple[int, int, int] = (10, 200, 30), size: tuple[int, int] = (HEIGHT, WIDTH)) -> Path:
    """A tiny real image (JPEG or PNG by suffix) of ``size`` = (H, W)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), colour).save(path)
    return path


def write_tree(root: Path, names: dict[str, list[str]]) -> Path:
    """Folders of images: {folder: [file names]}."""
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            write_image(root / folder / name)
    return root


def pids_cams(samples: list[Sample]) -> list[tuple[int, int]]:
    return sorted((s.pid, s.camid) for s in samples)


def all_samples(data) -> list[Sample]:
    return data.train + data.query + data.gallery


# --- Market-1501 --------------------------------------------------------------------------------
MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c6s3_009401_02.jpg",
                           "0000_c1s1_000001_00.jpg", "-1_c3s1_000002_00.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c4s2_000051_00.jpg", "-1_c2s1_000101_00.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0001_c1s1_001051_02.jpg", "0003_c5s3_065187_03.jpg",
                          "1501_c6s4_000001_01.jpg", "0000_c3s1_000001_00.jpg", "0000_c3s1_000002_00.jpg",
                          "-1_c1s1_000401_03.jpg"],
}  # fmt: skip


def test_market1501_drops_junk_and_keeps_distractors_like_torchreid(tmp_path):
    write_tree(tmp_path / "Market-1501-v15.09.15", MARKET)
    data = load_dataset("market1501", tmp_path)
    assert data.name == "market1501" and data.root == tmp_path / "Market-1501-v15.09.15"
    assert pids_cams(data.train) == [(0, 0), (2, 0), (2, 1), (7, 5)]  # torchreid keeps 0 <= pid <= 1501
    assert pids_cams(data.query) == [(1, 0), (3, 3)]
    assert pids_cams(data.gallery) == [(0, 2), (0, 2), (1, 0), (1, 1), (3, 4), (1501, 5)]
    assert data.num_train_pids == 3  # not relabelled: the pids are those of the file names
    assert all(isinstance(s.path, str) and Path(s.path).is_file() for s in all_samples(data))
    assert not any("-1_" in Path(s.path).name for s in all_samples(data))


def test_market1501_prefers_the_release_folder_like_torchreid(tmp_path):
    write_tree(tmp_path, {"bounding_box_train": ["0009_c1s1_000001_00.jpg"], "query": ["0009_c2s1_000001_00.jpg"],
                          "bounding_box_test": ["0009_c3s1_000001_00.jpg"]})  # fmt: skip
    assert pids_cams(load_dataset("market1501", tmp_path).train) == [(9, 0)]
    write_tree(tmp_path / "Market-1501-v15.09.15", MARKET)
    assert len(load_dataset("market1501", tmp_path).train) == 4


def test_a_parent_folder_named_like_an_image_does_not_confuse_parsing(tmp_path):
    data = load_dataset("market1501", write_tree(tmp_path / "x1_c2" / "9_c3", MARKET))
    assert pids_cams(data.query) == [(1, 0), (3, 3)]
    assert pids_cams(data.train) == [(0, 0), (2, 0), (2, 1), (7, 5)]


def remove_folder(folder: str) -> Callable[[Path], None]:
    return lambda root: shutil.rmtree(root / folder)


def empty_folder(folder: str) -> Callable[[Path], None]:
    return lambda root: [path.unlink() for path in (root / folder).iterdir()]


def add_image(folder: str, name: str) -> Callable[[Path], None]:
    return lambda root: write_image(root / folder / name)


@pytest.mark.parametrize(
    "change,message",
    [
        (remove_folder("query"), r"m[/\\]query: folder not found"),
        (remove_folder("bounding_box_train"), r"bounding_box_train: folder not found"),
        (remove_folder("bounding_box_test"), r"bounding_box_test: folder not found"),
        (empty_folder("query"), r"m[/\\]query: no images found"),
        (empty_folder("bounding_box_test"), r"bounding_box_test: no images found"),
        (add_image("query", "person.jpg"), r"person\.jpg: file name does not parse \(expected <pid>_c<camera>_"),
        (add_image("query", "c1_0001.jpg"), r"c1_0001\.jpg: file name does not parse"),
        (add_image("query", "-2_c1s1_000001_00.jpg"), r"-2_c1s1_000001_00\.jpg: file name does not parse"),
        (add_image("bounding_box_train", "0001_cXs1_000001_00.jpg"), r"0001_cXs1_000001_00\.jpg: file name does not"),
        (add_image("query", "0001_c7s1_000001_00.jpg"), r"0001_c7s1_000001_00\.jpg: camera 7 out of range \(expected 1-6\)"),
        (add_image("query", "0001_c0s1_000001_00.jpg"), r"camera 0 out of range \(expected 1-6\)"),
        (add_image("query", "0001_c12s1_000001_00.jpg"), r"camera 12 out of range"),
        (add_image("bounding_box_test", "1502_c1s1_000001_00.jpg"), r"1502_c1s1_000001_00\.jpg: person id 1502 out of range"),
    ],
)
def test_malformed_market_trees_give_one_line_errors(tmp_path, change, message):
    root = write_tree(tmp_path / "m", MARKET)
    change(root)
    with pytest.raises(InputError, match=message) as info:
        load_dataset("market1501", root)
    assert "\n" not in str(info.value)


# --- DukeMTMC-reID and CUHK03-NP ------------------------------------------------------------------
DUKE = {
    "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c6_f0061234.jpg", "0005_c8_f0000001.jpg"],
    "query": ["0010_c7_f0010001.jpg"],
    "bounding_box_test": ["0010_c3_f0010101.jpg", "0011_c1_f0000002.jpg", "0000_c5_f0000003.jpg"],
}


def test_dukemtmc_cameras_1_to_8(tmp_path):
    write_tree(tmp_path / "DukeMTMC-reID", DUKE)
    data = load_dataset("dukemtmc", tmp_path)
    assert data.name == "dukemtmc" and data.root == tmp_path / "DukeMTMC-reID"
    assert pids_cams(data.train) == [(1, 1), (1, 5), (5, 7)]
    assert pids_cams(data.query) == [(10, 6)]
    assert pids_cams(data.gallery) == [(0, 4), (10, 2), (11, 0)]
    assert pids_cams(load_dataset("dukemtmc", tmp_path / "DukeMTMC-reID").train) == [(1, 1), (1, 5), (5, 7)]


def test_dukemtmc_camera_9_is_out_of_range(tmp_path):
    write_tree(tmp_path, {**DUKE, "query": ["0010_c9_f0010001.jpg"]})
    with pytest.raises(InputError, match=r"0010_c9_f0010001\.jpg: camera 9 out of range \(expected 1-8\)"):
        load_dataset("dukemtmc", tmp_path)


def cuhk03_names(first_pid: int) -> dict[str, list[str]]:
    """CUHK03-NP names; ``first_pid`` tells detected and labeled trees apart."""
    train, test = f"{first_pid:04d}", f"{first_pid + 700:04d}"
    return {
        "bounding_box_train": [f"{train}_c1_1.png", f"{train}_c2_6.png", f"{train}_c2_7.png"],
        "query": [f"{test}_c1_1.png"],
        "bounding_box_test": [f"{test}_c2_6.png", f"{first_pid + 701:04d}_c1_2.png"],
    }


@pytest.mark.parametrize("release", ["", "cuhk03-np"])
def test_cuhk03_detected_and_labeled(tmp_path, release):
    write_tree(tmp_path / release / "detected", cuhk03_names(1))
    write_tree(tmp_path / release / "labeled", cuhk03_names(2))
    detected, labeled = load_dataset("cuhk03-detected", tmp_path), load_dataset("cuhk03-labeled", tmp_path)
    assert (detected.name, labeled.name) == ("cuhk03-detected", "cuhk03-labeled")
    assert detected.root == tmp_path / release / "detected"
    assert pids_cams(detected.train) == [(1, 0), (1, 1), (1, 1)]
    assert pids_cams(detected.query) == [(701, 0)]
    assert pids_cams(detected.gallery) == [(701, 1), (702, 0)]
    assert pids_cams(labeled.train) == [(2, 0), (2, 1), (2, 1)]
    assert pids_cams(labeled.gallery) == [(702, 1), (703, 0)]
    assert all(s.path.endswith(".png") for s in all_samples(labeled))


def test_cuhk03_errors(tmp_path):
    write_tree(tmp_path / "detected", {**cuhk03_names(1), "query": ["0701_c3_1.png"]})
    with pytest.raises(InputError, match=r"0701_c3_1\.png: camera 3 out of range \(expected 1-2\)"):
        load_dataset("cuhk03-detected", tmp_path)
    with pytest.raises(InputError, match=r"labeled: folder not found \(expected CUHK03-NP's labeled/"):
        load_dataset("cuhk03-labeled", tmp_path)
    (tmp_path / "labeled").mkdir()
    with pytest.raises(InputError, match=r"labeled[/\\]bounding_box_train: folder not found"):
        load_dataset("cuhk03-labeled", tmp_path)


# --- MSMT17 -----------------------------------------------------------------------------------------
MSMT_LISTS = {  # list file -> [(train or test image folder, relative path, pid)]
    "list_train.txt": [("train", "0000/0000_000_01_0303morning_0015_0.jpg", 0),
                       ("train", "0000/0000_001_01_0303morning_0016_1.jpg", 0),
                       ("train", "0001/0001_012_15_0303noon_0001_1.jpg", 1)],
    "list_val.txt": [("train", "0002/0002_000_03_0303morning_0016_0.jpg", 2)],
    "list_query.txt": [("test", "0000/0000_000_05_0303morning_0015_0.jpg", 0)],
    "list_gallery.txt": [("test", "0000/0000_001_02_0303morning_0020_0.jpg", 0),
                         ("test", "0003/0003_005_14_0303afternoon_0020_0.jpg", 3)],
}  # fmt: skip


def msmt_tree(root: Path, train: str = "train", test: str = "test") -> Path:
    """An MSMT17 tree with the image folders named ``train`` and ``test`` (V1) or as given (V2)."""
    folders = {"train": train, "test": test}
    for list_name, rows in MSMT_LISTS.items():
        for folder, relative, _ in rows:
            write_image(root / folders[folder] / relative)
        (root / list_name).write_text("".join(f"{relative} {pid}\n" for _, relative, pid in rows))
    return root


@pytest.mark.parametrize(
    "release,train,test",
    [("MSMT17_V1", "train", "test"), ("", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2"),
     ("", "mask_train_v2", "mask_test_v2")],
)  # fmt: skip
def test_msmt17_v1_and_v2_layouts(tmp_path, release, train, test):
    msmt_tree(tmp_path / release, train, test)
    data = load_dataset("msmt17", tmp_path)
    assert data.name == "msmt17" and data.root == tmp_path / release
    assert pids_cams(data.train) == [(0, 0), (0, 0), (1, 14)]
    assert pids_cams(data.query) == [(0, 4)]
    assert pids_cams(data.gallery) == [(0, 1), (3, 13)]
    assert all(Path(s.path).is_file() for s in all_samples(data))
    assert Path(data.query[0].path) == tmp_path / release / test / "0000/0000_000_05_0303morning_0015_0.jpg"
    combined = load_dataset("msmt17", tmp_path, combine_val=True)
    assert pids_cams(combined.train) == [(0, 0), (0, 0), (1, 14), (2, 2)]
    assert combined.query == data.query and combined.gallery == data.gallery


@pytest.mark.parametrize(
    "line,message",
    [
        ("not-a-line", r"list_query\.txt:2: malformed line 'not-a-line' \(expected '<pid>/"),
        ("0000/0000_000_05_0303morning_0015_0.jpg", r"list_query\.txt:2: malformed line"),
        ("0000/0000_000_05_0303morning_0015_0.jpg 0 extra", r"list_query\.txt:2: malformed line"),
        ("0000/0000_000_05_0303morning_0015_0.jpg zero", r"list_query\.txt:2: malformed line"),
        ("0000/0000_000_05_0303morning_0015_0.jpg -1", r"list_query\.txt:2: malformed line"),
        ("0000_dir/0000.jpg 0", r"list_query\.txt:2: malformed line '0000_dir/0000\.jpg 0'"),
        ("0000/0000_000_16_0303morning_0015_0.jpg 0", r"list_query\.txt:2: camera 16 out of range \(expected 1-15\)"),
        ("0000/0000_000_00_0303morning_0015_0.jpg 0", r"list_query\.txt:2: camera 0 out of range"),
    ],
)
def test_msmt17_bad_list_line_names_the_file_and_line(tmp_path, line, message):
    root = msmt_tree(tmp_path / "MSMT17_V1")
    (root / "list_query.txt").write_text(f"0000/0000_000_05_0303morning_0015_0.jpg 0\n{line}\n")
    with pytest.raises(InputError, match=message):
        load_dataset("msmt17", tmp_path)


def test_msmt17_missing_pieces(tmp_path):
    with pytest.raises(InputError, match=r"no MSMT17 folders found \(expected train/ and test/"):
        load_dataset("msmt17", tmp_path)
    root = msmt_tree(tmp_path / "MSMT17_V1")
    (root / "list_val.txt").unlink()
    assert len(load_dataset("msmt17", tmp_path).train) == 3  # list_val is only read with combine_val
    with pytest.raises(InputError, match=r"list_val\.txt: list file not found"):
        load_dataset("msmt17", tmp_path, combine_val=True)
    (root / "list_gallery.txt").write_text("\n")
    with pytest.raises(InputError, match=r"list_gallery\.txt: no images listed"):
        load_dataset("msmt17", tmp_path)
    shutil.rmtree(root / "test")
    with pytest.raises(InputError, match=r"MSMT17_V1[/\\]test: folder not found"):
        load_dataset("msmt17", tmp_path)


# --- the folder format: a tree or a CSV ----------------------------------------------------------
def test_folder_tree_with_any_camera_number(tmp_path):
    names = {"train": ["5_c12_a.jpg", "6_c1_b.png", "-1_c1_junk.jpg"], "query": ["5_c3_q.jpg"],
             "gallery": ["5_c4_g.jpg", "0_c1_x.jpg", "-1_c2_y.jpg"]}  # fmt: skip
    data = load_dataset("folder", write_tree(tmp_path, names))
    assert data.name == "folder" and data.root == tmp_path
    assert pids_cams(data.train) == [(5, 11), (6, 0)]
    assert pids_cams(data.query) == [(5, 2)]
    assert pids_cams(data.gallery) == [(0, 0), (5, 3)]


def test_folder_without_train_is_evaluation_only(tmp_path):
    data = load_dataset("folder", write_tree(tmp_path, {"query": ["1_c1_q.jpg"], "gallery": ["1_c2_g.jpg"]}))
    assert data.train == [] and pids_cams(data.query) == [(1, 0)] and pids_cams(data.gallery) == [(1, 1)]


@pytest.mark.parametrize(
    "names,message",
    [
        ({"train": ["1_c1_t.jpg"], "query": ["1_c1_q.jpg"]}, r"expected query/ and gallery/ folders \(train/ optional\)"),
        ({"train": ["1_c1_t.jpg"], "gallery": ["1_c1_g.jpg"]}, r"expected query/ and gallery/ folders"),
        ({"query": ["1_c0_q.jpg"], "gallery": ["1_c1_g.jpg"]}, r"1_c0_q\.jpg: camera 0 out of range \(expected a camera"),
        ({"query": ["1_q.jpg"], "gallery": ["1_c1_g.jpg"]}, r"1_q\.jpg: file name does not parse"),
        ({"query": ["1_c1_q.jpg"], "gallery": []}, r"gallery: no images found"),
    ],
)
def test_malformed_folder_trees(tmp_path, names, message):
    write_tree(tmp_path, names)
    with pytest.raises(InputError, match=message):
        load_dataset("folder", tmp_path)


def csv_tree(root: Path, rows: str) -> Path:
    """Images a.jpg ... e.jpg under root/imgs and root/list.csv with ``rows`` after the header."""
    for name in "abcde":
        write_image(root / "imgs" / f"{name}.jpg")
    (root / "list.csv").write_text("path,pid,camid,split\n" + rows)
    return root / "list.csv"


def test_folder_csv_list(tmp_path):
    rows = "".join(f"imgs/{row}\n" for row in ("a.jpg,4,0,train", "b.jpg,9,1,query", "c.jpg,9,0,gallery", "d.jpg,0,3,gallery",
                                                 "e.jpg,-1,2,gallery"))  # fmt: skip
    csv_path = csv_tree(tmp_path, rows)
    for root in (tmp_path, csv_path):
        data = load_dataset("folder", root)
        assert data.root == tmp_path
        assert pids_cams(data.train) == [(4, 0)] and pids_cams(data.query) == [(9, 1)]
        assert pids_cams(data.gallery) == [(0, 3), (9, 0)]  # junk row (-1) dropped
        assert Path(data.gallery[0].path) == tmp_path / "imgs" / "c.jpg"


def test_folder_csv_list_in_another_folder_and_without_train(tmp_path):
    csv_path = tmp_path / "lists" / "mine.csv"
    csv_path.parent.mkdir()
    csv_tree(tmp_path, "")
    csv_path.write_text("path,pid,camid,split\n../imgs/b.jpg,9,1,query\n../imgs/c.jpg,9,0,gallery\n")
    data = load_dataset("folder", csv_path)
    assert data.train == [] and Path(data.query[0].path).resolve() == tmp_path / "imgs" / "b.jpg"


@pytest.mark.parametrize(
    "rows,message",
    [
        ("imgs/a.jpg,4,0,valid\n", r"list\.csv:2: expected a split in train, query, gallery, got 'valid'"),
        ("imgs/b.jpg,9,1,query\nimgs/a.jpg,four,0,gallery\n", r"list\.csv:3: pid and camid must be integers"),
        ("imgs/a.jpg,4,-1,gallery\n", r"list\.csv:2: expected pid >= -1 and camid >= 0"),
        ("imgs/a.jpg,-2,0,gallery\n", r"list\.csv:2: expected pid >= -1"),
        ("imgs/a.jpg,4,0\n", r"list\.csv:2: expected 4 fields"),
        ("imgs/a.jpg,4,0,query,extra\n", r"list\.csv:2: expected 4 fields"),
        ("imgs/zzz.jpg,4,0,query\n", r"list\.csv:2: image '.*zzz\.jpg' not found"),
        ("imgs/b.jpg,9,1,query\n", r"list\.csv: no gallery rows"),
        ("imgs/a.jpg,4,0,train\nimgs/c.jpg,9,0,gallery\n", r"list\.csv: no query rows"),
    ],
)
def test_malformed_csv_rows_name_the_line(tmp_path, rows, message):
    csv_path = csv_tree(tmp_path, rows)
    with pytest.raises(InputError, match=message):
        load_dataset("folder", csv_path)


def test_csv_with_a_wrong_header(tmp_path):
    csv_path = csv_tree(tmp_path, "")
    csv_path.write_text("file,id,cam,split\nimgs/a.jpg,4,0,query\n")
    with pytest.raises(InputError, match=r"list\.csv: expected the header path,pid,camid,split"):
        load_dataset("folder", tmp_path)


# --- the registry -------------------------------------------------------------------------------------
def test_registry_names():
    expected = ["market1501", "dukemtmc", "msmt17", "cuhk03-detected", "cuhk03-labeled", "folder"]
    assert dataset_names() == expected and list(DATASETS) == expected


def test_unknown_data_set_missing_root_and_unknown_option(tmp_path):
    with pytest.raises(InputError, match=r"unknown data set 'viper' \(expected one of market1501, dukemtmc, msmt17, cuhk03"):
        load_dataset("viper", tmp_path)
    with pytest.raises(InputError, match=r"nowhere: data root not found"):
        load_dataset("market1501", tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"data set market1501 takes no option combine_val \(it takes: none\)"):
        load_dataset("market1501", tmp_path, combine_val=True)


# --- reading images -----------------------------------------------------------------------------------
def test_image_dataset_returns_images_in_unit_range(tmp_path):
    path = write_image(tmp_path / "0001_c1_a.png", colour=(255, 0, 51))
    dataset = ImageDataset([Sample(str(path), 1, 0), Sample(str(path), 2, 3)])
    image, pid, camid, index = dataset[1]
    assert len(dataset) == 2 and (pid, camid, index) == (2, 3, 1)
    assert image.shape == (3, HEIGHT, WIDTH) and image.dtype == torch.float32
    assert torch.equal(image[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]))
    assert 0 <= image.min() and image.max() <= 1
    resized = ImageDataset([Sample(str(path), 1, 0)], size=(16, 6))[0][0]
    assert resized.shape == (3, 16, 6) and torch.allclose(resized[:, 5, 3], torch.tensor([1.0, 0.0, 0.2]))
    images, pids, camids, indices = collate_images([dataset[0], dataset[1]])
    assert images.shape == (2, 3, HEIGHT, WIDTH) and pids.tolist() == [1, 2] and indices.tolist() == [0, 1]


def test_unreadable_image_names_the_file_when_read(tmp_path):
    write_tree(tmp_path, {"query": [], "gallery": ["1_c1_g.jpg"]})
    (tmp_path / "query" / "0001_c1_bad.jpg").write_bytes(b"not a jpeg at all")
    data = load_dataset("folder", tmp_path)  # parsing reads names, not pixels
    assert pids_cams(data.query) == [(1, 0)]
    with pytest.raises(InputError, match=r"0001_c1_bad\.jpg: cannot read image"):
        ImageDataset(data.query)[0]


def test_collate_rejects_mixed_sizes():
    batch = [(torch.zeros(3, 8, 4), 1, 0, 0), (torch.zeros(3, 6, 4), 1, 0, 1)]
    with pytest.raises(InputError, match=r"different sizes \(6x4, 8x4\).*--image-size H W"):
        collate_images(batch)
