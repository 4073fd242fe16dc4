"""ResNet-18/34 encoder written without torchvision; can trade stride for dilation (DeepLab-style)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import BasicBlock, ConvBNAct

_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
CHANNELS = (64, 128, 256, 512)


class ResNetEncoder(nn.Module):
    """ResNet-18/34 trunk.

    Args:
        depth: 18 or 34.
        output_stride: 32 (plain ResNet) or 8 (layer3/layer4 dilated by 2/4 instead of strided), the
            Dense Object Nets "ResNet-34 8s" configuration.

    Shape:
        input (B, 3, H, W) -> list of 4 maps, channels (64, 128, 256, 512), strides (4, 8, 16, 32)
        or (4, 8, 8, 8) with output_stride 8.
    """

    def __init__(self, depth: int = 34, output_stride: int = 32) -> None:
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(_BLOCKS)}, got {depth}")
        if output_stride not in (8, 32):
            raise ValueError(f"output_stride must be 8 or 32, got {output_stride}")
        self.stem = nn.Sequential(ConvBNAct(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        strides, dilations = (1, 2, 2, 2), (1, 1, 1, 1)
        if output_stride == 8:
            strides, dilations = (1, 2, 1, 1), (1, 1, 2, 4)
        cin = 64
        layers = []
        for n, cout, s, d in zip(_BLOCKS[depth], CHANNELS, strides, dilations, strict=True):
            blocks = [BasicBlock(cin, cout, s, d)] + [BasicBlock(cout, cout, 1, d) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.channels = CHANNELS
        self.strides = (4, 8, 16, 32) if output_stride == 32 else (4, 8, 8, 8)

    def stage_modules(self) -> list[nn.Module]:
        """The freezable units in input order: the stem, then layer1..layer4."""
        return [self.stem, *self.layers]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats
