"""The C allocator setting the CLI applies: freed memory stays in the process, so large passes stop re-faulting pages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metricattack.system.runtime import USER_MALLOC_SETTINGS, keep_freed_memory

FAULTS = """
import resource, sys, torch
from metricattack.system.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
for _ in range(10):  # warm-up: the heap grows to hold the block
    torch.ones(10_000_000)  # 40 MB, above glibc's largest default mmap threshold (32 MB)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(10_000_000)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def minor_faults(mode: str) -> tuple[str, int]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(USER_MALLOC_SETTINGS)}
    done = subprocess.run([sys.executable, "-c", FAULTS, mode], env=env, capture_output=True, text=True, timeout=120, check=True)
    applied, faults = done.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not (sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION")), reason="glibc only")
def test_kept_memory_stops_the_page_faults_of_repeated_large_allocations():
    applied, kept = minor_faults("keep")
    _, default = minor_faults("default")
    assert applied == "True"
    assert default > 20 * 9_000  # every 40 MB block (9,766 pages) faulted in again: the cost being removed
    assert kept * 5 < default


def test_a_users_own_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert keep_freed_memory() is False
