"""Several processes under torchrun: which share of the work is this process's, and gathering the shares.

Started by ``torchrun`` (WORLD_SIZE > 1 in the environment) the process joins a torch.distributed group
(gloo on CPU, NCCL on CUDA, each rank on GPU LOCAL_RANK); started alone it is rank 0 of 1 and nothing
here communicates. Items are shared round robin: item k is rank k mod world's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the group (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """Whether the environment asks for a group of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> torch.device:
    """Join the torchrun group if there is one; returns the device this rank uses (its own GPU on CUDA)."""
    if not launched_by_torchrun():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():  # a second call only gives the device again
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    """Leave the group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mine(number: int) -> bool:
    """Whether item ``number`` is this rank's (round robin)."""
    return number % world_size() == rank()


def share(items: Iterable[int], compute: Callable[[int], object], skip: Callable[[int], bool] = lambda number: False) -> dict:
    """``compute(number)`` for this rank's items (those ``skip`` does not exclude), then every rank gets every
    rank's results: {number: result}. Results are pickled between our own processes only."""
    results = {number: compute(number) for number in items if mine(number) and not skip(number)}
    if world_size() == 1:
        return results
    gathered: list[dict | None] = [None] * world_size()
    dist.all_gather_object(gathered, results)
    return {number: result for part in gathered for number, result in part.items()}


def broadcast(value: object) -> object:
    """Rank 0's ``value`` on every rank."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here."""
    if world_size() > 1:
        dist.barrier()


def portable(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as it can be sent to another process (on the CPU), unchanged when there is no other process."""
    return tensor.cpu() if world_size() > 1 else tensor
