"""Convolutional trunks: image batch -> feature map. torchvision's parameter names are kept so that
foreign checkpoints map onto them without renaming inside the trunk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class ResNetTrunk(nn.Module):
    """A torchvision ResNet / ResNeXt without its pooling and classifier; ``last_stride`` 1 doubles the final map."""

    def __init__(self, name: str, last_stride: int = 1) -> None:
        super().__init__()
        import torchvision  # imported where a trunk is built: it pulls in torch._dynamo, seconds --help need not pay

        net = getattr(torchvision.models, name)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if last_stride != 2:
            first = self.layer4[0]
            strided = first.conv2 if isinstance(first, torchvision.models.resnet.Bottleneck) else first.conv1
            strided.stride = (last_stride, last_stride)
            first.downsample[0].stride = (last_stride, last_stride)
        self.out_channels = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class FeaturesTrunk(nn.Module):
    """A torchvision model whose trunk is its ``features`` module (DenseNet, MobileNet)."""

    def __init__(self, name: str, final_relu: bool) -> None:
        super().__init__()
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        self.features = net.features
        self.final_relu = final_relu
        last = net.classifier if isinstance(net.classifier, nn.Linear) else net.classifier[0]
        self.out_channels = last.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return F.relu(x) if self.final_relu else x


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with a projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            _conv_bn_relu(in_channels, out_channels, stride),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x) + self.shortcut(x))


class CompactTrunk(nn.Module):
    """A small residual CNN for 128x64 pedestrian crops (about 0.3 M parameters), quick on a CPU."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        stages = [_conv_bn_relu(3, widths[0], 2)]
        stages += [ResidualBlock(w_in, w_out, 2) for w_in, w_out in zip(widths[:-1], widths[1:])]
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


@dataclass(frozen=True)
class BackboneInfo:
    """How to build a trunk and the input it expects."""

    build: Callable[..., nn.Module]
    input_size: tuple[int, int]


BACKBONES: dict[str, BackboneInfo] = {
    "resnet50": BackboneInfo(lambda last_stride=1, **_: ResNetTrunk("resnet50", last_stride), (256, 128)),
    "resnext50_32x4d": BackboneInfo(
        lambda last_stride=1, **_: ResNetTrunk("resnext50_32x4d", last_stride), (256, 128)
    ),
    "densenet121": BackboneInfo(lambda final_relu=True, **_: FeaturesTrunk("densenet121", final_relu), (256, 128)),
    "resnet18": BackboneInfo(lambda last_stride=1, **_: ResNetTrunk("resnet18", last_stride), (256, 128)),
    "mobilenet_v3_small": BackboneInfo(
        lambda final_relu=False, **_: FeaturesTrunk("mobilenet_v3_small", final_relu), (256, 128)
    ),
    "compact": BackboneInfo(lambda **_: CompactTrunk(), (128, 64)),
}
