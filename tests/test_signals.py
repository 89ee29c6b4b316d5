"""The line a held Ctrl-C prints starts on a line of its own, also over a progress bar."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from tqdm.auto import tqdm

from metricattack.system.signals import HELD_MESSAGE, deferred_signals


def test_the_held_message_clears_the_progress_bar_and_the_bar_comes_back(capsys):
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
