"""The matcher's training losses (LoFTR's supervision): negative log-likelihood of the true coarse cell under the
dual-softmax, and the squared error of the refined position at the true coarse cells.

Ground truth arrives as B pixel positions of A's coarse cell centres (`data.MatchItem.target_b`, NaN = none); the
true coarse cell of B is the one containing that position.
"""

from __future__ import annotations

import torch

from ..checks import check_shape


def target_cells(target_b: torch.Tensor, coarse_stride: int, hc: int, wc: int) -> torch.Tensor:
    """Flat coarse cell of B containing each target (-1 where there is none or it falls outside the coarse grid).

    Shape:
        target_b: (B, N, 2) pixel (x, y), NaN = none -> (B, N) int64.
    """
    check_shape(target_b, ("B", "N", 2), "target_b")
    cell = torch.floor((target_b.nan_to_num(-1e6) + 0.5) / coarse_stride)
    col, row = cell[..., 0], cell[..., 1]
    ok = torch.isfinite(target_b).all(-1) & (col >= 0) & (col < wc) & (row >= 0) & (row < hc)
    return torch.where(ok, (row * wc + col).long(), torch.full_like(col, -1).long())


def to_fine(uv: torch.Tensor, stride: int) -> torch.Tensor:
    """Image pixel (x, y) -> fine-map (column, row) of a stride-`stride` map."""
    return (uv + 0.5) / stride - 0.5


def coarse_loss(logp: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Mean -log P(i, true j) over the cells of A that have a true cell (0 when none has).

    Shape:
        logp: (B, Na, Nb) dual-softmax log-probabilities; cells: (B, Na) int64, -1 = none -> scalar.
    """
    check_shape(cells, tuple(logp.shape[:2]), "cells")
    ok = cells >= 0
    picked = logp.gather(2, cells.clamp(min=0)[..., None])[..., 0]
    return -(picked * ok).sum() / ok.sum().clamp(min=1)


def coarse_accuracy(logp: torch.Tensor, cells: torch.Tensor) -> float:
    """Share of A's cells with a true cell whose most probable cell is it."""
    ok = cells >= 0
    return float(((logp.argmax(2) == cells) & ok).sum() / ok.sum().clamp(min=1))


def fine_loss(position: torch.Tensor, target: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Mean squared distance (fine cells^2) of the refined positions to the true ones where `ok`.

    Shape:
        position, target: (B, M, 2) fine-map coordinates; ok: (B, M) bool -> scalar.
    """
    check_shape(target, tuple(position.shape), "target")
    err = ((position - target.nan_to_num(0.0)) ** 2).sum(-1)
    return (err * ok).sum() / ok.sum().clamp(min=1)


def window_targets(gx: torch.Tensor, gy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bilinear (tent) weights of each target over the window's cells: the four cells around it share 1 (less where
    some of them are outside the window).

    Shape:
        gx, gy: (B, M, K) fine-map column / row of the window cells; target: (B, M, 2) -> (B, M, K).
    """
    t = target.nan_to_num(0.0)
    return ((1 - (gx - t[..., :1]).abs()).clamp(min=0) * (1 - (gy - t[..., 1:]).abs()).clamp(min=0))


def fine_window_loss(logits: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, target: torch.Tensor,
                     ok: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the window's softmax against the bilinear weights of the true position, averaged where `ok`:
    a classification signal beside the expectation's squared error (which alone trains slowly: at init the window is
    flat and the expectation sits at its centre).

    Shape:
        logits, gx, gy: (B, M, K) (`MatcherNet.window_logits`); target: (B, M, 2); ok: (B, M) bool -> scalar.
    """
    w = window_targets(gx, gy, target) * (logits > -1e3)  # no weight on cells outside the map (masked logits)
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-6)
    ce = -(w * logits.log_softmax(-1)).sum(-1)
    return (ce * ok).sum() / ok.sum().clamp(min=1)


def chance_coarse_loss(na: int, nb: int) -> float:
    """The coarse loss of a matcher whose similarities are all equal: log Na + log Nb (the loss at init)."""
    import math

    return math.log(na) + math.log(nb)


__all__ = ["target_cells", "to_fine", "coarse_loss", "coarse_accuracy", "fine_loss", "window_targets",
           "fine_window_loss", "chance_coarse_loss"]
