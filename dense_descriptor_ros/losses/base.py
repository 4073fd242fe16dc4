"""What every loss returns, and the input checks and masked reductions the losses share.

Non-match layout (guaranteed by the samplers, relied on by the triplet loss): with N matches and
M non-matches per pair, M = k * N and non-match j is anchored at match j % N, i.e.
``nonmatch_a[:, j] == matches_a[:, j % N]``. ``nonmatch_background[b, j]`` says whether the non-match
point in B lies on background (Dense Object Nets weighs masked and background non-matches separately).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..checks import check_shape
from ..correspondence.pairs import PairSample, sample_descriptors


@dataclass(frozen=True)
class LossOutput:
    """A scalar loss to backpropagate and its detached scalar components for logging.

    Attributes:
        loss: () differentiable scalar.
        parts: name -> () detached scalar (e.g. "match", "nonmatch_masked", "accuracy").
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def check_loss_inputs(desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample, stride: int) -> None:
    """Raise ValueError unless the two maps and the pair batch agree.

    Shape:
        desc_a: (B, D, Ha, Wa), desc_b: (B, D, Hb, Wb); pairs has batch size B.
    """
    if not isinstance(pairs, PairSample):
        raise ValueError(f"pairs: expected a PairSample, got {type(pairs).__name__}")
    check_shape(desc_a, ("B", "D", "H", "W"), "desc_a")
    b, d = desc_a.shape[:2]
    check_shape(desc_b, (b, d, "H", "W"), "desc_b")
    check_shape(pairs.match_valid, (b, "N"), "pairs.match_valid")
    for name in ("match_valid", "nonmatch_valid", "nonmatch_background"):
        if getattr(pairs, name).dtype != torch.bool:
            raise ValueError(f"pairs.{name}: expected a bool mask, got {getattr(pairs, name).dtype}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")


def check_nonmatch_layout(pairs: PairSample) -> int:
    """Return k = M / N, raising ValueError unless M is a multiple of N (see the module docstring)."""
    n, m = pairs.match_valid.shape[1], pairs.nonmatch_valid.shape[1]
    if n == 0 or m % n != 0:
        raise ValueError(f"non-match layout: M = {m} non-matches must be a multiple of N = {n} matches "
                         "(non-match j is anchored at match j % N)")
    return m // n


def sample_valid(desc: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor, stride: int) -> torch.Tensor:
    """sample_descriptors with invalid rows moved to pixel (0, 0) first, so that whatever an invalid row
    holds (-1, NaN, far outside) never reaches the values or the gradients.

    Shape:
        desc: (B, D, h, w), uv: (B, N, 2), valid: (B, N) bool -> (B, N, D), promoted to float32 if the
        map is half precision (distances and log-sum-exps are computed in at least float32).
    """
    uv = torch.where(valid.unsqueeze(-1), uv, torch.zeros((), dtype=uv.dtype, device=uv.device))
    out = sample_descriptors(desc, uv, stride)
    return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of x where mask is True; masked entries contribute neither value nor gradient (not even NaN)."""
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum()


def safe_count(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Number of True entries as a scalar of `dtype`, at least 1 (a safe denominator)."""
    return mask.sum().clamp_min(1).to(dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the True entries of mask; 0 (with zero gradient) when no entry is True."""
    return masked_sum(x, mask) / safe_count(mask, x.dtype)
