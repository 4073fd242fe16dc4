"""Validation during training: PCK of best matches over the whole image on fixed augmentation pairs.

Uses the evaluation metrics (`eval.metrics`), so validation and `dense-descriptor eval` score alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..data.base import PairItem
from .metrics import best_match, pck, pixel_errors


@torch.no_grad()
def evaluate_pairs(describe: Callable[[torch.Tensor], torch.Tensor], items: Sequence[PairItem],
                   thresholds: Sequence[float] = (1, 3, 5, 10), seed: int = 0) -> dict[str, float]:
    """Mean PCK and median error over PairItems.

    `describe` maps (1, 3, H, W) to (1, D, h, w); the map's stride is inferred from the widths. Ties
    between equally near pixels are broken by a generator seeded with `seed`, so scores are reproducible.
    """
    gen = torch.Generator().manual_seed(seed)
    errs = []
    for it in items:
        da = describe(it.image_a[None])[0].float()
        db = describe(it.image_b[None])[0].float()
        stride = it.image_a.shape[-1] // da.shape[-1]
        v = it.pairs.match_valid[0]
        uv_a, uv_b = it.pairs.matches_a[0][v], it.pairs.matches_b[0][v]
        found = best_match(da, db, uv_a.to(da.device), uv_b.to(da.device), stride, generator=gen)
        errs.append(pixel_errors(found.uv[found.valid], uv_b.to(da.device)[found.valid]).cpu())
    e = torch.cat(errs) if errs else torch.zeros(0)
    out = pck(e, thresholds)
    out["median_px"] = e.median().item() if e.numel() else float("nan")
    out["n_points"] = float(e.numel())
    return out
