"""A tracker's appearance features: each detection box cropped from the frame, resized to the model's
input and embedded, through the same differentiable crops (``attacks.maps.BoxCrops``) the attack uses,
so an attack of size 0 gives exactly the clean features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from metricattack.attacks.maps import BoxCrops
from metricattack.models.features import check_finite


def box_corners(boxes_xywh: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer corners (N,4) ``x1, y1, x2, y2`` (x2, y2 exclusive) of boxes ``x, y, w, h`` clipped to the frame,
    at least one pixel each: the pixels a crop reads and an attack may change."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    x1 = np.clip(np.floor(boxes[:, 0]), 0, width - 1)
    y1 = np.clip(np.floor(boxes[:, 1]), 0, height - 1)
    x2 = np.clip(np.ceil(boxes[:, 0] + boxes[:, 2]), x1 + 1, width)
    y2 = np.clip(np.ceil(boxes[:, 1] + boxes[:, 3]), y1 + 1, height)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.int64)


def frame_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """An RGB frame (H,W,3) uint8 as a (1,3,H,W) float tensor in [0,1]."""
    return torch.from_numpy(np.array(frame, dtype=np.uint8, copy=True)).to(device).permute(2, 0, 1)[None].float().div(255)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """A (1,3,H,W) tensor in [0,1] rounded to an RGB frame (H,W,3) uint8, as a video would store it."""
    return frames[0].mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class CropEmbedder:
    """Features (N,D) of the detection boxes of a frame under a re-ID model, in eval mode, checked finite."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int], device: torch.device, name: str = "model") -> None:
        self.model = model.eval().to(device)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.device = device
        self.name = name
        with torch.inference_mode():  # the feature size, for frames without detections
            self.dimension = int(self.model(torch.zeros(1, 3, *self.input_size, device=device)).shape[1])

    def crops(self, corners: np.ndarray) -> BoxCrops:
        """The map from one frame (1,3,H,W) to the crops of ``corners`` (N,4)."""
        boxes = np.concatenate([np.zeros((len(corners), 1), dtype=np.int64), corners], axis=1)
        return BoxCrops(torch.from_numpy(boxes), self.input_size)

    @torch.inference_mode()
    def embed(self, frame: torch.Tensor, corners: np.ndarray) -> np.ndarray:
        """Features (N,D) float32 of the boxes ``corners`` (N,4) of ``frame`` (1,3,H,W) in [0,1]."""
        if not len(corners):
            return np.zeros((0, self.dimension), dtype=np.float32)
        features = self.model(self.crops(corners)(frame)).float()
        return check_finite(features, self.name, "detection crops").cpu().numpy()
