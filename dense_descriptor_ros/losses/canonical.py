"""An auxiliary canonical-coordinate term on the descriptors (issue #15): a linear map, trained with the network,
must read each synthetic pixel's canonical object coordinate out of its descriptor.

Why: the part term (`losses/part.py`) asks every handle's descriptor to sit on one side of a hyperplane; this asks
for *where on the handle*: the descriptors of two mugs must agree on (x, y, z, r) at every point, a dense,
continuous category-level signal on every synthetic view (not only the cross-instance pairs). Only what the
category's symmetry lets the image show is asked for (`data.canonical`: full coordinates on mugs, height and
radius on bodies of revolution, nothing on boxes); photographs carry no targets and are ignored.

The map is a training-time module, saved in the training checkpoint (not in the model file), like the part head.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_shape
from .base import LossOutput
from .part import labels_at_cells

#: channels of the target (data.canonical.CHANNELS)
NUM_CHANNELS = 4


class CanonicalCoordsLoss(nn.Module):
    """Smooth L1 of a linear (1x1 convolution) regression of the descriptors onto canonical (x, y, z, r) targets,
    over the cells and channels that have one.

    Args:
        descriptor_dim: D.
        beta: the smooth L1's transition (canonical units: coordinates are divided by the instance's scale, so
            0.05 is 5% of a mug's radius or height).

    Shape:
        desc: (B, D, h, w) at `stride`; targets: (B, 4, H, W) float, NaN where unknown -> LossOutput (() loss,
        parts "coords_l1" (mean absolute error of the supervised entries) and "coords_cells" (their count)).
        No supervised entry: loss 0 (graph kept).
    """

    def __init__(self, descriptor_dim: int, beta: float = 0.05) -> None:
        super().__init__()
        if descriptor_dim < 1 or beta <= 0:
            raise ValueError(f"need descriptor_dim >= 1 and beta > 0, got {descriptor_dim}, {beta}")
        self.head = nn.Conv2d(descriptor_dim, NUM_CHANNELS, 1)
        self.beta = float(beta)

    def forward(self, desc: torch.Tensor, targets: torch.Tensor, stride: int) -> LossOutput:
        check_shape(desc, ("B", self.head.in_channels, "h", "w"), "desc")
        check_shape(targets, (desc.shape[0], NUM_CHANNELS, "H", "W"), "targets")
        t = labels_at_cells(targets.float(), desc.shape[2], desc.shape[3], stride)
        pred = self.head(desc.float())
        known = torch.isfinite(t)
        if not bool(known.any()):
            zero = pred.sum() * 0.0
            return LossOutput(zero, {"coords_l1": torch.tensor(float("nan")), "coords_cells": torch.tensor(0.0)})
        loss = F.smooth_l1_loss(pred[known], t[known], beta=self.beta)
        with torch.no_grad():
            l1 = (pred[known] - t[known]).abs().mean()
        return LossOutput(loss, {"coords_l1": l1, "coords_cells": torch.tensor(float(known.sum()))})


__all__ = ["CanonicalCoordsLoss", "NUM_CHANNELS"]
