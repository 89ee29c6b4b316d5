"""``torchscript:FILE``: a TorchScript file (``torch.jit.save``, ``.pt``) or a torch.export program (``.pt2``).

Both hold the network's code and weights, so they take no ``--weights``. Loading one runs the program
it holds (TorchScript, not arbitrary Python): load files you trust. Pickled objects in an exported
program (which ``torch.export.load`` would unpickle with ``weights_only=False``) are refused. An
exported program is fixed to the shapes it was exported with (export it at the model's input size,
with a dynamic batch dimension) and to the mode it was exported in.
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from metricattack.errors import InputError, first_line
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


EXPORT_LOGGERS = ("torch.export", "torch._export")  # their modules' loggers inherit their level


@contextmanager
def quiet_loaders() -> Iterator[None]:
    """Silence what the loaders say besides raising: torch.jit.load's deprecation warning (TorchScript files still
    exist) and the traceback torch.export.load logs before raising on a file that is not its format."""
    loggers = [logging.getLogger(name) for name in EXPORT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is", category=FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """Inside the block ``torch.load`` never unpickles objects: torch.export.load reads an archive's pickled
    weights and sample inputs with ``weights_only=False`` (as a fallback, too), which runs whatever a crafted
    file holds."""
    original = torch.load

    def load(*args, **kwargs):
        return original(*args, **{**kwargs, "weights_only": True})

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def read_program(path: Path) -> nn.Module:
    """The network in a TorchScript (.pt) or torch.export (.pt2) file, on the CPU."""
    if not path.is_file():
        raise InputError(f"--model torchscript:{path}: file not found")
    try:
        with quiet_loaders():
            if path.suffix == ".pt2":
                with weights_only_loads():
                    return ExportedNetwork(torch.export.load(path).module())
            return torch.jit.load(str(path), map_location="cpu")
    except pickle.UnpicklingError:  # what torch.load(weights_only=True) raises on an object
        raise InputError(f"--model torchscript:{path}: refused: the program holds pickled objects besides tensors "
                         "(unpickling them could run any code)") from None
    except Exception as exc:  # each loader has its own error types for a file that is not its format
        kind = "torch.export program" if path.suffix == ".pt2" else "TorchScript file"
        raise InputError(f"--model torchscript:{path}: not a readable {kind} ({first_line(exc)})") from None


def load_torchscript(target: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """The program in ``target`` behind our preprocessing."""
    if weights is not None:
        raise InputError(f"--weights {weights}: a TorchScript file holds its own weights (drop --weights)")
    return wrap_network(read_program(Path(target)), f"torchscript:{target}", options)
