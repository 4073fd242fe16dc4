"""Small builders shared by the loss tests: descriptor maps with chosen vectors at chosen pixels, and
PairSample batches from plain lists."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dense_descriptor_ros.correspondence.pairs import PairSample

F64 = torch.float64


def map_with(h: int, w: int, d: int, values: dict[tuple[int, int], Sequence[float]],
             dtype: torch.dtype = F64) -> torch.Tensor:
    """(1, D, h, w) zero map with values[(x, y)] written at pixel column x, row y."""
    m = torch.zeros(1, d, h, w, dtype=dtype)
    for (x, y), v in values.items():
        m[0, :, y, x] = torch.tensor(v, dtype=dtype)
    return m


def pairs_from_lists(matches_a: Sequence[tuple[float, float]], matches_b: Sequence[tuple[float, float]],
                     nonmatch_a: Sequence[tuple[float, float]] = (),
                     nonmatch_b: Sequence[tuple[float, float]] = (),
                     match_valid: Sequence[bool] | None = None, nonmatch_valid: Sequence[bool] | None = None,
                     background: Sequence[bool] | None = None) -> PairSample:
    """A batch of one pair from (x, y) lists; validity defaults to all True, background to all False."""
    n, m = len(matches_a), len(nonmatch_a)

    def pts(p: Sequence[tuple[float, float]], k: int) -> torch.Tensor:
        return torch.tensor(p, dtype=F64).reshape(1, k, 2)

    def mask(v: Sequence[bool] | None, k: int, default: bool) -> torch.Tensor:
        return torch.tensor([default] * k if v is None else list(v), dtype=torch.bool).reshape(1, k)

    return PairSample(pts(matches_a, n), pts(matches_b, n), mask(match_valid, n, True), pts(nonmatch_a, m),
                      pts(nonmatch_b, m), mask(nonmatch_valid, m, True), mask(background, m, False))


def random_pairs(b: int, n: int, k: int, size: int, generator: torch.Generator, valid_frac: float = 0.7,
                 margin: float = 1.0) -> PairSample:
    """Random batch obeying the non-match layout (M = k * N, nonmatch_a[:, j] == matches_a[:, j % N]).

    Positions lie in [margin, size - 1 - margin] at a fractional offset in [0.2, 0.8] from the pixel
    grid, so bilinear sampling is differentiable there.
    """
    def positions(count: int) -> torch.Tensor:
        base = torch.randint(int(margin), int(size - 1 - margin), (b, count, 2), generator=generator)
        return base.to(F64) + 0.2 + 0.6 * torch.rand(b, count, 2, generator=generator, dtype=F64)

    ma, mb = positions(n), positions(n)
    mv = torch.rand(b, n, generator=generator) < valid_frac
    nv = torch.rand(b, n * k, generator=generator) < valid_frac
    bg = torch.rand(b, n * k, generator=generator) < 0.5
    return PairSample(ma, mb, mv, ma.repeat(1, k, 1), positions(n * k), nv, bg)
