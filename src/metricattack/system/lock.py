"""A lock on an output folder: one process writes into a folder at a time.

The lock is ``flock`` on ``FOLDER/.metricattack.lock``, which holds the owner's pid for the message.
The kernel drops a flock when its process dies, so a lock file left by a killed run is stale by
construction and is simply taken over.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metricattack.errors import InputError

LOCK_NAME = ".metricattack.lock"


def _holder_pid(fd: int) -> str:
    """The pid written in an open lock file (or '?' while its owner has not written it yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 32).decode("ascii", "replace").strip() or "?"


def busy_error(folder: Path, pid: str, label: str) -> InputError:
    """The one-line refusal for a folder another process holds."""
    return InputError(
        f"{label} {folder}: another metricattack process (pid {pid}) is writing into this folder "
        f"(wait for it to finish, or choose another {label})"
    )


def check_unlocked(folder: str | Path, label: str = "--out") -> None:
    """Raise the refusal now if a live process holds ``folder``'s lock (a quick look; ``folder_lock`` decides)."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise busy_error(Path(folder), _holder_pid(fd), label) from None
    finally:
        os.close(fd)


@contextmanager
def folder_lock(folder: str | Path, label: str = "--out") -> Iterator[Path]:
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block; refuse if a live process holds it.

    On exit the lock file is removed, and the folder too if this call created it and nothing was written.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder_pid(fd)
            os.close(fd)
            raise busy_error(folder, pid, label) from None
        try:  # the previous holder may have removed the file between our open and our flock: then retry
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    try:
        yield folder
    finally:
        os.unlink(path)  # while still holding the lock, so nobody can hold a lock on the removed file
        os.close(fd)
        if created and not any(folder.iterdir()):
            folder.rmdir()
