"""Synthetic pedestrians: the tree's layout and counts, determinism, the cache and bad options."""

from __future__ import annotations

import hashlib
import re

import pytest

from metricattack.data import load_dataset
from metricattack.data.synthetic import SyntheticConfig, cached_synthetic, contact_sheet, generate, plan_shots
from metricattack.errors import InputError

CONFIG = SyntheticConfig(train_ids=6, test_ids=4, cameras=3, height=32, width=16, seed=5)
NAME = re.compile(r"^([-\d]+)_c(\d)s1_\d{6}_00\.jpg$")


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "tree", CONFIG, progress=False)


def test_tree_has_the_planned_images_with_parseable_names(tree):
    plan = plan_shots(CONFIG)
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        files = sorted(p.name for p in (tree / split).iterdir())
        assert len(files) == sum(s.split == split for s in plan)
        for name in files:
            match = NAME.match(name)
            assert match, name
            pid, camera = int(match.group(1)), int(match.group(2))
            assert 1 <= camera <= CONFIG.cameras
            if split == "bounding_box_train":
                assert 1 <= pid <= CONFIG.train_ids
            elif split == "query":
                assert CONFIG.train_ids < pid <= CONFIG.train_ids + CONFIG.test_ids
            else:
                assert pid in (-1, 0) or CONFIG.train_ids < pid <= CONFIG.train_ids + CONFIG.test_ids
    gallery_pids = [int(NAME.match(p.name).group(1)) for p in (tree / "bounding_box_test").iterdir()]
    assert 0 in gallery_pids and -1 in gallery_pids  # distractors and junk, like Market-1501


def test_market_loader_reads_it_back_with_the_right_counts(tree):
    data = load_dataset("market1501", tree)
    plan = plan_shots(CONFIG)
    assert len(data.train) == sum(s.split == "bounding_box_train" for s in plan)
    assert len(data.query) == 2 * CONFIG.test_ids  # one query in each of two cameras per test identity
    assert len(data.gallery) == sum(s.split == "bounding_box_test" and s.pid != -1 for s in plan)
    assert data.num_train_pids == CONFIG.train_ids
    for query in data.query:  # every query has a gallery match in another camera
        assert any(g.pid == query.pid and g.camid != query.camid for g in data.gallery)


def test_same_seed_same_bytes_other_seed_other_bytes(tree, tmp_path):
    again = generate(tmp_path / "again", CONFIG, progress=False)
    assert digest(again) == digest(tree)
    other = generate(tmp_path / "other", SyntheticConfig(**{**CONFIG.__dict__, "seed": 6}), progress=False)
    assert digest(other) != digest(tree)


def test_cache_reuses_the_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path / "cache"))
    first = cached_synthetic(CONFIG, progress=False)
    stamp = (first / "synthetic.json").stat().st_mtime_ns
    second = cached_synthetic(CONFIG, progress=False)
    assert first == second and (second / "synthetic.json").stat().st_mtime_ns == stamp
    assert first.parent == tmp_path / "cache" / "synthetic"


@pytest.mark.parametrize(
    "options,message",
    [
        ({"cameras": 7}, "--cameras must be between 2 and 6"),
        ({"train_ids": 0}, "--train-ids must be at least 1"),
        ({"height": 8}, "--height must be at least 16"),
        ({"train_ids": 1500, "test_ids": 200}, "at most 1501"),
    ],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        generate(tmp_path / "x", SyntheticConfig(**options), progress=False)


def test_refuses_an_existing_file_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(InputError, match="taken: already exists"):
        generate(tmp_path / "taken", CONFIG, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_contact_sheet_is_a_grid_of_identities_by_cameras(tree, tmp_path):
    from PIL import Image

    path = contact_sheet(tree, tmp_path / "sheet.png", cameras=CONFIG.cameras)
    with Image.open(path) as sheet:
        assert sheet.width >= CONFIG.cameras * CONFIG.width and sheet.height >= CONFIG.train_ids * CONFIG.height
