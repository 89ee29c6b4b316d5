"""Every data set format on tiny fixture trees with real file names, and the malformed cases."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from metricattack.data import dataset_names, load_dataset
from metricattack.data.base import ImageDataset, Sample, collate_images
from metricattack.errors import InputError


def write_image(path: Path, size=(8, 4), colour=(10, 200, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), colour).save(path)


def market_tree(root: Path, names: dict[str, list[str]]) -> Path:
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            write_image(root / folder / name)
    return root


MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c6s3_009401_02.jpg",
                           "0000_c1s1_000001_00.jpg", "-1_c3s1_000002_00.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c4s2_000051_00.jpg"],
    "bounding_box_test": ["0001_c2s1_000301_01.jpg", "0001_c1s1_001051_02.jpg", "0003_c5s3_065187_03.jpg",
                          "0000_c3s1_000001_00.jpg", "-1_c1s1_000401_03.jpg"],
}  # fmt: skip


def pids_cams(samples):
    return sorted((s.pid, s.camid) for s in samples)


def test_market1501_drops_junk_and_keeps_gallery_distractors(tmp_path):
    data = load_dataset("market1501", market_tree(tmp_path / "Market-1501-v15.09.15", MARKET).parent)
    assert pids_cams(data.train) == [(2, 0), (2, 1), (7, 5)]
    assert pids_cams(data.query) == [(1, 0), (3, 3)]
    assert pids_cams(data.gallery) == [(0, 2), (1, 0), (1, 1), (3, 4)]
    assert data.num_train_pids == 2
    assert all(Path(s.path).is_file() for s in data.train + data.query + data.gallery)


def test_a_parent_folder_named_like_an_image_does_not_confuse_parsing(tmp_path):
    data = load_dataset("market1501", market_tree(tmp_path / "x1_c2", MARKET))
    assert pids_cams(data.query) == [(1, 0), (3, 3)]


def test_dukemtmc_cameras_1_to_8(tmp_path):
    names = {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0005_c8_f0000001.jpg"],
        "query": ["0010_c7_f0010001.jpg"],
        "bounding_box_test": ["0010_c3_f0010101.jpg", "0011_c1_f0000002.jpg"],
    }
    data = load_dataset("dukemtmc", market_tree(tmp_path / "DukeMTMC-reID", names).parent)
    assert pids_cams(data.train) == [(1, 1), (5, 7)]
    assert pids_cams(data.query) == [(10, 6)]
    names["query"] = ["0010_c9_f0010001.jpg"]
    market_tree(tmp_path / "bad", names)
    with pytest.raises(InputError, match=r"0010_c9_f0010001\.jpg: camera 9 out of range \(expected 1-8\)"):
        load_dataset("dukemtmc", tmp_path / "bad")


@pytest.mark.parametrize("kind", ["detected", "labeled"])
def test_cuhk03_np(tmp_path, kind):
    names = {
        "bounding_box_train": ["0001_c1_1.png", "0001_c2_2.png"],
        "query": ["0700_c1_1.png"],
        "bounding_box_test": ["0700_c2_3.png", "0701_c1_1.png"],
    }
    market_tree(tmp_path / "cuhk03-np" / kind, names)
    data = load_dataset(f"cuhk03-{kind}", tmp_path)
    assert data.name == f"cuhk03-{kind}"
    assert pids_cams(data.gallery) == [(700, 1), (701, 0)]


def msmt_tree(root: Path, train: str, test: str) -> Path:
    lists = {
        "list_train.txt": [(train, "0000/0000_000_01_0303morning_0015_0.jpg", 0), (train, "0001/0001_012_15_0303noon_0001_1.jpg", 1)],
        "list_val.txt": [(train, "0002/0002_000_03_0303morning_0016_0.jpg", 2)],
        "list_query.txt": [(test, "0000/0000_000_05_0303morning_0015_0.jpg", 0)],
        "list_gallery.txt": [(test, "0000/0000_001_02_0303morning_0020_0.jpg", 0), (test, "0003/0003_005_14_0303afternoon_0020_0.jpg", 3)],
    }  # fmt: skip
    for list_name, rows in lists.items():
        for folder, relative, _ in rows:
            write_image(root / folder / relative)
        (root / list_name).write_text("".join(f"{relative} {pid}\n" for _, relative, pid in rows))
    return root


@pytest.mark.parametrize("subfolder,train,test", [("MSMT17_V1", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2")])
def test_msmt17_layouts(tmp_path, subfolder, train, test):
    msmt_tree(tmp_path / subfolder, train, test)
    data = load_dataset("msmt17", tmp_path)
    assert pids_cams(data.train) == [(0, 0), (1, 14)]
    assert pids_cams(load_dataset("msmt17", tmp_path, combine_val=True).train) == [(0, 0), (1, 14), (2, 2)]
    assert pids_cams(data.query) == [(0, 4)]
    assert pids_cams(data.gallery) == [(0, 1), (3, 13)]
    assert all(Path(s.path).is_file() for s in data.gallery)


def test_msmt17_bad_list_line_names_the_file_and_line(tmp_path):
    root = msmt_tree(tmp_path / "MSMT17_V1", "train", "test")
    (root / "list_query.txt").write_text("0000/0000_000_05_0303morning_0015_0.jpg 0\nnot-a-line\n")
    with pytest.raises(InputError, match=r"list_query\.txt:2: malformed line 'not-a-line'"):
        load_dataset("msmt17", tmp_path)


def test_folder_tree_with_any_camera_number(tmp_path):
    names = {"train": ["5_c12_a.jpg", "6_c1_b.png"], "query": ["5_c3_q.jpg"], "gallery": ["5_c4_g.jpg", "0_c1_x.jpg"]}
    data = load_dataset("folder", market_tree(tmp_path, names))
    assert pids_cams(data.train) == [(5, 11), (6, 0)]
    assert pids_cams(data.gallery) == [(0, 0), (5, 3)]


def test_folder_without_train_is_evaluation_only(tmp_path):
    data = load_dataset("folder", market_tree(tmp_path, {"query": ["1_c1_q.jpg"], "gallery": ["1_c2_g.jpg"]}))
    assert data.train == [] and len(data.query) == 1


def test_folder_csv_list(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / "imgs" / name)
    (tmp_path / "list.csv").write_text("path,pid,camid,split\nimgs/a.jpg,4,0,train\nimgs/b.jpg,9,1,query\nimgs/c.jpg,9,0,gallery\n")
    data = load_dataset("folder", tmp_path)
    assert pids_cams(data.train) == [(4, 0)] and pids_cams(data.query) == [(9, 1)]
    assert Path(data.gallery[0].path) == tmp_path / "imgs" / "c.jpg"
    (tmp_path / "list.csv").write_text("path,pid,camid,split\nimgs/a.jpg,4,0,valid\n")
    with pytest.raises(InputError, match=r"list\.csv:2: expected a path, camid >= 0 and a split"):
        load_dataset("folder", tmp_path / "list.csv")


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda root: __import__("shutil").rmtree(root / "query"), r"query: folder not found"),
        (lambda root: [p.unlink() for p in (root / "query").iterdir()], r"query: no images found"),
        (lambda root: write_image(root / "query" / "person.jpg"), r"person\.jpg: file name does not parse"),
        (lambda root: write_image(root / "query" / "0001_c7s1_000001_00.jpg"), r"camera 7 out of range \(expected 1-6\)"),
    ],
)
def test_malformed_market_trees_give_one_line_errors(tmp_path, change, message):
    root = market_tree(tmp_path / "m", MARKET)
    change(root)
    with pytest.raises(InputError, match=message) as info:
        load_dataset("market1501", root)
    assert "\n" not in str(info.value)


def test_unknown_data_set_and_missing_root(tmp_path):
    with pytest.raises(InputError, match="unknown data set 'viper'.*market1501"):
        load_dataset("viper", tmp_path)
    with pytest.raises(InputError, match="nowhere: data root not found"):
        load_dataset("market1501", tmp_path / "nowhere")
    assert "folder" in dataset_names()


def test_image_dataset_returns_images_in_unit_range(tmp_path):
    write_image(tmp_path / "0001_c1_a.jpg", size=(8, 4), colour=(255, 0, 128))
    sample = Sample(str(tmp_path / "0001_c1_a.jpg"), 1, 0)
    image, pid, camid, index = ImageDataset([sample])[0]
    assert image.shape == (3, 8, 4) and image.dtype == torch.float32
    assert (pid, camid, index) == (1, 0, 0)
    assert 0 <= image.min() and image.max() <= 1 and image[0].mean() > 0.9
    assert ImageDataset([sample], size=(16, 6))[0][0].shape == (3, 16, 6)


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "0001_c1_bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match=r"0001_c1_bad\.jpg: cannot read image"):
        ImageDataset([Sample(str(tmp_path / "0001_c1_bad.jpg"), 1, 0)])[0]


def test_collate_rejects_mixed_sizes():
    batch = [(torch.zeros(3, 8, 4), 1, 0, 0), (torch.zeros(3, 6, 4), 1, 0, 1)]
    with pytest.raises(InputError, match="different sizes.*--image-size"):
        collate_images(batch)
