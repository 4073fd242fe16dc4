"""PCK of best matches over the whole image on augmentation pairs (the training core's held-out check).

The full evaluation suite (DON metrics, cross-instance, baselines) builds on `best_match_errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..correspondence.pairs import check_shape, sample_descriptors
from ..data.base import PairItem


def best_match_errors(desc_a: torch.Tensor, desc_b: torch.Tensor, uv_a: torch.Tensor, uv_b: torch.Tensor,
                      stride: int = 1, chunk: int = 512) -> torch.Tensor:
    """Pixel error of the best match in all of B for each query point of A.

    The best match is the pixel of B whose descriptor is nearest (L2) to A's descriptor at uv_a.

    Shape:
        desc_a, desc_b: (D, h, w) at `stride`; uv_a, uv_b: (N, 2) true correspondences -> (N,) errors in
        input pixels.
    """
    check_shape(desc_a, ("D", "h", "w"), "desc_a")
    check_shape(desc_b, (desc_a.shape[0], "h", "w"), "desc_b")
    check_shape(uv_a, ("N", 2), "uv_a")
    check_shape(uv_b, (uv_a.shape[0], 2), "uv_b")
    d, h, w = desc_b.shape
    q = sample_descriptors(desc_a[None], uv_a[None], stride)[0]  # (N, D)
    flat = desc_b.reshape(d, -1).T  # (h*w, D)
    best = torch.cat([torch.cdist(q[i:i + chunk], flat).argmin(1) for i in range(0, q.shape[0], chunk)])
    pred = torch.stack([best % w, best // w], -1).float() * stride + (stride - 1) / 2.0
    return (pred - uv_b).norm(dim=-1)


def pck(errors: torch.Tensor, thresholds: Sequence[float] = (1, 3, 5, 10)) -> dict[str, float]:
    """Fraction of errors at or below each threshold (pixels)."""
    if errors.numel() == 0:
        return {f"pck@{t:g}": float("nan") for t in thresholds}
    return {f"pck@{t:g}": (errors <= t).float().mean().item() for t in thresholds}


@torch.no_grad()
def evaluate_pairs(describe: Callable[[torch.Tensor], torch.Tensor], items: Sequence[PairItem],
                   thresholds: Sequence[float] = (1, 3, 5, 10)) -> dict[str, float]:
    """Mean PCK and median error over PairItems; `describe` maps (1, 3, H, W) to (1, D, H, W)."""
    errs = []
    for it in items:
        da = describe(it.image_a[None])[0]
        db = describe(it.image_b[None])[0]
        stride = it.image_a.shape[-1] // da.shape[-1]
        v = it.pairs.match_valid[0]
        errs.append(best_match_errors(da.float(), db.float(), it.pairs.matches_a[0][v].to(da.device),
                                      it.pairs.matches_b[0][v].to(da.device), stride))
    e = torch.cat(errs) if errs else torch.zeros(0)
    out = pck(e, thresholds)
    out["median_px"] = e.median().item() if e.numel() else float("nan")
    out["n_points"] = float(e.numel())
    return out
