"""``onnx:FILE``: a re-ID network exported to ONNX, as tracking and video-analytics systems ship them.

The graph takes normalised images (B,3,H,W) and returns features (B,D); our ``Preprocess`` (resize,
``--mean`` / ``--std``) goes in front, as for every foreign source. Without gradients (evaluation,
transfer targets, the rank-only black-box search) the graph runs in onnxruntime, the deployed
runtime itself. White-box attacks need gradients: they go through the graph converted to PyTorch by
onnx2torch, checked at load time to give onnxruntime's features. A graph onnx2torch cannot convert
(onnx2torch 1.5.15 has no converter for ReduceMean 18 or Constant / Identity 19, so exports at opset 18
and later, which is what ``torch.onnx.export`` writes by default, fail) still loads; it is refused only
where gradients are needed, in one line (``white_box_problem``). An ONNX file is data (no code runs
when it is read), and holds its weights, so it takes no ``--weights``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from metricattack.errors import InputError, first_line
from metricattack.models.onnx_runtime import OnnxSession, file_digest, import_onnx, in_batches
from metricattack.models.options import ModelOptions
from metricattack.models.wrapped import WrappedModel, wrap_network

MATCH_TOLERANCE = 1e-4  # largest difference between onnxruntime's and the converted graph's features, relative to their scale
REEXPORT = "re-export with torch.onnx.export(..., opset_version=17, dynamo=False), or use it as a --target-model or with --attack blackbox"


def white_box_problem(model: nn.Module) -> str | None:
    """Why gradients cannot be taken through ``model`` (one line), or None: it can be attacked white-box (any model)."""
    return getattr(model, "white_box_problem", None)


class OnnxNetwork(nn.Module):
    """normalised images (B,3,H,W) -> features (B,D): onnxruntime, or the converted graph when gradients are needed.

    Gradients are needed when autograd is on and the images require them (an attack's step); then the
    converted graph runs, or, without one, ``white_box_problem`` is raised. Either way a fixed batch size
    is served in slices. train()/eval() leave the converted graph in eval mode (an exported graph's mode is fixed).
    """

    def __init__(self, session: OnnxSession, digest: bytes) -> None:
        super().__init__()
        self.session = session
        self.graph: nn.Module | None = None
        self.white_box_problem: str | None = None
        # the file's SHA-256, so that two graphs compare as the same weights (state_dict) only when their files are equal
        self.register_buffer("onnx_sha256", torch.tensor(list(digest), dtype=torch.uint8))

    def train(self, mode: bool = True) -> "OnnxNetwork":
        self.training = mode
        return self

    def runtime_features(self, images: torch.Tensor) -> torch.Tensor:
        """Features by onnxruntime (no gradient)."""
        return self.session(images)

    def graph_features(self, images: torch.Tensor) -> torch.Tensor:
        """Features by the converted graph (differentiable)."""
        if self.graph is None:
            raise InputError(self.white_box_problem or f"{self.session.label}: no differentiable graph")
        index = self.session.output_index
        return in_batches(lambda chunk: pick_output(self.graph(chunk), index), images, self.session.batch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and images.requires_grad:
            return self.graph_features(images)
        return self.runtime_features(images)


def pick_output(result: torch.Tensor | tuple | list, index: int) -> torch.Tensor:
    """The features among a converted graph's outputs (a tensor for one output, a sequence for several)."""
    return result[index] if isinstance(result, (tuple, list)) else result


def fold_identities(proto) -> None:
    """Replace each Identity of a weight by a copy of the weight (in place): the legacy exporter shares equal weights
    (e.g. zero biases) through Identity nodes, which onnx2torch cannot read as a layer's weight."""
    weights = {tensor.name: tensor for tensor in proto.graph.initializer}
    outputs = {value.name for value in proto.graph.output}
    kept = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights and node.output[0] not in outputs:
            copy = proto.graph.initializer.add()
            copy.CopyFrom(weights[node.input[0]])
            copy.name = node.output[0]
            weights[copy.name] = copy
        else:
            kept.append(node)
    if len(kept) < len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(kept)


def conversion_problem(exc: BaseException) -> str:
    """What onnx2torch's failure says, in a few words."""
    missing = re.search(r"operation_type='(\w+)', version=(\d+)", str(exc))
    if isinstance(exc, NotImplementedError) and missing:
        return f"onnx2torch cannot convert it (no converter for {missing[1]} version {missing[2]})"
    return f"onnx2torch cannot convert it ({first_line(exc, with_type=True)})"


def convert(path: Path) -> tuple[nn.Module | None, str | None]:
    """(the graph in ``path`` as a PyTorch module in eval mode, None), or (None, why onnx2torch cannot convert it)."""
    onnx, _, onnx2torch = import_onnx()
    try:
        proto = onnx.load(str(path))
        fold_identities(proto)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # onnx2torch warns about ops it converts approximately; the check below decides
            return onnx2torch.convert(proto).eval(), None
    except Exception as exc:  # onnx2torch raises NotImplementedError, KeyError, ... on what it cannot read
        return None, conversion_problem(exc)


def attach_graph(network: OnnxNetwork, path: Path, images: torch.Tensor) -> str | None:
    """Convert the graph and keep it when it gives onnxruntime's features on ``images`` (normalised, (B,3,H,W));
    returns why not (None: kept)."""
    graph, problem = convert(path)
    if graph is None:
        return problem
    network.graph = graph
    try:
        with torch.no_grad():
            converted = network.graph_features(images)
        expected = network.runtime_features(images)
    except Exception as exc:  # the converted module is generated code: whatever it raises means it does not run
        network.graph = None
        return f"its onnx2torch conversion does not run ({first_line(exc, with_type=True)})"
    scale = float(expected.abs().max()) or 1.0
    difference = float((converted.float() - expected).abs().max()) if converted.shape == expected.shape else float("inf")
    if not difference <= MATCH_TOLERANCE * scale:
        network.graph = None
        return (f"its onnx2torch conversion gives other features than onnxruntime (largest difference {difference:.3g}, "
                f"features up to {scale:.3g})")
    return None


def load_onnx(target: str, weights: str | Path | None, options: ModelOptions) -> WrappedModel:
    """The ONNX graph in ``target`` behind our preprocessing (see the module docstring)."""
    label = f"--model onnx:{target}"
    if weights is not None:
        raise InputError(f"--weights {weights}: an ONNX file holds its own weights (drop --weights)")
    import_onnx()
    path = Path(target)
    if not path.is_file():
        raise InputError(f"{label}: file not found")
    session = OnnxSession(path, label)
    defaults = {}
    if session.input_size is not None:
        if options.input_size is not None and tuple(options.input_size) != session.input_size:
            given, fixed_size = options.input_size, session.input_size
            raise InputError(f"--input-size {given[0]} {given[1]}: the graph in {target} takes images of "
                             f"{fixed_size[0]}x{fixed_size[1]} only (drop --input-size, or export it with dynamic height and width)")
        defaults["input_size"] = session.input_size
    network = OnnxNetwork(session, file_digest(path))
    model = wrap_network(network, f"onnx:{target}", options, **defaults)  # probes through onnxruntime
    height, width = model.spec.input_size
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        problem = attach_graph(network, path, model.preprocess(images))
    if problem is not None:
        network.white_box_problem = f"{label}: white-box attacks need a differentiable graph, but {problem}; {REEXPORT}"
    model.white_box_problem = network.white_box_problem
    return model
