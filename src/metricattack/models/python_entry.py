"""``python:PACKAGE.MODULE:FACTORY``: the user's own network, from a callable returning an ``nn.Module``.

The module is imported from the Python path or the current directory; the factory is called with
no arguments and must return a module mapping normalised images (B,3,H,W) to features (B,D).
With weights, the state dict (read safely) must fit it exactly.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from torch import nn

from metricattack.errors import InputError, first_line
from metricattack.models.checkpoints import load_state_strict
from metricattack.models.foreign import read_state_dict
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network

FORM = "python:PACKAGE.MODULE:FACTORY"


def import_factory(target: str):
    """The callable named by ``PACKAGE.MODULE:FACTORY``."""
    module_name, _, factory_name = target.partition(":")
    if not module_name or not factory_name.isidentifier():
        raise InputError(f"--model python:{target}: expected {FORM}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # the console script does not put the current directory on the path
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's code: a missing module, a syntax error, or whatever its import runs raises
        raise InputError(f"--model python:{target}: cannot import {module_name} ({first_line(exc, with_type=True)})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise InputError(f"--model python:{target}: {module_name} has no callable {factory_name}")
    return factory


def load_python_model(target: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """The module built by the factory (with ``weights`` if given) behind our preprocessing."""
    arch = f"python:{target}"
    factory = import_factory(target)
    try:
        network = factory()
    except Exception as exc:  # the user's code (e.g. it cannot fetch its weights): its first line is the reason
        raise InputError(f"--model {arch}: the factory raised {first_line(exc, with_type=True)}") from None
    if not isinstance(network, nn.Module):
        raise InputError(f"--model {arch}: the factory returned a {type(network).__name__}, expected a torch.nn.Module")
    if weights is not None:
        load_state_strict(network, read_state_dict(weights), weights, arch)
    return wrap_network(network, arch, options)
