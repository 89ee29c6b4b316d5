"""Ctrl-C (SIGINT) and SIGTERM: stop with one line and the conventional exit code, not a traceback."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


HELD_MESSAGE = "metricattack: stopping once the current work is saved (it resumes from there); interrupt again to stop now"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so the same clean-up runs (atomic writes, the folder lock)."""


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextmanager
def _handling(signums: tuple[int, ...], handler) -> Iterator[bool]:
    """Within the block ``handler`` handles those of ``signums`` not ignored; yields whether it could be installed
    (main thread only). A signal ignored when the block starts stays ignored, as Python leaves a SIGINT the process
    was started with ignored (a background job of a script): whoever launched us asked for that."""
    try:
        previous = {signum: signal.signal(signum, handler) for signum in signums if signal.getsignal(signum) != signal.SIG_IGN}
    except ValueError:  # not the main thread
        yield False
        return
    try:
        yield True
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def say_on_own_line(message: str) -> None:
    """Print ``message`` to stderr on a line of its own: progress bars are cleared first and redrawn below it."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises ``Terminated`` (only possible in the main thread; elsewhere a no-op)."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    with _handling((signal.SIGTERM,), handler):
        yield


@contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Within the block a first SIGINT / SIGTERM is held until the block ends (a piece of work is saved),
    then raised as usual; a second one raises at once. Yields the held signal numbers (empty until one comes),
    so the block can save its work before it ends. Outside the main thread, a no-op."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if received:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        received.append(signum)
        say_on_own_line(HELD_MESSAGE)  # a chunk can take minutes: say why nothing stops yet

    with _handling((signal.SIGINT, signal.SIGTERM), handler):
        yield received
    if received:
        raise Terminated() if received[0] == signal.SIGTERM else KeyboardInterrupt()
