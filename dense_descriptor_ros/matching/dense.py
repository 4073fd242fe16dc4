"""Frame-to-frame correspondences: mutual nearest neighbours with a ratio test, direct or coarse-to-fine.

Coarse-to-fine (the default): both maps are average-pooled by `coarse_factor`; every query is matched
against the whole coarse map of the other frame (where the ratio test is taken), then refined in a small
window of the fine map around the coarse winner, then to subpixel precision by a quadratic fit of the
squared descriptor distance over the 3x3 neighbourhood. The mutual check runs the same search backwards
and accepts a match when it lands within `mutual_radius` cells of the query. `coarse_factor=1` is
direct matching against every fine cell (f^2 times more distance computations).
benchmarks/latency.py compares the two in accuracy and speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..descriptor_map import DescriptorMap


def _check(a: np.ndarray, ndim: int, last: int | None, name: str) -> None:
    if a.ndim != ndim or (last is not None and a.shape[-1] != last):
        shape = ", ".join(["..."] * (ndim - 1) + [str(last) if last is not None else "..."])
        raise ValueError(f"{name}: expected shape ({shape}), got {a.shape}")


def sample_map(desc: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Bilinear descriptors at map coordinates (column, row); positions are clamped to the map.

    Shape:
        desc: (h, w, D); p: (N, 2) -> (N, D) float32.
    """
    _check(desc, 3, None, "desc")
    _check(p, 2, 2, "p")
    h, w = desc.shape[:2]
    x = np.clip(p[:, 0], 0, w - 1)
    y = np.clip(p[:, 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    y0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None].astype(np.float32), (y - y0)[:, None].astype(np.float32)
    d = desc.astype(np.float32, copy=False).reshape(h * w, -1)
    # np.take is several times faster than fancy indexing for row gathers.
    top = np.take(d, y0 * w + x0, axis=0) * (1 - fx) + np.take(d, y0 * w + x1, axis=0) * fx
    bottom = np.take(d, y1 * w + x0, axis=0) * (1 - fx) + np.take(d, y1 * w + x1, axis=0) * fx
    return top * (1 - fy) + bottom * fy


def pairwise_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (N, D) x (M, D) -> (N, M) float32, via one matrix product."""
    a = a.astype(np.float32, copy=False)
    d = _partial_sqdist(a, b)
    d += np.einsum("nd,nd->n", a, a)[:, None]
    return np.maximum(d, 0.0, out=d)


def _partial_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|b|^2 - 2 a.b (N, M): the squared distance minus the per-row constant |a|^2 (enough for argmin).

    One product of [a, 1] with [-2 b, |b|^2]: no extra pass over the (N, M) result."""
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    a1 = np.concatenate([a, np.ones((len(a), 1), np.float32)], 1)
    b1 = np.concatenate([-2.0 * b, np.einsum("md,md->m", b, b)[:, None]], 1)
    return a1 @ b1.T


# Least squares f(x, y) = c0 + c1 x + c2 y + c3 x^2 + c4 xy + c5 y^2 over the 3x3 grid (row-major, y first).
_YY, _XX = np.mgrid[-1:2, -1:2]
_QUAD_PINV = np.linalg.pinv(np.stack([np.ones(9), _XX.ravel(), _YY.ravel(), _XX.ravel() ** 2,
                                      (_XX * _YY).ravel(), _YY.ravel() ** 2], 1))


def quadratic_subpixel(patch: np.ndarray) -> np.ndarray:
    """Offset (dx, dy) of the minimum of a 2-D quadratic fitted to 3x3 cost patches centred on their
    discrete minimum; 0 where the fit is not a bowl, clipped to [-1, 1].

    A squared descriptor distance is locally quadratic in the offset (|J d|^2 for the map's Jacobian J),
    so the full quadratic (with the xy term) is the right model; separable parabolas are biased when
    the map's gradients are not axis-aligned.

    Shape:
        patch: (N, 3, 3) -> (N, 2).
    """
    _check(patch, 3, 3, "patch")
    c = patch.reshape(-1, 9).astype(np.float64) @ _QUAD_PINV.T  # (N, 6)
    hxx, hxy, hyy = 2 * c[:, 3], c[:, 4], 2 * c[:, 5]
    det = hxx * hyy - hxy * hxy
    ok = (det > 1e-12 * np.maximum(hxx * hyy, 1e-30)) & (hxx > 0)
    safe = np.where(ok, det, 1.0)
    dx = -(hyy * c[:, 1] - hxy * c[:, 2]) / safe
    dy = -(hxx * c[:, 2] - hxy * c[:, 1]) / safe
    off = np.stack([dx, dy], 1)
    off[~ok] = 0.0
    return np.clip(off, -1.0, 1.0)


def subpixel_refine(desc: np.ndarray, q: np.ndarray, rc: np.ndarray, iters: int = 2) -> np.ndarray:
    """Subpixel map position (column, row) of the best match of each query at integer cell `rc`.

    A quadratic fit of the 3x3 squared distances gives the start; `iters` Gauss-Newton steps on
    |F(p) - q|^2 over the bilinearly interpolated map F (the Lucas-Kanade update on descriptors) then
    remove most of the fit's bias (about 3x smaller errors on smooth synthetic maps).

    Shape:
        desc: (h, w, D); q: (N, D); rc: (N, 2) int (row, column) -> (N, 2) float (column, row).
    """
    h, w = desc.shape[:2]
    desc = desc.astype(np.float32, copy=False)
    q = q.astype(np.float32, copy=False)
    r, c = rc[:, 0], rc[:, 1]
    rr = np.clip(r[:, None, None] + _YY[None], 0, h - 1)
    cc = np.clip(c[:, None, None] + _XX[None], 0, w - 1)
    diff = np.take(desc.reshape(h * w, -1), rr * w + cc, axis=0) - q[:, None, None, :]
    off = quadratic_subpixel(np.einsum("nijd,nijd->nij", diff, diff))
    inside = (r > 0) & (r < h - 1) & (c > 0) & (c < w - 1)
    off[~inside] = 0.0  # a one-sided neighbourhood cannot bracket the minimum
    start = np.stack([c, r], 1).astype(np.float64)
    p = start + off
    steps = np.array([[0.0, 0.0], [0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5]])
    n, dim = len(p), desc.shape[2]
    for _ in range(iters):
        f = sample_map(desc, (p[None] + steps[:, None]).reshape(-1, 2)).reshape(5, n, dim)  # one gather
        jx, jy = f[1] - f[2], f[3] - f[4]  # (N, D) derivatives per cell
        res = f[0] - q
        hxx, hxy, hyy = (jx * jx).sum(1), (jx * jy).sum(1), (jy * jy).sum(1)
        gx, gy = (jx * res).sum(1), (jy * res).sum(1)
        det = hxx * hyy - hxy * hxy
        det = np.where(det > 1e-12, det, np.inf)  # flat: no step
        step = np.stack([(hyy * gx - hxy * gy) / det, (hxx * gy - hxy * gx) / det], 1)
        p = p - np.clip(step, -0.5, 0.5)
    # Beyond one cell from the discrete minimum the local model has failed: keep the quadratic fit.
    bad = (np.abs(p - start) > 1.0).any(1) | ~np.isfinite(p).all(1)
    p[bad] = (start + off)[bad]
    return np.clip(p, 0, [w - 1, h - 1])


def pool_map(desc: np.ndarray, factor: int, normalize: bool = False) -> np.ndarray:
    """Average-pool (h, w, D) by `factor` (edge-padded) -> (ceil(h/f), ceil(w/f), D) float32."""
    desc = desc.astype(np.float32, copy=False)
    if factor == 1:
        return desc
    h, w, _ = desc.shape
    hc, wc = -(-h // factor), -(-w // factor)
    if (hc * factor, wc * factor) != (h, w):
        desc = np.pad(desc, ((0, hc * factor - h), (0, wc * factor - w), (0, 0)), "edge")
    # Sum of f*f strided views: several times faster than reshape + mean over two axes.
    out = desc[::factor, ::factor].copy()
    for i in range(factor):
        for j in range(factor):
            if i or j:
                out += desc[i::factor, j::factor]
    out *= np.float32(1.0 / factor**2)
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
    return out


def mask_to_map(mask: np.ndarray, dmap: DescriptorMap) -> np.ndarray:
    """A bool mask of the image (H, W) or of the map (h, w) -> (h, w) bool, sampled at cell centres."""
    h, w = dmap.descriptors.shape[:2]
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.shape == (h, w):
        return mask
    if mask.shape != (dmap.image_size[1], dmap.image_size[0]):
        raise ValueError(f"mask: expected shape {(dmap.image_size[1], dmap.image_size[0])} (image) or "
                         f"{(h, w)} (map), got {mask.shape}")
    xs = np.clip(np.rint(dmap.to_image(np.stack([np.arange(w), np.zeros(w)], 1))[:, 0]), 0, mask.shape[1] - 1)
    ys = np.clip(np.rint(dmap.to_image(np.stack([np.zeros(h), np.arange(h)], 1))[:, 1]), 0, mask.shape[0] - 1)
    return mask[ys.astype(np.int64)[:, None], xs.astype(np.int64)[None, :]]


@dataclass
class Correspondences:
    """Matches between frame A and frame B, best (lowest ratio) first.

    Shape:
        uv_a, uv_b: (M, 2) float64 pixel (x, y) in A and B; distance: (M,) descriptor distance;
        ratio: (M,) best / second-best distance (lower is more distinctive).
    """

    uv_a: np.ndarray
    uv_b: np.ndarray
    distance: np.ndarray
    ratio: np.ndarray

    def __len__(self) -> int:
        return len(self.uv_a)


def _ratio(d1: np.ndarray, d2: np.ndarray, q_sq: np.ndarray) -> np.ndarray:
    """sqrt(d1 / d2) of squared distances; the epsilon (relative to |q|^2, above float32 cancellation
    noise, so scale-free) makes two exact copies give 1 (ambiguous) instead of 0/0."""
    eps = 1e-6 * q_sq + 1e-30
    return np.sqrt((np.maximum(d1, 0) + eps) / (np.maximum(d2, 0) + eps))


def match_descriptors(desc_a: np.ndarray, desc_b: np.ndarray, max_ratio: float = 1.0, mutual: bool = True,
                      max_matches: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest neighbours between two descriptor sets (e.g. at detected keypoints), mutual check and
    Lowe's ratio test (second-nearest over the whole set).

    Shape:
        desc_a: (N, D), desc_b: (M, D) -> idx_a (K,), idx_b (K,) int64, distance (K,), ratio (K,),
        sorted by ratio and capped at `max_matches` (0 = no cap).
    """
    _check(desc_a, 2, None, "desc_a")
    _check(desc_b, 2, desc_a.shape[1], "desc_b")
    if len(desc_a) == 0 or len(desc_b) == 0:
        e = np.zeros(0, np.int64)
        return e, e.copy(), np.zeros(0, np.float32), np.zeros(0, np.float32)
    d = pairwise_sqdist(desc_a, desc_b)
    ia = np.arange(len(desc_a))
    ib = d.argmin(1)
    d1 = d[ia, ib]
    if len(desc_b) > 1:
        d2 = np.partition(d, 1, axis=1)[:, 1]
        ratio = _ratio(d1, d2, (desc_a.astype(np.float32) ** 2).sum(1))
    else:
        ratio = np.zeros_like(d1)
    keep = ratio <= max_ratio
    if mutual:
        keep &= d.argmin(0)[ib] == ia
    order = np.argsort(ratio[keep], kind="stable")
    if max_matches > 0:
        order = order[:max_matches]
    ia, ib = ia[keep][order], ib[keep][order]
    return ia, ib, np.sqrt(d1[keep][order]), ratio[keep][order]


def _window(center: np.ndarray, radius: int, size: int) -> np.ndarray:
    """(N,) int centres -> (N, 2r+1) clipped indices."""
    return np.clip(center[:, None] + np.arange(-radius, radius + 1)[None], 0, size - 1)


def _search(q: np.ndarray, fine: np.ndarray, fine_sq: np.ndarray, coarse: np.ndarray, factor: int,
            margin: int, fine_ok: np.ndarray | None, coarse_ok: np.ndarray | None, excl: int,
            candidates: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coarse-to-fine nearest neighbour of every query.

    The coarse level gives the best cell and, excluding `excl` coarse cells (Chebyshev) around each
    pick, the next `candidates - 1` ones; the fine cells under every candidate (plus `margin`) are
    searched. `fine_sq` holds the squared norms of `fine`. Returns (N, 2) int (row, column) fine cells,
    (N,) squared distance and (N,) ratio best / second-best coarse distance (the second best outside
    `excl` of the best; NaN if `excl` < 0, which also means one candidate).
    """
    n = len(q)
    hc, wc, dim = coarse.shape
    h, w, _ = fine.shape
    q_sq = np.einsum("nd,nd->n", q, q)
    d = _partial_sqdist(q, coarse.reshape(hc * wc, dim))
    if coarse_ok is not None:
        d[:, ~coarse_ok.ravel()] = np.inf
    rows = np.arange(n)
    picks = [d.argmin(1)]
    d1 = d[rows, picks[0]] + q_sq
    ratio = np.full(n, np.nan, np.float32)
    for c in range(1, max(candidates, 2) if excl >= 0 else 1):
        j = picks[-1]
        nb = _window(j // wc, excl, hc)[:, :, None] * wc + _window(j % wc, excl, wc)[:, None, :]
        d[rows[:, None], nb.reshape(n, -1)] = np.inf
        nxt = d.argmin(1)
        if c == 1:
            d2 = d[rows, nxt] + q_sq
            ratio = np.where(np.isfinite(d2), _ratio(d1, d2, q_sq), 0.0).astype(np.float32)
        if c < candidates:
            picks.append(np.where(np.isfinite(d[rows, nxt]), nxt, picks[0]))
    if factor == 1:
        return np.stack([picks[0] // wc, picks[0] % wc], 1), np.maximum(d1, 0), ratio
    # Refine in the fine cells under each coarse candidate, plus `margin` cells around them.
    s = factor + 2 * margin
    span = np.arange(s)[None]
    idx = []
    for j in picks:
        rr = np.clip((j // wc)[:, None] * factor - margin + span, 0, h - 1)  # (N, s)
        cc = np.clip((j % wc)[:, None] * factor - margin + span, 0, w - 1)
        idx.append((rr[:, :, None] * w + cc[:, None, :]).reshape(n, s * s))
    idx = np.concatenate(idx, 1)
    win = np.take(fine.reshape(h * w, dim), idx, axis=0)  # (N, k*s*s, D)
    dw = fine_sq.ravel()[idx] - 2.0 * np.matmul(win, q[:, :, None])[..., 0]
    if fine_ok is not None:
        dw[~fine_ok.ravel()[idx]] = np.inf
    best = dw.argmin(1)
    cell = idx[rows, best]
    return np.stack([cell // w, cell % w], 1), np.maximum(dw[rows, best] + q_sq, 0), ratio


def match_dense(map_a: DescriptorMap, map_b: DescriptorMap, points_a: np.ndarray | None = None,
                grid_step: float = 16.0, coarse_factor: int = 4, candidates: int = 1, refine_margin: int = 2,
                max_ratio: float = 0.9, ratio_radius: float = 12.0, mutual: bool = True,
                mutual_radius: float = 1.5, max_matches: int = 500, mask_a: np.ndarray | None = None,
                mask_b: np.ndarray | None = None, subpixel: bool = True) -> Correspondences:
    """Dense correspondences from frame A to frame B.

    Args:
        points_a: (N, 2) query pixels (x, y) in A (e.g. `detect_keypoints`); default: a grid with
            `grid_step` pixels spacing.
        coarse_factor: pooling factor of the coarse level (1 = direct matching at the fine level).
            Coarse-to-fine needs descriptors that are smooth at the pooled scale (benchmarks/latency.py
            measures the agreement with direct matching against smoothness).
        candidates: coarse cells refined per query (more = closer to direct matching, slower).
        refine_margin: fine cells searched around the coarse winner's cells.
        max_ratio: ratio test threshold (best / second-best distance, the second best taken at least
            `ratio_radius` pixels away from the best, as neighbours of a smooth map are always close).
        mutual_radius: the backward search must land within this many fine cells of the query.
        max_matches: cap on the number returned (0 = no cap), most distinctive first.
        mask_a, mask_b: optional bool masks ((H, W) image or (h, w) map) restricting both ends.

    Returns:
        Correspondences (pixel coordinates in each frame's input image).
    """
    if map_a.descriptor_dim != map_b.descriptor_dim:
        raise ValueError(f"descriptor dimensions differ: {map_a.descriptor_dim} vs {map_b.descriptor_dim}")
    if coarse_factor < 1:
        raise ValueError(f"coarse_factor must be >= 1, got {coarse_factor}")
    fa = map_a.descriptors.astype(np.float32, copy=False)
    fb = map_b.descriptors.astype(np.float32, copy=False)
    ha, wa, _ = fa.shape
    ok_a = mask_to_map(mask_a, map_a) if mask_a is not None else None
    ok_b = mask_to_map(mask_b, map_b) if mask_b is not None else None

    if points_a is None:
        w_img, h_img = map_a.image_size
        gx, gy = np.meshgrid(np.arange(grid_step / 2 - 0.5, w_img, grid_step),
                             np.arange(grid_step / 2 - 0.5, h_img, grid_step))
        cells = np.clip(np.rint(map_a.to_map(np.stack([gx.ravel(), gy.ravel()], 1))), 0, [wa - 1, ha - 1])
        flat = np.unique(cells[:, 1].astype(np.int64) * wa + cells[:, 0].astype(np.int64))  # a grid finer
        pa = np.stack([flat % wa, flat // wa], 1).astype(np.float64)  # than the map repeats cells
        qa = np.take(fa.reshape(ha * wa, -1), flat, axis=0)
    else:
        _check(np.asarray(points_a), 2, 2, "points_a")
        pa = map_a.to_map(points_a)
        qa = sample_map(fa, pa)
    if ok_a is not None:
        inside = ok_a[np.clip(np.rint(pa[:, 1]), 0, ha - 1).astype(np.int64),
                      np.clip(np.rint(pa[:, 0]), 0, wa - 1).astype(np.int64)]
        pa, qa = pa[inside], qa[inside]

    if len(pa) == 0:  # no query (a featureless frame A, or a mask with nothing in it): no matches, not an error
        e = np.zeros((0, 2))
        return Correspondences(e, e.copy(), np.zeros(0, np.float32), np.zeros(0, np.float32))
    f = coarse_factor
    ca, cb = pool_map(fa, f, map_a.normalized), pool_map(fb, f, map_b.normalized)
    cok_a = pool_map(ok_a[..., None].astype(np.float32), f)[..., 0] > 0 if ok_a is not None else None
    cok_b = pool_map(ok_b[..., None].astype(np.float32), f)[..., 0] > 0 if ok_b is not None else None
    excl = int(np.ceil(ratio_radius / (f * min(map_b.stride))))
    sq_a, sq_b = np.einsum("hwd,hwd->hw", fa, fa), np.einsum("hwd,hwd->hw", fb, fb)  # for the refinement
    rc_b, d1, ratio = _search(qa, fb, sq_b, cb, f, refine_margin, ok_b, cok_b, excl, candidates)
    keep = np.isfinite(d1) & (ratio <= max_ratio)
    pa, qa, rc_b, d1, ratio = pa[keep], qa[keep], rc_b[keep], d1[keep], ratio[keep]
    if mutual and len(pa):
        back, _, _ = _search(fb[rc_b[:, 0], rc_b[:, 1]], fa, sq_a, ca, f, refine_margin, ok_a, cok_a,
                             excl if candidates > 1 else -1, candidates)
        err = np.hypot(back[:, 1] - pa[:, 0], back[:, 0] - pa[:, 1])
        keep = err <= mutual_radius
        pa, qa, rc_b, d1, ratio = pa[keep], qa[keep], rc_b[keep], d1[keep], ratio[keep]
    order = np.argsort(ratio, kind="stable")
    if max_matches > 0:
        order = order[:max_matches]
    pa, qa, rc_b, d1, ratio = pa[order], qa[order], rc_b[order], d1[order], ratio[order]
    pb = subpixel_refine(fb, qa, rc_b) if subpixel else rc_b[:, ::-1].astype(np.float64)
    return Correspondences(map_a.to_image(pa), map_b.to_image(pb), np.sqrt(d1), ratio)
