"""MSMT17, V1 and V2 layouts: images listed in text files (``relative/path.jpg pid``), camera from the name."""

from __future__ import annotations

from pathlib import Path

from metricattack.system.atomic import read_text
from metricattack.data.base import ReIDData, Sample
from metricattack.data.filenames import find_root
from metricattack.errors import InputError

# release folder -> (train images, test images), in torchreid's order of preference
LAYOUTS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
NUM_CAMERAS = 15
EXPECTED_LINE = "'<pid>/<pid>_<index>_<camera>_<...>.jpg <pid>', like '0000/0000_000_01_0303morning_0015_0.jpg 0'"


def parse_list_line(line: str) -> tuple[str, int, int] | None:
    """(relative path, pid, 1-based camera) of one list line, or None if it is malformed."""
    fields = line.split()
    if len(fields) != 2:
        return None
    relative, pid = fields
    name_fields = Path(relative).name.split("_")
    if not pid.isdecimal() or len(name_fields) < 3 or not name_fields[2].isdecimal():
        return None
    return relative, int(pid), int(name_fields[2])


def read_list(list_path: Path, image_dir: Path) -> list[Sample]:
    """The samples listed in ``list_path``, paths under ``image_dir``; blank lines are skipped."""
    if not list_path.is_file():
        raise InputError(f"{list_path}: list file not found (expected lines {EXPECTED_LINE})")
    samples = []
    for number, line in enumerate(read_text(list_path, str(list_path), f"lines {EXPECTED_LINE}").splitlines(), 1):
        if not line.strip():
            continue
        parsed = parse_list_line(line)
        if parsed is None:
            raise InputError(f"{list_path}:{number}: malformed line {line.strip()!r} (expected {EXPECTED_LINE})")
        relative, pid, camera = parsed
        if not 1 <= camera <= NUM_CAMERAS:
            raise InputError(f"{list_path}:{number}: camera {camera} out of range (expected 1-{NUM_CAMERAS})")
        samples.append(Sample(str(image_dir / relative), pid, camera - 1))
    if not samples:
        raise InputError(f"{list_path}: no images listed (expected lines {EXPECTED_LINE})")
    return samples


def find_layout(root: Path) -> tuple[Path, Path, Path]:
    """(base folder holding the lists, train image folder, test image folder) of a V1 or V2 tree."""
    for release, (train_name, test_name) in LAYOUTS.items():
        base = find_root(root, (release,), train_name)
        if (base / train_name).is_dir():
            if not (base / test_name).is_dir():
                raise InputError(f"{base / test_name}: folder not found (expected beside {train_name}/)")
            return base, base / train_name, base / test_name
    raise InputError(
        f"{root}: no MSMT17 folders found (expected train/ and test/, or mask_train_v2/ and mask_test_v2/,"
        f" in the root or in {' or '.join(LAYOUTS)}/)"
    )


def load_msmt17(root: Path, combine_val: bool = False) -> ReIDData:
    """MSMT17 at ``root``: train = list_train (+ list_val if ``combine_val``), query and gallery from the test lists."""
    base, train_dir, test_dir = find_layout(Path(root))
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
