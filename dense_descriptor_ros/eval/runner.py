"""The evaluation loop: every method on every pair, through the metric functions of `metrics`.

Pairs are loaded once and scored by all methods in turn, so all methods see identical images, query
points and ground truth. Per pair and method: descriptors of A and B (timed: the ms/frame of the
report), the best match of every query on the full-resolution maps (`metrics.best_match`), 3D errors
through B's depth, part agreement, the matcher's coarse and refined output on the native maps
(`matching.match_dense`), and descriptor samples for the collapse check.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ..correspondence.pairs import sample_descriptors
from . import metrics as M
from .methods import Method
from .pairs import EvalPair

#: Matcher settings compared on cross_view and augment pairs: the same search, without and with the
#: subpixel refinement of the winner (quadratic fit + Gauss-Newton), so the match sets are identical.
MATCHERS = {"coarse": {"subpixel": False}, "refined": {"subpixel": True}}
#: Shared matcher settings (see matching.match_dense).
MATCH_KWARGS = {"coarse_factor": 4, "max_ratio": 0.9, "mutual": True, "max_matches": 0}
#: Sets the matcher is scored on (same-object geometry; a cross-instance match has no pixel truth).
MATCH_SETS = ("cross_view", "augment")
#: Non-matches for the health check are true matches of other queries at least this far away (px).
NONMATCH_MIN_PX = 8.0


@dataclass
class SetRecords:
    """Per-point results of one method on one evaluation set (concatenated over pairs)."""

    errors_px: list[torch.Tensor] = field(default_factory=list)
    errors_m: list[torch.Tensor] = field(default_factory=list)
    frac_closer: list[torch.Tensor] = field(default_factory=list)
    object_sample: list[torch.Tensor] = field(default_factory=list)
    part_ok: list[torch.Tensor] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # per point, where the pairs name a category
    pairs: int = 0

    def cat(self, name: str) -> torch.Tensor | None:
        items = getattr(self, name)
        return torch.cat(items) if items else None


@dataclass
class MethodRecords:
    """Everything measured for one method."""

    method: Method
    sets: dict[str, SetRecords] = field(default_factory=dict)
    matching: dict[str, dict[str, list[tuple[torch.Tensor, torch.Tensor, int]]]] = field(default_factory=dict)
    describe_s: list[float] = field(default_factory=list)
    samples: list[torch.Tensor] = field(default_factory=list)
    match_d: list[torch.Tensor] = field(default_factory=list)
    nonmatch_d: list[torch.Tensor] = field(default_factory=list)
    # cross-instance pairs: (category, instance key, descriptors (N, D) at A's query points, their part ids (N,))
    instance_samples: list[tuple[str, str, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Showcase:
    """The first pair of a set with each method's native maps and best matches (for the figures)."""

    pair: EvalPair
    maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    matches: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


