"""Mixed precision (autocast) and channels-last memory format around any re-ID model; both off by default.

``with_precision(model, amp, channels_last)`` returns the model itself when both are off, so the default
path is untouched. Otherwise a ``Precision`` wrapper runs the model's forward pass (and so the backward
pass an attack takes through it) under ``torch.autocast`` in bfloat16 or float16, on the input's device,
and hands back float32 features: attack losses, distances and evaluation stay in float32. Features that
overflow in float16 come back as inf/NaN in float32, so the existing non-finite checks stop the run.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from metricattack.errors import InputError
from metricattack.evaluation.pipeline import FlipAverage, ModelWrapper

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # --amp NAME -> autocast dtype


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype an ``--amp`` name stands for (None: off)."""
    if not isinstance(amp, str) or amp not in AMP_DTYPES:
        raise InputError(f"--amp: unknown precision {amp!r} (expected one of {', '.join(AMP_DTYPES)})")
    return AMP_DTYPES[amp]


@functools.cache
def autocast_problem(device_type: str, dtype: torch.dtype) -> str | None:
    """Why ``torch.autocast(device_type, dtype)`` would not autocast here (torch only warns and turns it off), or None."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.autocast(device_type, dtype=dtype)
        except RuntimeError as error:  # e.g. bfloat16 on a GPU older than Ampere
            return str(error)
    return str(caught[0].message) if caught else None


class _ChannelsLast(torch.autograd.Function):
    """The input in channels-last memory format; its gradient goes back in the input's own layout."""

    @staticmethod
    def forward(ctx, images: torch.Tensor) -> torch.Tensor:
        ctx.contiguous = images.is_contiguous()
        return images.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous() if ctx.contiguous else grad


class Precision(ModelWrapper):
    """features(x) = float32(f(x)), f run under autocast to ``amp`` ("bf16" / "fp16") and/or on channels-last input.

    Differentiable in the input (the gradient is float32, in the input's layout). Other attributes
    (``spec``, ``feature_dim``, ...) are the wrapped model's. Build it with ``with_precision``, which also
    puts the model's weights in channels-last format.
    """

    def __init__(self, model: nn.Module, amp: str = "off", channels_last: bool = False) -> None:
        super().__init__(model)
        self.amp = amp
        self.autocast_dtype = amp_dtype(amp)
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor):  # (B,3,H,W) -> (B,D); in train mode each output float32
        dtype = self.autocast_dtype
        if dtype is not None and (problem := autocast_problem(images.device.type, dtype)):
            raise InputError(f"--amp {self.amp}: autocast does not work on {images.device.type} here ({problem}); use bf16 on a CPU")
        if self.channels_last:
            images = _ChannelsLast.apply(images)
        with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
            output = self.model(images)
        if isinstance(output, (tuple, list)):
            return type(output)(item.float() for item in output)
        return output.float()

    def extra_repr(self) -> str:
        return f"amp={self.amp}, channels_last={self.channels_last}"


def with_precision(model: nn.Module, amp: str = "off", channels_last: bool = False) -> nn.Module:
    """``model`` run with autocast to ``amp`` and/or channels-last, whether or not it was wrapped before.

    Both off: the bare model itself. The wrapper always sits inside flip averaging
    (``FlipAverage(Precision(model))``), so ``with_flip`` and ``with_precision`` compose in either order.
    Channels-last is set on the model's own weights (in place), and undone when it is turned off again.
    """
    if isinstance(model, FlipAverage):
        return FlipAverage(with_precision(model.model, amp, channels_last))
    amp_dtype(amp)  # checked before the weights are touched
    bare = model.model if isinstance(model, Precision) else model
    if channels_last or (isinstance(model, Precision) and model.channels_last):
        bare.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if amp == "off" and not channels_last:
        return bare
    return Precision(bare, amp, channels_last)
