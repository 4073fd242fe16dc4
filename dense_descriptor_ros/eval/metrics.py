"""Every evaluation metric, in one place: pure torch, device-agnostic, no data loading.

Dense Object Nets (Florence et al. 2018, section V) scores a descriptor by the *best match*: the pixel
of image B whose descriptor is nearest (L2) to the descriptor of a query pixel of A. From it:

* pixel error of the best match (L2, input pixels) and its cumulative distribution (= PCK curve);
* fraction of matches under k pixels (PCK@k) and the area under the PCK curve up to 25 px;
* 3D error of the best match in metres (both pixels lifted with B's depth);
* fraction of B's pixels closer to the query than the ground truth in descriptor space.

Ties are handled so that degenerate descriptors score chance instead of an artefact of argmin: a best
match tied with others (a constant descriptor, a flat colour region) is drawn uniformly among the tied
pixels with a seeded generator, and tied pixels count half in the fraction closer. A perfect descriptor
scores PCK 1, zero error and fraction closer 0; a constant one scores PCK at chance and fraction 0.5.

`effective_rank`, `descriptor_health` detect collapse; `matching_accuracy` scores the output of a
matcher (coarse or refined) against ground truth.

This supersedes `augment_pck.best_match_errors` (which breaks ties towards pixel (0, 0)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..checks import check_shape
from ..correspondence.pairs import sample_descriptors

#: PCK thresholds (pixels) reported everywhere.
PCK_THRESHOLDS = (1.0, 3.0, 5.0, 10.0)
#: Upper limit (pixels) of the area under the PCK curve.
AUC_MAX_PX = 25.0
#: Distances within this fraction of the squared-distance scale count as ties (float32 round-off of
#: identical descriptors is ~1e-7 of it; distinct descriptors of any useful map differ by far more).
TIE_RTOL = 1e-6


@dataclass
class BestMatches:
    """Best match in B of each query.

    Shape:
        uv: (N, 2) pixel (x, y) in B's input image, -1 where invalid.
        distance: (N,) descriptor distance of the best match (NaN where invalid).
        frac_closer: (N,) fraction of the other searched pixels closer than the ground truth, ties
            counted half: 0 for a perfect descriptor, 0.5 for a constant one (NaN where no ground truth
            was given or invalid).
        valid: (N,) bool, False when B had no pixel to search.
    """

    uv: torch.Tensor
    distance: torch.Tensor
    frac_closer: torch.Tensor
    valid: torch.Tensor


def nearest_pixels(query: torch.Tensor, desc_b: torch.Tensor, stride: int = 1,
                   mask_b: torch.Tensor | None = None, truth_b: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, chunk_elems: int = 1 << 23) -> BestMatches:
    """Best match of each query descriptor over the pixels of a descriptor map.

    Distances are computed on descriptors centred on B's mean (removes the cancellation of a common
    offset in float32) in chunks of queries, so memory stays at `chunk_elems` floats per buffer.

    Args:
        query: (N, D) query descriptors.
        desc_b: (D, h, w) descriptor map of B at `stride`; pixel (j, i) of the map is centred on input
            pixel ((j + 0.5) * stride - 0.5, (i + 0.5) * stride - 0.5).
        mask_b: optional (h, w) bool, the pixels that may be matched (e.g. the target object).
        truth_b: optional (N, 2) ground-truth pixel (x, y) in B for the fraction closer.
        generator: draws among tied best matches (seed it for reproducible results).
    """
    check_shape(query, ("N", "D"), "query")
    check_shape(desc_b, (query.shape[1], "h", "w"), "desc_b")
    n = query.shape[0]
    d, h, w = desc_b.shape
    dev = desc_b.device
    flat = desc_b.reshape(d, -1).T.float()
    index = torch.arange(h * w, device=dev)
    if mask_b is not None:
        check_shape(mask_b, (h, w), "mask_b")
        index = index[mask_b.reshape(-1).to(dev)]
        flat = flat[index]
    m = flat.shape[0]
    uv = torch.full((n, 2), -1.0, device=dev)
    dist = torch.full((n,), math.nan, device=dev)
    frac = torch.full((n,), math.nan, device=dev)
    if m == 0 or n == 0:
        return BestMatches(uv, dist, frac, torch.zeros(n, dtype=torch.bool, device=dev))
    mean = flat.mean(0)
    flat = flat - mean
    q = query.to(dev).float() - mean
    b_sq = (flat * flat).sum(1)
    q_sq = (q * q).sum(1)
    # (N,) per-query tie tolerance on squared distances: round-off of the centred float32 products, plus
    # that of the raw values themselves (what is left of a constant map after centring)
    raw_sq = (query.to(dev).float() ** 2).sum(1) + (mean * mean).sum()
    tol = TIE_RTOL * (q_sq + b_sq.mean()) + 1e-12 * raw_sq + 1e-30
    t_part = None
    if truth_b is not None:
        check_shape(truth_b, (n, 2), "truth_b")
        t = sample_descriptors(desc_b[None].float(), truth_b[None].to(dev).float(), stride)[0] - mean
        t_part = (t * t).sum(1) - 2.0 * (q * t).sum(1)  # |q - t|^2 - |q|^2, like the buffer below
    flat_t = flat.T.contiguous()
    rows = max(1, chunk_elems // m)
    buf = torch.empty(min(rows, n), m, device=dev)
    best = torch.empty(n, dtype=torch.long, device=dev)
    best_part = torch.empty(n, device=dev)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        dd = torch.addmm(b_sq, q[s:e], flat_t, alpha=-2.0, out=buf[: e - s])  # |q - b|^2 - |q|^2
        if m >= 2:
            vals, idx = torch.topk(dd, 2, dim=1, largest=False)
            tied = vals[:, 1] <= vals[:, 0] + tol[s:e]
            if tied.any():
                r = tied.nonzero()[:, 0]
                cand = dd[r] <= (vals[r, 0] + tol[s:e][r])[:, None]
                u = torch.rand(cand.shape, generator=generator, device=dev) if generator is not None \
                    else torch.rand(cand.shape, device=dev)
                idx[r, 0] = u.masked_fill_(~cand, 2.0).argmin(1)
            best[s:e], best_part[s:e] = idx[:, 0], vals[:, 0]
        else:
            best[s:e], best_part[s:e] = 0, dd[:, 0]
        if t_part is not None:
            # sum over pixels of sign(distance - truth distance), soft within the tie tolerance:
            # closer pixels count -1, farther +1, ties 0 (in place: the buffer is not needed any more)
            tl = tol[s:e, None]
            dd.sub_(t_part[s:e, None]).clamp_(min=-tl, max=tl)
            signs = dd.sum(1) / tl[:, 0]
            # rank of the truth among the m pixels, ties counted half, the truth's own slot left out
            frac[s:e] = ((0.5 * (m - signs) - 0.5) / max(m - 1, 1)).clamp(0.0, 1.0)
    pix = index[best]
    uv = torch.stack([pix % w, pix // w], -1).float() * stride + (stride - 1) / 2.0
    dist = (best_part + q_sq).clamp_min(0.0).sqrt()
    return BestMatches(uv, dist, frac, torch.ones(n, dtype=torch.bool, device=dev))


def best_match(desc_a: torch.Tensor, desc_b: torch.Tensor, uv_a: torch.Tensor,
               uv_b: torch.Tensor | None = None, stride: int = 1, mask_b: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> BestMatches:
    """Best match in B of the descriptors of A at `uv_a` (bilinear, pixel centres at integers).

    Shape:
        desc_a, desc_b: (D, h, w) at `stride`; uv_a: (N, 2); uv_b: optional (N, 2) ground truth in B;
        mask_b: optional (h, w) bool.
    """
    check_shape(desc_a, ("D", "h", "w"), "desc_a")
    check_shape(uv_a, ("N", 2), "uv_a")
    q = sample_descriptors(desc_a[None].float(), uv_a[None].to(desc_a.device).float(), stride)[0]
    return nearest_pixels(q, desc_b, stride, mask_b, uv_b, generator)


def pixel_errors(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(N, 2), (N, 2) -> (N,) L2 distance in pixels."""
    check_shape(pred, ("N", 2), "pred")
    check_shape(truth, (pred.shape[0], 2), "truth")
    return (pred.float() - truth.to(pred.device).float()).norm(dim=-1)


