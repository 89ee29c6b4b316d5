"""``torchscript:FILE``: a TorchScript file (``torch.jit.save``, ``.pt``) or a torch.export program (``.pt2``).

Both hold the network's code and weights, so they take no ``--weights``. Loading one runs the program
it holds (TorchScript, not arbitrary Python): load files you trust. An exported program is fixed to
the shapes it was exported with (export it at the model's input size, with a dynamic batch
dimension) and to the mode it was exported in.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from metricattack.errors import InputError
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network


class ExportedNetwork(nn.Module):
    """An exported program's module; train()/eval() leave it alone (exported graphs have a fixed mode)."""

    def __init__(self, program_module: nn.Module) -> None:
        super().__init__()
        self.program = program_module

    def train(self, mode: bool = True) -> "ExportedNetwork":
        self.training = mode
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.program(images)


def read_program(path: Path) -> nn.Module:
    """The network in a TorchScript (.pt) or torch.export (.pt2) file, on the CPU."""
    if not path.is_file():
        raise InputError(f"--model torchscript:{path}: file not found")
    try:
        if path.suffix == ".pt2":
            return ExportedNetwork(torch.export.load(path).module())
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # each loader has its own error types for a file that is not its format
        kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"--model torchscript:{path}: not a readable {kind} ({first})") from None


def load_torchscript(target: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """The program in ``target`` behind our preprocessing."""
    if weights is not None:
        raise InputError(f"--weights {weights}: a TorchScript file holds its own weights (drop --weights)")
    return wrap_network(read_program(Path(target)), f"torchscript:{target}", options)
