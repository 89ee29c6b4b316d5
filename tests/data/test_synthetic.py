"""The synthetic pedestrian tree: layout, names the Market-1501 parser accepts, the split plan,
determinism, the cache, and errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image

from metricattack.data import load_dataset
from metricattack.data.synthetic import writer as synthetic
from metricattack.data.synthetic import SyntheticConfig, cached_synthetic, contact_sheet, generate
from metricattack.system.cache import cache_root
from metricattack.errors import InputError

TINY = SyntheticConfig(train_ids=6, test_ids=4, cameras=3, height=32, width=16, seed=1)
NAME = re.compile(r"([-\d]+)_c(\d)")
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synthetic") / "tiny", TINY, progress=False)


def parsed(folder: Path) -> list[tuple[int, int]]:
    """(pid, 1-based camera) of every image in a folder, with the Market-1501 regex."""
    names = []
    for path in sorted(folder.iterdir()):
        match = NAME.search(path.name)
        assert match is not None, path.name
        names.append((int(match.group(1)), int(match.group(2))))
    return names


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tree_layout_and_counts(tiny_tree):
    assert sorted(p.name for p in tiny_tree.iterdir()) == sorted([*SPLITS, "synthetic.json"])
    counts = {split: len(list((tiny_tree / split).iterdir())) for split in SPLITS}
    assert counts == synthetic.expected_counts(TINY)
    assert 8 * TINY.train_ids <= counts["bounding_box_train"] <= 10 * TINY.train_ids
    assert counts["query"] == 2 * TINY.test_ids
    test_gallery = sum(pid > 0 for pid, _ in parsed(tiny_tree / "bounding_box_test"))
    assert 2 * 2 * TINY.test_ids <= test_gallery <= 2 * 3 * TINY.test_ids  # 2 images in each of 2-3 cameras
    info = json.loads((tiny_tree / "synthetic.json").read_text())
    assert {k: info[k] for k in ("train_ids", "test_ids", "cameras", "seed")} == {"train_ids": 6, "test_ids": 4, "cameras": 3, "seed": 1}
    with Image.open(next((tiny_tree / "query").iterdir())) as image:
        assert image.size == (16, 32) and image.mode == "RGB" and image.format == "JPEG"


def test_names_parse_and_pids_in_range(tiny_tree):
    train = parsed(tiny_tree / "bounding_box_train")
    query = parsed(tiny_tree / "query")
    gallery = parsed(tiny_tree / "bounding_box_test")
    assert {pid for pid, _ in train} == set(range(1, 7))
    assert {pid for pid, _ in query} == set(range(7, 11))
    assert {pid for pid, _ in gallery} == {-1, 0, *range(7, 11)}
    assert all(1 <= cam <= 3 for _, cam in train + query + gallery)
    assert all(name.startswith("-1_c") for name in (p.name for p in (tiny_tree / "bounding_box_test").iterdir()) if name[0] == "-")
    # every identity in 2-3 of the 3 cameras; training images spread evenly over them
    train_cams = defaultdict(Counter)
    for pid, cam in train:
        train_cams[pid][cam] += 1
    for per_camera in train_cams.values():
        assert 2 <= len(per_camera) <= 3 and max(per_camera.values()) - min(per_camera.values()) <= 1


def test_queries_have_cross_camera_matches(tiny_tree):
    query = parsed(tiny_tree / "query")
    gallery = Counter(parsed(tiny_tree / "bounding_box_test"))
    for pid in {pid for pid, _ in query}:
        query_cams = [cam for p, cam in query if p == pid]
        gallery_cams = {cam for (p, cam) in gallery if p == pid}
        assert len(set(query_cams)) == 2 and set(query_cams) <= gallery_cams
        assert all(gallery[(pid, cam)] == 2 for cam in gallery_cams)
        for cam in query_cams:
            assert gallery_cams - {cam}, f"query {pid} in camera {cam} has no cross-camera match"


def test_market_parser_reads_the_tree(tiny_tree):
    data = load_dataset("market1501", tiny_tree)
    assert data.num_train_pids == 6 and len(data.query) == 8
    assert {s.pid for s in data.gallery} == {0, 7, 8, 9, 10}  # junk dropped, distractors kept


def test_same_seed_same_bytes_any_worker_count(tiny_tree, tmp_path):
    again = generate(tmp_path / "again", TINY, progress=False, workers=2)
    assert file_hashes(again) == file_hashes(tiny_tree)


def test_different_seed_different_images(tiny_tree, tmp_path):
    other = generate(tmp_path / "other", SyntheticConfig(**{**TINY.__dict__, "seed": 2}), progress=False)
    ours, theirs = file_hashes(tiny_tree), file_hashes(other)
    shared = set(ours) & set(theirs) - {"synthetic.json"}
    assert sum(ours[name] == theirs[name] for name in shared) == 0
    assert ours != theirs


def test_generate_refuses_existing_content(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        generate(tmp_path / "file", TINY, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        generate(tmp_path / "full", TINY, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]  # no staging folder left behind
    (tmp_path / "empty").mkdir()
    assert (generate(tmp_path / "empty", TINY, progress=False) / "query").is_dir()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cameras": 7}, "--cameras"),
        ({"cameras": 1}, "--cameras"),
        ({"train_ids": 0}, "--train-ids"),
        ({"test_ids": -1}, "--test-ids"),
        ({"height": 8}, "--height"),
        ({"width": 15}, "--width"),
        ({"palette_size": 1}, "palette_size"),
        ({"occlusion": 1.5}, "occlusion"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_config_raises(options, message):
    with pytest.raises(InputError, match=message):
        SyntheticConfig(**options)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("METRICATTACK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "metricattack"


def test_cached_synthetic_generates_once(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path))
    first = cached_synthetic(TINY, progress=False)
    assert first.parent == tmp_path / "synthetic" and (first / "synthetic.json").is_file()
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("regenerated a cached tree"))
    assert cached_synthetic(TINY, progress=False) == first
    assert SyntheticConfig(**{**TINY.__dict__, "seed": 9}).key != TINY.key


def test_cached_synthetic_uses_a_tree_another_process_finished(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path))
    real_generate = synthetic.generate

    def lose_the_race(out_dir, config, progress):
        real_generate(out_dir, config, progress=False)  # the other process renames its tree first
        raise InputError(f"--out {out_dir}: already exists and is not an empty folder")

    monkeypatch.setattr(synthetic, "generate", lose_the_race)
    root = cached_synthetic(TINY, progress=False)
    assert (root / "synthetic.json").is_file()


def test_contact_sheet(tiny_tree, tmp_path):
    path = contact_sheet(tiny_tree, cameras=3, out=tmp_path / "sheet.png")
    with Image.open(path) as sheet:
        assert sheet.format == "PNG" and sheet.height > 6 * 32 and sheet.width > 3 * 16