@dataclass
class EvalResults:
    """Raw records of an evaluation run (`summary` turns them into the report's numbers)."""

    records: dict[str, MethodRecords]
    showcase: dict[str, Showcase]
    pair_ids: dict[str, list[str]]
    seconds: float

    def summary(self) -> dict:
        """JSON-ready scalar metrics per method."""
        return {name: summarize_method(r) for name, r in self.records.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _describe(method: Method, image: torch.Tensor, rec: MethodRecords, device: torch.device) -> torch.Tensor:
    _sync(device)
    t = time.perf_counter()
    d = method.describe(image[None].to(device))
    _sync(device)
    rec.describe_s.append(time.perf_counter() - t)
    return d


def _matching(method: Method, da: torch.Tensor, db: torch.Tensor, pair: EvalPair, rec: MethodRecords) -> None:
    from ..descriptor_map import DescriptorMap
    from ..matching import match_dense

    h, w = pair.size
    maps = [DescriptorMap(d[0].permute(1, 2, 0).float().cpu().numpy(), (method.stride, method.stride), (w, h),
                          normalized=method.normalized) for d in (da, db)]
    queries = pair.uv_a.double().numpy()
    out = rec.matching.setdefault(pair.spec.set, {k: [] for k in MATCHERS})
    for key, kw in MATCHERS.items():
        c = match_dense(maps[0], maps[1], points_a=queries, **MATCH_KWARGS, **kw)
        if len(c):
            # the matcher returns its queries (round-tripped through map coordinates): find their rows
            qi = torch.cdist(torch.from_numpy(c.uv_a), torch.from_numpy(queries)).argmin(1)
            out[key].append((torch.from_numpy(c.uv_b).float(), pair.uv_b[qi].float(), len(queries)))
        else:
            out[key].append((torch.zeros(0, 2), torch.zeros(0, 2), len(queries)))


def evaluate_pair(method: Method, pair: EvalPair, rec: MethodRecords, device: torch.device,
                  matching: bool = True, health_samples: int = 512) -> tuple[torch.Tensor, torch.Tensor,
                                                                             M.BestMatches]:
    """Score one method on one pair, appending to `rec`; returns the native maps and best matches."""
    t0 = time.perf_counter()
    da = _describe(method, pair.image_a, rec, device)
    db = _describe(method, pair.image_b, rec, device)
    size = pair.size
    fa = method.full_resolution(da, size)[0]
    fb = method.full_resolution(db, size)[0]
    g = torch.Generator(device=device).manual_seed(pair.spec.seed)
    uv_a, uv_b = pair.uv_a.to(device), pair.uv_b.to(device)
    mask = pair.search_mask_b.to(device) if pair.search_mask_b is not None else None
    bm = M.best_match(fa, fb, uv_a, uv_b, 1, mask, g)
    err = M.pixel_errors(bm.uv, uv_b).cpu()
    sr = rec.sets.setdefault(pair.spec.set, SetRecords())
    sr.pairs += 1
    sr.errors_px.append(err)
    sr.frac_closer.append(bm.frac_closer.cpu())
    sr.object_sample.append(pair.object_sample)
    sr.names += pair.names
    if pair.category:
        sr.categories += [pair.category] * len(err)
    if pair.points_b is not None and pair.depth_b is not None and pair.K_b is not None:
        sr.errors_m.append(M.errors_3d(bm.uv.cpu(), pair.points_b, pair.depth_b, pair.K_b).float())
    pa = None  # cross-instance: the part of each query point of A
    if pair.spec.set == "cross_instance" and pair.part_a is not None and pair.part_b is not None:
        h, w = size
        ia = pair.uv_a.round().long()
        ib = bm.uv.cpu().round().long().clamp(min=0)
        pa = pair.part_a[ia[:, 1].clamp(0, h - 1), ia[:, 0].clamp(0, w - 1)].long()
        pb = pair.part_b[ib[:, 1].clamp(0, h - 1), ib[:, 0].clamp(0, w - 1)].long()
        sr.part_ok.append((pa == pb) & (pa > 0))
    if matching and pair.spec.set in MATCH_SETS and len(pair.uv_a):
        _matching(method, da, db, pair, rec)
    # health: descriptor samples of A's native map, distances of true matches and of non-matches
    flat = da[0].reshape(da.shape[1], -1).T
    g_cpu = torch.Generator().manual_seed(pair.spec.seed)
    pick = torch.randperm(flat.shape[0], generator=g_cpu)[:health_samples]
    rec.samples.append(flat[pick.to(flat.device)].float().cpu())
    if len(uv_a) >= 2:
        qa = sample_descriptors(fa[None], uv_a[None])[0]
        tb = sample_descriptors(fb[None], uv_b[None])[0]
        rolled = tb.roll(len(tb) // 2, 0)
        far = (uv_b - uv_b.roll(len(tb) // 2, 0)).norm(dim=-1) >= NONMATCH_MIN_PX
        rec.match_d.append((qa - tb).norm(dim=-1).cpu())
        rec.nonmatch_d.append((qa - rolled).norm(dim=-1)[far].cpu())
        if pair.instance_key and pa is not None:
            rec.instance_samples.append((pair.category, pair.instance_key, qa.float().cpu(), pa))
    rec.seconds += time.perf_counter() - t0
    return da, db, bm


def evaluate(methods: list[Method], pairs: Iterable[EvalPair], device: str | torch.device = "cpu",
             matching: bool = True, showcase: bool = True, progress: bool = True, total: int | None = None
             ) -> EvalResults:
    """Score every method on every pair (pairs are loaded lazily, once, in order)."""
    device = torch.device(device)
    records = {m.name: MethodRecords(m) for m in methods}
    if len(records) != len(methods):
        raise ValueError("method names must be unique")
    shows: dict[str, Showcase] = {}
    ids: dict[str, list[str]] = {}
    warm = False
    t0 = time.perf_counter()
    for pair in tqdm(pairs, total=total, desc="eval", unit="pair", disable=not progress, dynamic_ncols=True):
        if not warm:  # first call of a network is slow (allocations, kernel selection): not timed
            for m in methods:
                m.describe(pair.image_a[None].to(device))
            warm = True
        ids.setdefault(pair.spec.set, []).append(pair.spec.id)
        first = showcase and pair.spec.set not in shows
        if first:
            shows[pair.spec.set] = Showcase(pair)
        for m in methods:
            da, db, bm = evaluate_pair(m, pair, records[m.name], device, matching)
            if first:
                shows[pair.spec.set].maps[m.name] = (da[0].cpu(), db[0].cpu())
                err = M.pixel_errors(bm.uv, pair.uv_b.to(bm.uv)).cpu()
                shows[pair.spec.set].matches[m.name] = (bm.uv.cpu(), err)
    return EvalResults(records, shows, ids, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- summary


def subsets(sr: SetRecords) -> dict[str, torch.Tensor]:
    obj = sr.cat("object_sample")
    if obj is None:
        return {}
    out = {}
    if obj.any():
        out["object"] = obj
    if (~obj).any():
        out["all"] = ~obj
    return out


def summarize_set(sr: SetRecords) -> dict:
    """Scalar metrics of one set: per subset ("object", "all"), plus part accuracy / per-keypoint errors."""
    e, em, fc = sr.cat("errors_px"), sr.cat("errors_m"), sr.cat("frac_closer")
    out: dict = {"pairs": sr.pairs}
    for name, sel in subsets(sr).items():
        out[name] = M.summarize(e[sel], em[sel] if em is not None else None, fc[sel])
    part = sr.cat("part_ok")
    if part is not None:
        out["part_accuracy"] = part.float().mean().item() if part.numel() else float("nan")
    if sr.categories and len(sr.categories) == len(e):
        out["per_category"] = _per_label(sr.categories, e, part=part if part is not None and len(part) == len(e)
                                         else None)
    if sr.names:
        out["per_keypoint"] = _per_label(sr.names, e, errors_m=em)
    return out


def _per_label(labels: list[str], e: torch.Tensor, part: torch.Tensor | None = None,
               errors_m: torch.Tensor | None = None) -> dict[str, dict]:
    """Per label (one per point, aligned with the errors e (N,)): n, median px and PCK@10, plus part accuracy and
    the median 3D error in mm where given."""
    arr = np.array(labels)
    out = {}
    for lab in sorted(set(labels)):
        sel = torch.from_numpy(arr == lab)
        k = {"n": int(sel.sum()), "median_px": e[sel].median().item(), "pck@10": (e[sel] <= 10).float().mean().item()}
        if part is not None:
            k["part_accuracy"] = part[sel].float().mean().item()
        if errors_m is not None:
            m = errors_m[sel]
            m = m[torch.isfinite(m)]
            k["median_mm"] = 1000.0 * m.median().item() if m.numel() else float("nan")
        out[lab] = k
    return out


def summarize_method(rec: MethodRecords) -> dict:
    m = rec.method
    times = sorted(rec.describe_s)
    out = {"kind": m.kind, "dim": m.dim, "stride": m.stride, "normalized": m.normalized, "info": m.info,
           "ms_per_frame": 1000.0 * float(np.median(times)) if times else float("nan"),
           "eval_seconds": rec.seconds, "sets": {k: summarize_set(v) for k, v in rec.sets.items()}}
    out["matching"] = {}
    for set_name, per in rec.matching.items():
        out["matching"][set_name] = {}
        for key, items in per.items():
            pred = torch.cat([p for p, _, _ in items]) if items else torch.zeros(0, 2)
            truth = torch.cat([t for _, t, _ in items]) if items else torch.zeros(0, 2)
            out["matching"][set_name][key] = M.matching_accuracy(pred, truth, sum(n for _, _, n in items))
    if rec.samples:
        out["health"] = M.descriptor_health(torch.cat(rec.samples),
                                            torch.cat(rec.match_d) if rec.match_d else None,
                                            torch.cat(rec.nonmatch_d) if rec.nonmatch_d else None)
    return out


__all__ = ["MATCHERS", "MATCH_KWARGS", "MATCH_SETS", "SetRecords", "MethodRecords", "Showcase", "EvalResults",
           "evaluate", "evaluate_pair", "summarize_set", "summarize_method"]
