"""Images too large for memory: refused up front when one batch cannot fit in this machine's memory, and an
allocation that fails later said in one line naming the options that size what is held at once."""

from __future__ import annotations

import argparse
import os
import re

from metricattack.errors import InputError

# the options that size what is held in memory at once, as each command has them (the largest first)
MEMORY_OPTIONS = ("input_size", "image_size", "height", "width", "chunk_size", "batch_size")
FLOAT_BYTES = 4  # images are float32 in a batch


def gib(count: int | float) -> str:
    """A number of bytes in GiB (or TiB when that reads better)."""
    return f"{count / 2**40:.1f} TiB" if count >= 2**40 else f"{count / 2**30:.1f} GiB"


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_batches_fit(args: argparse.Namespace) -> None:
    """Refuse, before any work, an --image-size / --input-size whose one batch of images exceeds this machine's memory.

    (An image library would otherwise try to render such an image piece by piece until the system kills the process.)
    """
    memory = physical_memory()
    batch = getattr(args, "batch_size", None) or 1
    for name in ("image_size", "input_size"):
        size = getattr(args, name, None)
        if memory is None or not size:
            continue
        needed = batch * 3 * size[0] * size[1] * FLOAT_BYTES
        if needed > memory:
            option = "--" + name.replace("_", "-")
            raise InputError(
                f"{option} {size[0]} {size[1]}: one batch of {batch} such images takes {gib(needed)}, more than this "
                f"machine's {gib(memory)} of memory; lower {option} or --batch-size"
            )


def out_of_memory_message(exc: BaseException, args: argparse.Namespace) -> str:
    """What could not be allocated and which of the command's options to lower, with the values they have now."""
    found = re.search(r"[Tt]ried to allocate (\d+ bytes|[\d.]+ ?[KMGT]?i?B)", str(exc))
    amount = "" if found is None else found.group(1)
    if amount.endswith(" bytes"):
        amount = gib(int(amount.split()[0]))
    options = []
    for name in (n for n in MEMORY_OPTIONS if hasattr(args, n)):
        value = getattr(args, name)
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        options.append(f"--{name.replace('_', '-')}" + ("" if value is None else f" (now {shown})"))
    lower = "" if not options else f": lower {options[0]}" if len(options) == 1 else f": lower {', '.join(options[:-1])} or {options[-1]}"
    return f"out of memory{f' (could not allocate {amount})' if amount else ''}{lower}"
