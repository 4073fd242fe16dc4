"""An auxiliary part-classification term on the descriptors (issue #15): a linear classifier, trained with the
network, must read the simulator's part label (background, mug handle, bowl rim...) out of every descriptor.

Why: the correspondence losses only ask the same *instance's* points to agree; nothing in them says that the
handles of two different mugs are alike, and the cross-instance pairs are few. A linear part term asks every
mug handle's descriptor to sit on one side of the same hyperplane, on every instance at once, which is the
category-level structure the ACF module needs (and what the linear-probe evaluation measures). The labels come
from the simulator, not from people; photographs carry none and are ignored (UNLABELLED).

The classifier is a training-time module: it is saved in the training checkpoint, not in the model file, so
the shipped network and its ONNX export are unchanged (`dense-descriptor probe` fits its own head afterwards).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_shape
from .base import LossOutput

#: label value the loss ignores (data.base.UNLABELLED)
IGNORE = -1


def labels_at_cells(labels: torch.Tensor, h: int, w: int, stride: int) -> torch.Tensor:
    """The value under each cell centre of an (h, w) map at `stride`: pixel (c * s + (s - 1) // 2, ...), read from
    the last two dims (part labels here, the canonical term's targets too).

    Shape: labels (..., H, W) -> (..., h, w)."""
    if labels.ndim < 2:
        raise ValueError(f"labels: expected (..., H, W), got {tuple(labels.shape)}")
    ys = (torch.arange(h, device=labels.device) * stride + (stride - 1) // 2).clamp(max=labels.shape[-2] - 1)
    xs = (torch.arange(w, device=labels.device) * stride + (stride - 1) // 2).clamp(max=labels.shape[-1] - 1)
    return labels[..., ys, :][..., xs]


def class_weights(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C,) weights (n / (k * n_c))^0.5 for the k classes present among the n labels, 0 for absent ones: the square
    root of inverse frequency (full inverse frequency lets a handful of cells of a rare class dominate a batch).

    Shape: target (n,) int64 in [0, C)."""
    counts = torch.bincount(target, minlength=num_classes).float()
    present = counts > 0
    w = torch.zeros(num_classes, device=target.device)
    w[present] = (counts.sum() / (present.sum() * counts[present])).sqrt()
    return w


class PartClassificationLoss(nn.Module):
    """Cross-entropy of a linear (1x1 convolution) classifier of the descriptors against part labels.

    Args:
        descriptor_dim: D. num_classes: C (the dataset's part ids, 0 = background).
        scale: the descriptors are L2-normalised models' unit vectors; logits = scale * (W d + b) lets a
            linear head reach confident probabilities on the unit sphere.
        balance: weigh each class present in the batch by (labelled cells / (classes present * its cells))^0.5,
            so that background and bodies do not drown the small parts (handles, rims); False: plain mean.

    Shape:
        desc: (B, D, h, w) at `stride`; labels: (B, H, W) int64 in [0, C) or IGNORE -> LossOutput (() loss,
        parts "part_ce" and "part_acc" over the labelled cells). No labelled cell: loss 0 (graph kept).
    """

    def __init__(self, descriptor_dim: int, num_classes: int, scale: float = 10.0, balance: bool = False) -> None:
        super().__init__()
        if num_classes < 2 or descriptor_dim < 1:
            raise ValueError(f"need num_classes >= 2 and descriptor_dim >= 1, got {num_classes}, {descriptor_dim}")
        self.head = nn.Conv2d(descriptor_dim, num_classes, 1)
        self.scale = float(scale)
        self.balance = balance

    def forward(self, desc: torch.Tensor, labels: torch.Tensor, stride: int) -> LossOutput:
        check_shape(desc, ("B", self.head.in_channels, "h", "w"), "desc")
        target = labels_at_cells(labels, desc.shape[2], desc.shape[3], stride)
        if int(target.max()) >= self.head.out_channels:
            raise ValueError(f"part label {int(target.max())} >= num_classes {self.head.out_channels}")
        logits = self.scale * self.head(desc.float())
        known = target != IGNORE
        if not bool(known.any()):
            zero = logits.sum() * 0.0
            return LossOutput(zero, {"part_ce": zero.detach(), "part_acc": torch.tensor(float("nan"))})
        weight = class_weights(target[known], self.head.out_channels) if self.balance else None
        ce = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
        with torch.no_grad():
            acc = (logits.argmax(1) == target)[known].float().mean()
        return LossOutput(ce, {"part_ce": ce.detach(), "part_acc": acc})


__all__ = ["IGNORE", "PartClassificationLoss", "class_weights", "labels_at_cells"]
