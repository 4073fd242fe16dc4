"""MobileNetV2-style encoder cut at stride 16, for the real-time model."""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct, InvertedResidual

# (expansion, channels, repeats, stride) per stage, MobileNetV2's table up to stride 16.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))


def _round(c: float, divisor: int = 8) -> int:
    return max(divisor, int(c + divisor / 2) // divisor * divisor)


class MobileNetEncoder(nn.Module):
    """Inverted-residual trunk; the stride-32 stages of MobileNetV2 are dropped (they hold most of
    its parameters and add little for dense matching at manipulation distances).

    Args:
        width_mult: channel multiplier (MobileNetV2's alpha).
        expansion: expansion ratio of the inverted residuals (6 in MobileNetV2).

    Shape:
        input (B, 3, H, W) -> maps at strides (4, 8, 16) with `self.channels` channels.
    """

    def __init__(self, width_mult: float = 1.0, expansion: int = 6) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        c0 = _round(32 * width_mult)
        self.stem = ConvBNAct(3, c0, 3, 2)
        cin, stride = c0, 2
        stages: list[list[nn.Module]] = []
        outs: list[int] = []
        for t, c, n, s in _STAGES:
            cout = _round(c * width_mult)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, 1 if t == 1 else expansion))
                cin = cout
            stride *= s
            if s == 2 or not stages:
                stages.append(blocks)
                outs.append(cout)
            else:
                stages[-1].extend(blocks)
                outs[-1] = cout
        # stages now end at strides 2, 4, 8, 16; the stride-2 one is folded into the stem.
        self.stem = nn.Sequential(self.stem, *stages[0])
        self.stages = nn.ModuleList(nn.Sequential(*b) for b in stages[1:])
        self.channels = tuple(outs[1:])
        self.strides = (4, 8, 16)

    def stage_modules(self) -> list[nn.Module]:
        """The freezable units in input order: the stem (to stride 2), then each stage."""
        return [self.stem, *self.stages]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
