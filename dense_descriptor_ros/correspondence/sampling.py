"""Sampling matches and non-matches from a dense correspondence field, and hard-negative mining.

Non-match layout (the losses rely on it): M = k * N and non-match j is anchored at match j % N, so
``nonmatch_a[:, j] == matches_a[:, j % N]`` (Dense Object Nets samples non-matches per match point).
"""

from __future__ import annotations

import torch

from ..checks import check_shape
from .pairs import PairSample, sample_descriptors


def _pick(pool: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n random rows of pool (P, 2) (with replacement when P < n); pool must be non-empty."""
    if pool.shape[0] >= n:
        idx = torch.randperm(pool.shape[0], generator=generator)[:n]
    else:
        idx = torch.randint(pool.shape[0], (n,), generator=generator)
    return pool[idx]


def _coords(mask: torch.Tensor) -> torch.Tensor:
    """(H, W) bool -> (P, 2) float pixel (x, y) of its True pixels."""
    yx = mask.nonzero()
    return yx.flip(-1).float()


def sample_pairs(map_ab: torch.Tensor, valid_a: torch.Tensor, size_b: tuple[int, int], n_matches: int,
                 nonmatches_per_match: int, generator: torch.Generator, mask_a: torch.Tensor | None = None,
                 mask_b: torch.Tensor | None = None, background_fraction: float = 0.5,
                 min_nonmatch_distance: float = 8.0) -> PairSample:
    """Draw matches from a dense A -> B map and non-matches for each of them.

    Matches are uniform over valid pixels of A (inside `mask_a` when given and non-empty). For every
    match, k = `nonmatches_per_match` non-matches are drawn in B: with `mask_b`, a
    `background_fraction` of them on background (outside the mask) and the rest on the object(s)
    (inside it); without a mask, uniformly over B. Non-matches closer than `min_nonmatch_distance`
    pixels to the true match are invalid.

    Shape:
        map_ab: (H, W, 2), valid_a: (H, W) bool, mask_a: (H, W) bool, mask_b: size_b bool.
        Returns a PairSample with batch size 1, N = n_matches, M = k * N.
    """
    h, w = valid_a.shape
    check_shape(map_ab, (h, w, 2), "map_ab")
    if mask_a is not None:
        check_shape(mask_a, (h, w), "mask_a")
    if mask_b is not None:
        check_shape(mask_b, tuple(size_b), "mask_b")
    if n_matches < 1 or nonmatches_per_match < 0:
        raise ValueError("n_matches must be >= 1 and nonmatches_per_match >= 0")
    if not 0.0 <= background_fraction <= 1.0:
        raise ValueError(f"background_fraction must be in [0, 1], got {background_fraction}")
    n, k = n_matches, nonmatches_per_match
    cand = valid_a.cpu()
    if mask_a is not None and (cand & mask_a.cpu()).any():
        cand = cand & mask_a.cpu()
    pool_a = _coords(cand)
    match_valid = torch.ones(n, dtype=torch.bool)
    if pool_a.shape[0] == 0:
        ua = torch.zeros(n, 2)
        match_valid[:] = False
    else:
        ua = _pick(pool_a, n, generator)
    ub = map_ab.cpu()[ua[:, 1].long(), ua[:, 0].long()]

    hb, wb = size_b
    n_bg = round(k * background_fraction) if mask_b is not None else 0
    rows_a, rows_b, rows_valid, rows_bg = [], [], [], []
    if mask_b is not None:
        pools = {False: _coords(mask_b.cpu()), True: _coords(~mask_b.cpu())}
    else:
        pools = {False: _coords(torch.ones(hb, wb, dtype=torch.bool))}
    for r in range(k):
        background = r >= k - n_bg
        pool = pools[background]
        if pool.shape[0] == 0:
            nb = torch.zeros(n, 2)
            ok = torch.zeros(n, dtype=torch.bool)
        else:
            nb = _pick(pool, n, generator)
            ok = match_valid & ((nb - ub).norm(dim=-1) >= min_nonmatch_distance)
        rows_a.append(ua)
        rows_b.append(nb)
        rows_valid.append(ok)
        rows_bg.append(torch.full((n,), background))
    empty2 = torch.zeros(0, 2)
    return PairSample(
        matches_a=ua[None], matches_b=ub[None], match_valid=match_valid[None],
        nonmatch_a=torch.cat(rows_a or [empty2])[None], nonmatch_b=torch.cat(rows_b or [empty2])[None],
        nonmatch_valid=torch.cat(rows_valid or [torch.zeros(0, dtype=torch.bool)])[None],
        nonmatch_background=torch.cat(rows_bg or [torch.zeros(0, dtype=torch.bool)])[None],
    )


@torch.no_grad()
def mine_hard_negatives(desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample, k: int,
                        min_distance: float = 8.0, stride: int = 1) -> PairSample:
    """Append, for every match, the k pixels of B closest in descriptor space to the match's A
    descriptor that lie at least `min_distance` pixels from the true match (hard negatives).

    Shape:
        desc_a, desc_b: (B, D, h, w) at `stride`; returns a PairSample with M + k * N non-matches.
    """
    if k <= 0:
        return pairs
    b, d, h, w = desc_b.shape
    n = pairs.matches_a.shape[1]
    da = sample_descriptors(desc_a, pairs.matches_a, stride)  # (B, N, D)
    flat_b = desc_b.flatten(2).transpose(1, 2)  # (B, h*w, D)
    dist = torch.cdist(da.float(), flat_b.float())  # (B, N, h*w)
    ys, xs = torch.meshgrid(torch.arange(h, device=desc_b.device), torch.arange(w, device=desc_b.device),
                            indexing="ij")
    cells = torch.stack([xs, ys], -1).reshape(-1, 2).float() * stride + (stride - 1) / 2.0  # input pixels
    near = torch.cdist(pairs.matches_b.float(), cells[None].expand(b, -1, -1)) < min_distance
    dist = dist.masked_fill(near, float("inf"))
    top = dist.topk(k, dim=-1, largest=False)  # (B, N, k)
    uv = cells[top.indices]  # (B, N, k, 2)
    ok = torch.isfinite(top.values) & pairs.match_valid[..., None]
    # layout j = r * N + i: stack by r first
    new_b = uv.permute(0, 2, 1, 3).reshape(b, k * n, 2)
    new_ok = ok.permute(0, 2, 1).reshape(b, k * n)
    new_a = pairs.matches_a.repeat(1, k, 1)
    return PairSample(
        matches_a=pairs.matches_a, matches_b=pairs.matches_b, match_valid=pairs.match_valid,
        nonmatch_a=torch.cat([pairs.nonmatch_a, new_a], 1), nonmatch_b=torch.cat([pairs.nonmatch_b, new_b], 1),
        nonmatch_valid=torch.cat([pairs.nonmatch_valid, new_ok], 1),
        nonmatch_background=torch.cat([pairs.nonmatch_background, torch.zeros_like(new_ok)], 1),
    )
