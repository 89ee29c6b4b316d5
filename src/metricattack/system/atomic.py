"""File helpers: atomic writes (a file appears whole or not at all) and checked reads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from metricattack.errors import InputError, first_line


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def read_text(path: str | Path, label: str, expected: str) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or non-UTF-8 file is a one-line InputError naming ``label``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{label}: not found (expected {expected})") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a folder (expected {expected})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 text (byte {exc.start}; expected {expected})") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read ({exc.strerror or exc.__class__.__name__}; expected {expected})") from None
    except ValueError as exc:  # a path holding a NUL byte
        raise InputError(f"{label}: not a usable path ({exc}; expected {expected})") from None


def read_document(path: Path, parse: Callable[[str], object], errors: tuple[type[Exception], ...], label: str, expected: str):
    """Read and parse a text file; a missing file or a parse error is a one-line InputError naming ``label``."""
    text = read_text(path, label, expected)
    try:
        return parse(text)
    except errors as exc:
        raise InputError(f"{label}: not valid ({first_line(exc)}; expected {expected})") from None


def folder_problem(path: str | Path) -> str | None:
    """Why files cannot be written into the folder ``path`` (created if missing), or None if they can.

    The nearest existing ancestor must be a folder we can create files in; that is probed with a
    temporary file (``os.access`` says yes to root even where writing fails), which leaves nothing.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file (expected a folder)"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file (expected a folder)"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write in {existing} ({exc.strerror or exc.__class__.__name__})"
    return None