def pck(errors: torch.Tensor, thresholds: Sequence[float] = PCK_THRESHOLDS) -> dict[str, float]:
    """Fraction of errors at or below each threshold ("pck@k"; NaN for no errors)."""
    e = errors.reshape(-1)
    if e.numel() == 0:
        return {f"pck@{t:g}": math.nan for t in thresholds}
    return {f"pck@{t:g}": (e <= t).double().mean().item() for t in thresholds}


def pck_curve(errors: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """PCK at every threshold: the empirical CDF of the errors. (N,), (T,) -> (T,)."""
    e = errors.reshape(-1).float()
    t = thresholds.to(e.device).float()
    if e.numel() == 0:
        return torch.full_like(t, math.nan)
    return (e[None, :] <= t[:, None]).float().mean(1)


def pck_auc(errors: torch.Tensor, max_px: float = AUC_MAX_PX) -> float:
    """Area under the PCK curve on [0, max_px], normalised to [0, 1].

    Exact for the empirical CDF: (1 / T) * integral_0^T mean(e <= t) dt = mean(max(0, 1 - e / T)).
    """
    e = errors.reshape(-1).double()
    if e.numel() == 0:
        return math.nan
    return (1.0 - e / max_px).clamp_min(0.0).mean().item()


def error_cdf(errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted errors and the fraction of errors at or below each: the CDF's steps. (N,) -> (N,), (N,)."""
    e = errors.reshape(-1).float().sort().values
    return e, torch.arange(1, e.numel() + 1, device=e.device, dtype=torch.float32) / max(e.numel(), 1)


def lift_pixels(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-frame 3D points of pixels, with the depth of the nearest pixel centre.

    Shape:
        uv: (N, 2) pixel (x, y); depth: (H, W) metres (0 / NaN = none); K: (3, 3).
        Returns points (N, 3) (NaN where invalid) and valid (N,) bool.
    """
    check_shape(uv, ("N", 2), "uv")
    check_shape(depth, ("H", "W"), "depth")
    check_shape(K, (3, 3), "K")
    h, w = depth.shape
    uv = uv.to(depth.device).double()
    ix, iy = uv[:, 0].round().long(), uv[:, 1].round().long()
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    z = depth[iy.clamp(0, h - 1), ix.clamp(0, w - 1)].double()
    valid = inside & torch.isfinite(z) & (z > 0)
    K = K.to(depth.device).double()
    x = (uv[:, 0] - K[0, 2]) / K[0, 0] * z
    y = (uv[:, 1] - K[1, 2]) / K[1, 1] * z
    p = torch.stack([x, y, z], -1)
    return torch.where(valid[:, None], p, torch.full_like(p, math.nan)), valid


def errors_3d(pred_uv: torch.Tensor, truth_points: torch.Tensor, depth_b: torch.Tensor,
              K_b: torch.Tensor) -> torch.Tensor:
    """3D error (metres) of predicted pixels of B: distance between the surface point B's depth puts
    under each prediction and the true camera-frame point. NaN where either is unknown.

    Shape:
        pred_uv: (N, 2); truth_points: (N, 3) in B's camera frame (NaN = unknown); depth_b: (H, W);
        K_b: (3, 3) -> (N,).
    """
    check_shape(truth_points, (pred_uv.shape[0], 3), "truth_points")
    p, _ = lift_pixels(pred_uv, depth_b, K_b)
    return (p - truth_points.to(p)).norm(dim=-1)


def summarize(errors_px: torch.Tensor, errors_m: torch.Tensor | None = None,
              frac_closer: torch.Tensor | None = None,
              thresholds: Sequence[float] = PCK_THRESHOLDS) -> dict[str, float]:
    """The scalar metrics of one set of best matches (NaN entries of 3D errors / fractions are skipped).

    Keys: n, pck@k, auc@25, mean_px, median_px, and when given: n_3d, median_mm, mean_mm, pck3d@1cm,
    frac_closer (mean) and frac_closer_median.
    """
    e = errors_px.reshape(-1).float()
    out: dict[str, float] = {"n": float(e.numel())}
    out.update(pck(e, thresholds))
    out[f"auc@{AUC_MAX_PX:g}"] = pck_auc(e)
    out["mean_px"] = e.mean().item() if e.numel() else math.nan
    out["median_px"] = e.median().item() if e.numel() else math.nan
    if errors_m is not None:
        m = errors_m.reshape(-1).double()
        m = m[torch.isfinite(m)]
        out["n_3d"] = float(m.numel())
        out["median_mm"] = 1000.0 * m.median().item() if m.numel() else math.nan
        out["mean_mm"] = 1000.0 * m.mean().item() if m.numel() else math.nan
        out["pck3d@1cm"] = (m <= 0.01).double().mean().item() if m.numel() else math.nan
    if frac_closer is not None:
        f = frac_closer.reshape(-1).double()
        f = f[torch.isfinite(f)]
        out["frac_closer"] = f.mean().item() if f.numel() else math.nan
        out["frac_closer_median"] = f.median().item() if f.numel() else math.nan
    return out


def effective_rank(x: torch.Tensor) -> float:
    """Effective rank (Roy & Vetterli 2007) of (N, D) samples: exp of the entropy of the normalised
    singular values of the centred matrix. D for isotropic descriptors, 1 for a line, 0 for a point."""
    check_shape(x, ("N", "D"), "x")
    if x.shape[0] < 2:
        return math.nan
    s = torch.linalg.svdvals((x - x.mean(0)).double())
    total = s.sum()
    if not total > 1e-12 * (x.double().abs().max() * math.sqrt(x.shape[0]) + 1e-300):
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def descriptor_health(samples: torch.Tensor, match_distance: torch.Tensor | None = None,
                      nonmatch_distance: torch.Tensor | None = None) -> dict[str, float | list[float]]:
    """Collapse detection on descriptor samples (N, D) from many images.

    Reports per-channel std, effective rank, mean descriptor norm, mean distance of true matches and of
    non-matches and their ratio (separation). `collapsed` is 1.0 when the descriptors span less than
    1.5 effective dimensions or barely vary (total std below 1e-6 of the mean norm).
    """
    check_shape(samples, ("N", "D"), "samples")
    x = samples.double()
    std = x.std(0, unbiased=False) if x.shape[0] else torch.full((x.shape[1],), math.nan, dtype=torch.float64)
    norm = x.norm(dim=1).mean().item() if x.shape[0] else math.nan
    rank = effective_rank(samples)
    total_std = float(std.square().sum().sqrt())
    out: dict[str, float | list[float]] = {
        "channel_std": [float(v) for v in std], "min_channel_std": float(std.min()),
        "mean_channel_std": float(std.mean()), "effective_rank": rank, "mean_norm": norm,
    }
    def mean(x: torch.Tensor | None) -> float:
        return x.double().mean().item() if x is not None and x.numel() else math.nan

    md, nd = mean(match_distance), mean(nonmatch_distance)
    out["mean_match_distance"] = md
    out["mean_nonmatch_distance"] = nd
    out["separation"] = nd / md if md > 0 else math.nan
    out["collapsed"] = float(bool(rank < 1.5 or total_std <= 1e-6 * (norm + 1e-12)))
    return out


def matching_accuracy(pred_b: torch.Tensor, truth_b: torch.Tensor, n_queries: int,
                      thresholds: Sequence[float] = (1.0, 3.0, 5.0)) -> dict[str, float]:
    """Accuracy of a matcher's output: how many queries it matched and how far off they land.

    Shape:
        pred_b, truth_b: (M, 2) matched and true pixel in B of the M queries the matcher kept.
    Returns n_matches, match_rate (M / n_queries), acc@k (fraction of matches within k px), mean_px
    (the average pixel offset) and median_px.
    """
    e = pixel_errors(pred_b, truth_b) if pred_b.numel() else torch.zeros(0)
    out = {"n_matches": float(e.numel()), "match_rate": e.numel() / n_queries if n_queries else math.nan}
    out.update({f"acc@{t:g}": (e <= t).double().mean().item() if e.numel() else math.nan for t in thresholds})
    out["mean_px"] = e.mean().item() if e.numel() else math.nan
    out["median_px"] = e.median().item() if e.numel() else math.nan
    return out


__all__ = ["PCK_THRESHOLDS", "AUC_MAX_PX", "BestMatches", "nearest_pixels", "best_match", "pixel_errors",
           "pck", "pck_curve", "pck_auc", "error_cdf", "lift_pixels", "errors_3d", "summarize",
           "effective_rank", "descriptor_health", "matching_accuracy"]
