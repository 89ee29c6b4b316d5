"""An ONNX graph run by onnxruntime behind a torch call: normalised images (B,3,H,W) -> features (B,D), no gradient.

The graph says what it takes: its image input is its only input (or the one with 4 dimensions), its
features the only output (or the first with 2 dimensions, (B, D)). A fixed batch dimension (graphs
exported with an example batch and no dynamic axes, often 1) is served in slices of that size, the last
one padded; fixed height and width are the model's input size. onnx and onnxruntime are optional
(``pip install 'metricattack[onnx]'``) and imported here, when a graph is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metricattack.errors import InputError, first_line

ONNX_EXTRA = "--model onnx:FILE needs the onnx extra: pip install 'metricattack[onnx]'"
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def import_onnx() -> tuple[Any, Any, Any]:
    """The modules onnx, onnxruntime and onnx2torch, or the one-line InputError naming the extra."""
    try:
        import onnx
        import onnx2torch
        import onnxruntime
    except ImportError:
        raise InputError(ONNX_EXTRA) from None
    return onnx, onnxruntime, onnx2torch


def fixed(dim: object) -> int | None:
    """A graph dimension's size when it is fixed (an int > 0), None when it is symbolic or unknown."""
    return dim if isinstance(dim, int) and dim > 0 else None


def in_batches(run: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, size: int | None) -> torch.Tensor:
    """``run`` over ``images`` in slices of ``size`` rows (None: all at once), the last slice padded with copies
    of its last image and the padding's rows dropped (differentiable: the copies' rows get no gradient)."""
    if size is None or len(images) == size:
        return run(images)
    rows = []
    for start in range(0, len(images), size):
        chunk = images[start : start + size]
        padding = size - len(chunk)
        if padding:
            chunk = torch.cat([chunk, chunk[-1:].expand(padding, *chunk.shape[1:])])
        rows.append(run(chunk)[: size - padding])
    return torch.cat(rows)


def file_digest(path: Path) -> bytes:
    """SHA-256 of the ONNX file and of the external-data files its weights are kept in (exports of large models,
    and torch.onnx.export's dynamo exporter, write them beside the graph)."""
    onnx, _, _ = import_onnx()
    digest = hashlib.sha256(path.read_bytes())
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not readable by onnx: onnxruntime's session has said so already, or will
        return digest.digest()
    locations = {entry.value for tensor in proto.graph.initializer for entry in tensor.external_data if entry.key == "location"}
    for location in sorted(locations):
        if (path.parent / location).is_file():
            digest.update((path.parent / location).read_bytes())
    return digest.digest()


class OnnxSession:
    """onnxruntime sessions of one ONNX file (CPU; CUDA too when onnxruntime has it and the images are on a GPU)."""

    def __init__(self, path: Path, label: str) -> None:
        _, self.runtime, _ = import_onnx()
        self.path, self.label = path, label
        self.sessions: dict[str, Any] = {}
        session = self.session("cpu")
        self.input = self.pick(session.get_inputs(), 4, "input")
        outputs = session.get_outputs()
        self.output = self.pick(outputs, 2, "output")
        self.output_index = [value.name for value in outputs].index(self.output.name)  # in the graph's outputs
        if self.input.type not in INPUT_TYPES:
            raise InputError(f"{label}: the graph's input {self.input.name} is a {self.input.type}, expected float images")
        self.input_type = INPUT_TYPES[self.input.type]
        shape = list(self.input.shape) + [None] * 4
        self.batch_size = fixed(shape[0])  # None: any batch
        height, width = fixed(shape[2]), fixed(shape[3])
        self.input_size = (height, width) if height and width else None  # None: any size

    def pick(self, values: list, dims: int, kind: str):
        """The only input / output, else the first with ``dims`` dimensions (one line naming them when none has)."""
        if len(values) == 1:
            return values[0]
        for value in values:
            if len(value.shape or ()) == dims:
                return value
        found = ", ".join(f"{v.name} {list(v.shape or ())}" for v in values) or "none"
        raise InputError(f"{self.label}: no graph {kind} with {dims} dimensions (found {found})")

    def session(self, device_type: str):
        """The session for images on ``device_type`` (one per provider, made when first needed)."""
        providers = ["CPUExecutionProvider"]
        if device_type == "cuda" and "CUDAExecutionProvider" in self.runtime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        if providers[0] not in self.sessions:
            options = self.runtime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()  # the threads torch was given (OMP_NUM_THREADS)
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # errors only: its warnings (unused initializers, ...) are not the user's
            try:
                self.sessions[providers[0]] = self.runtime.InferenceSession(str(self.path), options, providers=providers)
            except Exception as exc:  # onnxruntime raises its own error types (Fail, InvalidProtobuf, ...) for a bad file
                raise InputError(f"{self.label}: not a readable ONNX model ({first_line(exc)})") from None
        return self.sessions[providers[0]]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) normalised -> (B,D) float32, on the images' device
        session = self.session(images.device.type)

        def run(chunk: torch.Tensor) -> torch.Tensor:
            array = chunk.detach().float().cpu().numpy().astype(self.input_type, copy=False)
            (features,) = session.run([self.output.name], {self.input.name: array})
            return torch.from_numpy(np.asarray(features, dtype=np.float32))

        return in_batches(run, images, self.batch_size).to(images.device)
