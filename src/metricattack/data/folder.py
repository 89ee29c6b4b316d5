"""A user's own data: ``ROOT/{train,query,gallery}/<pid>_c<cam>_<anything>.<ext>``, or a CSV list.

Folders: the camera in the name is 1-based (any positive number), pid -1 is junk (dropped), pid 0
marks distractors (kept), as in Market-1501. CSV (``ROOT`` is the .csv file, or ``ROOT/list.csv``):
header ``path,pid,camid,split``, path relative to the CSV's folder, camid 0-based, split one of
train/query/gallery; rows with pid -1 are dropped like junk images. Without train the data set is
for evaluation only; query and gallery are required.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from metricattack.system.atomic import read_text
from metricattack.data.base import ReIDData, Sample
from metricattack.data.filenames import parse_folder
from metricattack.errors import InputError

SPLITS = ("train", "query", "gallery")
CSV_COLUMNS = ("path", "pid", "camid", "split")
CSV_NAME = "list.csv"


def parse_csv_row(row: dict[str | None, str | None], folder: Path) -> Sample | None:
    """The sample of one CSV row (None for junk, pid -1); ValueError naming what is wrong."""
    if None in row or None in row.values():
        raise ValueError(f"expected 4 fields, got {[v for v in row.values() if v is not None]}")
    try:
        pid, camid = int(row["pid"]), int(row["camid"])
    except ValueError:
        raise ValueError(f"pid and camid must be integers, got pid={row['pid']!r} camid={row['camid']!r}") from None
    if pid < -1 or camid < 0:
        raise ValueError(f"expected pid >= -1 and camid >= 0 (0-based), got pid={pid} camid={camid}")
    if row["split"] not in SPLITS:
        raise ValueError(f"expected a split in {', '.join(SPLITS)}, got {row['split']!r}")
    path = folder / row["path"]
    if not row["path"] or not path.is_file():
        raise ValueError(f"image {str(path)!r} not found (paths are relative to the CSV's folder)")
    return None if pid == -1 else Sample(str(path), pid, camid)


def read_csv(csv_path: Path) -> dict[str, list[Sample]]:
    """Samples per split from a CSV with the header ``path,pid,camid,split``."""
    splits: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    text = read_text(csv_path, str(csv_path), f"a CSV list with the header {','.join(CSV_COLUMNS)}")
    with io.StringIO(text.removeprefix("\ufeff"), newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise InputError(f"{csv_path}: expected the header {','.join(CSV_COLUMNS)}, got {reader.fieldnames}")
        try:
            for row in reader:
                sample = parse_csv_row(row, csv_path.parent)
                if sample is not None:
                    splits[row["split"]].append(sample)
        except (ValueError, csv.Error) as exc:
            raise InputError(f"{csv_path}:{reader.line_num}: {exc}") from None
    for split in ("query", "gallery"):
        if not splits[split]:
            raise InputError(f"{csv_path}: no {split} rows (expected query and gallery images; train is optional)")
    return splits


def load_folder(root: Path) -> ReIDData:
    """Split folders with Market-style names (any camera number), or a CSV list (``root`` or ``root/list.csv``)."""
    root = Path(root)
    csv_path = root if root.suffix.lower() == ".csv" else root / CSV_NAME
    if csv_path.is_file():
        return ReIDData("folder", csv_path.parent, **read_csv(csv_path))
    if not (root / "query").is_dir() or not (root / "gallery").is_dir():
        raise InputError(f"{root}: expected query/ and gallery/ folders (train/ optional), or a {CSV_NAME} file")
    train = parse_folder(root / "train") if (root / "train").is_dir() else []
    return ReIDData("folder", root, train, parse_folder(root / "query"), parse_folder(root / "gallery"))
