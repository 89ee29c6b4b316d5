"""The line a held Ctrl-C prints starts on a line of its own, also over a progress bar; a process started with
SIGINT ignored leaves it ignored; and the signal tests pass in both launch contexts (a terminal, SIGINT ignored)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tqdm.auto import tqdm

from metricattack.system.signals import HELD_MESSAGE, Terminated, deferred_signals, sigterm_raises


def test_the_held_message_clears_the_progress_bar_and_the_bar_comes_back(capsys, sigint_as_in_a_terminal):
    bar = tqdm(range(4), desc="chunks", file=sys.stderr, disable=False, leave=False, mininterval=0)
    steps = iter(bar)
    next(steps), next(steps)
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    next(steps)
    bar.close()
    err = capsys.readouterr().err
    before, after = err.split(HELD_MESSAGE)
    assert before.endswith("\r") and before.rstrip("\r ").endswith("it/s]")  # the bar was drawn, then erased
    assert after.startswith("\n") and "chunks:" in after  # the message ends its line; the bar is drawn again below
    assert HELD_MESSAGE in err.splitlines()


@pytest.fixture
def sigint_ignored():
    """During the test SIGINT is ignored, as in a background job of a script; then the handler from before is back."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_sigint_ignored_at_start_stays_ignored_and_sigterm_still_stops(sigint_ignored, capsys):
    finished = []
    try:
        with deferred_signals(), sigterm_raises():
            os.kill(os.getpid(), signal.SIGINT)  # what Python does in such a process: nothing
            time.sleep(0.05)
            finished.append(True)
    except KeyboardInterrupt:  # not raised through pytest, which would stop the whole session
        pytest.fail("a SIGINT the process ignores was held and raised")
    assert finished == [True] and capsys.readouterr().err == ""  # not held, no message, nothing raised after
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    with pytest.raises(Terminated):
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            finished.append(True)
    assert finished == [True, True] and capsys.readouterr().err == HELD_MESSAGE + "\n"
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


TESTS = Path(__file__).parent
SIGNAL_TESTS = (  # the tests that send themselves a signal and need no trained model (a few seconds in all)
    str(TESTS / "test_signals.py"),
    f"{TESTS / 'test_scale.py'}::test_a_signal_inside_a_chunk_takes_effect_when_the_chunk_ends",
)


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["terminal", "sigint-ignored"])
def test_the_signal_tests_pass_in_both_launch_contexts(sigint):
    """A pytest started with SIGINT at its default (Python then raises KeyboardInterrupt) or ignored (a background
    job of a script: it stays ignored) runs the signal tests; neither context may leak into them."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SIGNAL_TESTS, "-k", "not launch_contexts"],
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint), env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=TESTS.parent, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed, 2 deselected" in done.stdout, done.stdout[-2000:]  # the child ran every signal test, none was skipped
