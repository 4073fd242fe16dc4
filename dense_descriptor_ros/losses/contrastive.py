"""Dense Object Nets' pixelwise contrastive loss (hinge) and its triplet variant."""

from __future__ import annotations

import torch
import torch.nn as nn

from dense_descriptor_ros.correspondence.pairs import PairSample

from .base import (
    LossOutput,
    check_loss_inputs,
    check_nonmatch_layout,
    masked_mean,
    masked_sum,
    safe_count,
    sample_valid,
)

CONTRASTIVE_MODES = ("hinge", "triplet")


def _safe_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """||x|| over the last dim with a finite gradient at 0 (the squared norm is clamped below at eps)."""
    return x.pow(2).sum(-1).clamp_min(eps).sqrt()


class PixelwiseContrastiveLoss(nn.Module):
    """Pixelwise contrastive loss of Dense Object Nets (Florence, Manuelli & Tedrake, CoRL 2018, Sec. 3.1).

    Equation, mode="hinge" (DON):
        L_match = 1/|V| * sum_{i in V} ||a_i - b_i||^2                       V: valid matches
        L_nm(S) = 1/n(S) * sum_{j in S} max(0, margin - ||a_j^- - b_j^-||)^2  S: valid masked or background
                  non-matches; n(S) = number of hard negatives in S (positive hinge) when
                  scale_by_hard_negatives, else |S|; n(S) >= 1.
        L = match_weight * L_match + masked_nonmatch_weight * L_nm(masked)
            + background_nonmatch_weight * L_nm(background)

    Equation, mode="triplet" (FaceNet's triplet loss, Schroff et al. CVPR 2015, on pixel triplets):
        for non-match j with anchor i = j % N (the non-match layout of `losses.base`):
        L = mean over valid (j, i) of max(0, ||a_i - b_i||^2 - ||a_i - b_j^-||^2 + triplet_margin)
        where a_i and b_i are the descriptors at match i. The weights and margin are unused there.

    Sums run over the whole batch (pooled), so with batch size 1 this is exactly DON's per-pair loss.
    Everything without a valid term is 0, never NaN.

    Shape:
        desc_a: (B, D, Ha, Wa), desc_b: (B, D, Hb, Wb) maps at `stride` w.r.t. the pixels in `pairs`;
        pairs: N matches, M non-matches per pair (M = k * N for triplet) -> LossOutput with a () loss.
    """

    def __init__(self, margin: float = 0.5, match_weight: float = 1.0, masked_nonmatch_weight: float = 1.0,
                 background_nonmatch_weight: float = 1.0, scale_by_hard_negatives: bool = True,
                 mode: str = "hinge", triplet_margin: float = 0.5, eps: float = 1e-12) -> None:
        super().__init__()
        if mode not in CONTRASTIVE_MODES:
            raise ValueError(f"mode must be one of {CONTRASTIVE_MODES}, got {mode!r}")
        if margin <= 0 or triplet_margin < 0 or eps <= 0:
            raise ValueError(f"need margin > 0, triplet_margin >= 0, eps > 0; got {margin}, "
                             f"{triplet_margin}, {eps}")
        weights = {"match_weight": match_weight, "masked_nonmatch_weight": masked_nonmatch_weight,
                   "background_nonmatch_weight": background_nonmatch_weight}
        for name, w in weights.items():
            if w < 0:
                raise ValueError(f"{name} must be >= 0, got {w}")
        self.margin = float(margin)
        self.match_weight = float(match_weight)
        self.masked_nonmatch_weight = float(masked_nonmatch_weight)
        self.background_nonmatch_weight = float(background_nonmatch_weight)
        self.scale_by_hard_negatives = bool(scale_by_hard_negatives)
        self.mode = mode
        self.triplet_margin = float(triplet_margin)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        if self.mode == "triplet":
            return f"mode='triplet', triplet_margin={self.triplet_margin}"
        return (f"margin={self.margin}, weights=({self.match_weight}, {self.masked_nonmatch_weight}, "
                f"{self.background_nonmatch_weight}), scale_by_hard_negatives={self.scale_by_hard_negatives}")

    def forward(self, desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample,
                stride: int = 1) -> LossOutput:
        check_loss_inputs(desc_a, desc_b, pairs, stride)
        mv = pairs.match_valid
        a = sample_valid(desc_a, pairs.matches_a, mv, stride)  # (B, N, D)
        b = sample_valid(desc_b, pairs.matches_b, mv, stride)
        match_sq = (a - b).pow(2).sum(-1)  # (B, N)
        l_match = masked_mean(match_sq, mv)
        if self.mode == "triplet":
            return self._triplet(a, match_sq, desc_b, pairs, stride, l_match)

        nv = pairs.nonmatch_valid
        na = sample_valid(desc_a, pairs.nonmatch_a, nv, stride)  # (B, M, D)
        nb = sample_valid(desc_b, pairs.nonmatch_b, nv, stride)
        hinge = (self.margin - _safe_norm(na - nb, self.eps)).clamp_min(0)  # (B, M)
        hard = hinge > 0
        parts = {"match": l_match}
        total = self.match_weight * l_match
        for name, sel, weight in (("masked", nv & ~pairs.nonmatch_background, self.masked_nonmatch_weight),
                                  ("background", nv & pairs.nonmatch_background,
                                   self.background_nonmatch_weight)):
            denom = safe_count(sel & hard if self.scale_by_hard_negatives else sel, hinge.dtype)
            l_nm = masked_sum(hinge.pow(2), sel) / denom
            total = total + weight * l_nm
            parts[f"nonmatch_{name}"] = l_nm
            parts[f"num_hard_negatives_{name}"] = (sel & hard).sum()
        parts["num_hard_negatives"] = (nv & hard).sum()
        parts["num_matches"] = mv.sum()
        return LossOutput(total, {k: v.detach().float() for k, v in parts.items()})

    def _triplet(self, a: torch.Tensor, match_sq: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample,
                 stride: int, l_match: torch.Tensor) -> LossOutput:
        k = check_nonmatch_layout(pairs)
        nv = pairs.nonmatch_valid & pairs.match_valid.repeat(1, k)  # anchor j % N must be valid too
        nb = sample_valid(desc_b, pairs.nonmatch_b, nv, stride)  # (B, M, D)
        anchor = a.repeat(1, k, 1)  # row j = a_{j % N}
        neg_sq = (anchor - nb).pow(2).sum(-1)
        trip = (match_sq.repeat(1, k) - neg_sq + self.triplet_margin).clamp_min(0)  # (B, M)
        loss = masked_mean(trip, nv)
        parts = {"triplet": loss, "match": l_match, "nonmatch_sq_dist": masked_mean(neg_sq, nv),
                 "num_active_triplets": (nv & (trip > 0)).sum(), "num_matches": pairs.match_valid.sum()}
        return LossOutput(loss, {name: v.detach().float() for name, v in parts.items()})
