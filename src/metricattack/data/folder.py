"""A user's own data: ``ROOT/{train,query,gallery}/<pid>_c<cam>_<anything>.<ext>``, or a CSV list."""

from __future__ import annotations

import csv
from pathlib import Path

from metricattack.data.base import ReIDData, Sample
from metricattack.data.filenames import parse_folder
from metricattack.errors import InputError

SPLITS = ("train", "query", "gallery")
CSV_COLUMNS = ("path", "pid", "camid", "split")


def read_csv(csv_path: Path) -> dict[str, list[Sample]]:
    """Rows ``path,pid,camid,split`` (path relative to the CSV's folder, camid 0-based)."""
    splits: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise InputError(f"{csv_path}: expected the header {','.join(CSV_COLUMNS)}, got {reader.fieldnames}")
        for number, row in enumerate(reader, 2):
            try:
                pid, camid = int(row["pid"]), int(row["camid"])
            except (TypeError, ValueError):
                raise InputError(f"{csv_path}:{number}: pid and camid must be integers, got {row}") from None
            if row["split"] not in splits or camid < 0 or not row["path"]:
                raise InputError(f"{csv_path}:{number}: expected a path, camid >= 0 and a split in {SPLITS}, got {row}")
            splits[row["split"]].append(Sample(str(csv_path.parent / row["path"]), pid, camid))
    return splits


def load_folder(root: Path) -> ReIDData:
    """Folders per split with Market-style names (any camera number), or a CSV file (root or root/list.csv)."""
    root = Path(root)
    csv_path = root if root.suffix == ".csv" else root / "list.csv"
    if csv_path.is_file():
        splits = read_csv(csv_path)
        for split in ("query", "gallery"):
            if not splits[split]:
                raise InputError(f"{csv_path}: no {split} rows (expected query and gallery images)")
        return ReIDData("folder", csv_path.parent, splits["train"], splits["query"], splits["gallery"])
    train = parse_folder(root / "train", None, keep_distractors=False) if (root / "train").is_dir() else []
    return ReIDData(
        name="folder",
        root=root,
        train=train,
        query=parse_folder(root / "query", None, keep_distractors=False),
        gallery=parse_folder(root / "gallery", None, keep_distractors=True),
    )
