"""MSMT17 (V1 and V2 layouts): images listed in text files, camera taken from the file name."""

from __future__ import annotations

from pathlib import Path

from metricattack.data.base import ReIDData, Sample
from metricattack.data.filenames import find_root
from metricattack.errors import InputError

LAYOUTS = (("train", "test"), ("mask_train_v2", "mask_test_v2"))  # V1, V2
NUM_CAMERAS = 15


def read_list(list_path: Path, image_dir: Path) -> list[Sample]:
    """Lines ``relative/path.jpg pid``; camera from the name's third field (0000_000_01_...: camera 1)."""
    if not list_path.is_file():
        raise InputError(f"{list_path}: list file not found (expected lines 'path pid')")
    samples = []
    for number, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            relative, pid = fields[0], int(fields[1])
            camera = int(Path(relative).name.split("_")[2])
        except (IndexError, ValueError):
            raise InputError(
                f"{list_path}:{number}: malformed line {line.strip()!r} (expected 'pid/pid_xxx_<camera>_....jpg pid')"
            ) from None
        if not 1 <= camera <= NUM_CAMERAS:
            raise InputError(f"{list_path}:{number}: camera {camera} out of range (expected 1-{NUM_CAMERAS})")
        samples.append(Sample(str(image_dir / relative), pid, camera - 1))
    if not samples:
        raise InputError(f"{list_path}: no images listed")
    return samples


def load_msmt17(root: Path, combine_val: bool = False) -> ReIDData:
    """MSMT17: train = list_train (+ list_val with ``combine_val``), query and gallery from the test folder."""
    root = Path(root)
    for train_name, test_name in LAYOUTS:
        base = find_root(root, ("MSMT17_V1", "MSMT17_V2", "MSMT17"), train_name)
        if (base / train_name).is_dir():
            break
    else:
        raise InputError(f"{root}: no MSMT17 folders found (expected train/ and test/, or mask_train_v2/ and mask_test_v2/)")
    train_dir, test_dir = base / train_name, base / test_name
    train = read_list(base / "list_train.txt", train_dir)
    if combine_val:
        train += read_list(base / "list_val.txt", train_dir)
    return ReIDData(
        name="msmt17",
        root=base,
        train=train,
        query=read_list(base / "list_query.txt", test_dir),
        gallery=read_list(base / "list_gallery.txt", test_dir),
    )
