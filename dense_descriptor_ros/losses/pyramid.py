"""Deep supervision of every pyramid level with one single-level loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from dense_descriptor_ros.correspondence.pairs import PairSample

from .base import LossOutput

Pyramid = list[tuple[torch.Tensor, int]]


class PyramidLoss(nn.Module):
    """Weighted sum of a single-level loss over the levels of a descriptor pyramid (deep supervision,
    Lee et al., Deeply-Supervised Nets, AISTATS 2015).

    Equation:
        L = sum_l weights[l] * base(desc_a_l, desc_b_l, pairs, stride_l).loss
    The pixel correspondences stay in input-image pixels; `sample_descriptors` rescales them per level.
    parts: every base part prefixed with its level ("l0/match", ...), plus "l{l}/loss" (unweighted).

    Shape:
        pyr_a, pyr_b: lists of (descriptors (B, D, h_l, w_l), stride_l), finest first, as returned by
        `DescriptorNet.forward_pyramid`; len(weights) levels -> LossOutput with a () loss.
    """

    def __init__(self, base: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        if not isinstance(base, nn.Module):
            raise ValueError(f"base must be an nn.Module loss, got {type(base).__name__}")
        weights = tuple(float(w) for w in weights)
        if not weights or any(w < 0 for w in weights):
            raise ValueError(f"weights must be a non-empty sequence of non-negative floats, got {weights}")
        self.base = base
        self.weights = weights

    def extra_repr(self) -> str:
        return f"weights={self.weights}"

    def forward(self, pyr_a: Pyramid, pyr_b: Pyramid, pairs: PairSample) -> LossOutput:
        if not len(pyr_a) == len(pyr_b) == len(self.weights):
            raise ValueError(f"pyramid levels: {len(pyr_a)} in A, {len(pyr_b)} in B, {len(self.weights)} "
                             "weights; they must agree")
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        for level, ((da, sa), (db, sb), w) in enumerate(zip(pyr_a, pyr_b, self.weights, strict=True)):
            if sa != sb:
                raise ValueError(f"pyramid level {level}: stride {sa} in A but {sb} in B")
            out = self.base(da, db, pairs, stride=sa)
            total = w * out.loss if total is None else total + w * out.loss
            parts[f"l{level}/loss"] = out.loss.detach()
            parts |= {f"l{level}/{k}": v for k, v in out.parts.items()}
        assert total is not None  # weights is non-empty
        return LossOutput(total, parts)
