"""`dense-descriptor matcher eval`: frame-to-frame matching methods judged on held-out synthetic view pairs with exact
ground truth, in one run on the same pairs:

* ``rootsift``: SIFT keypoints, RootSIFT descriptors, mutual nearest neighbours and Lowe's ratio test (0.8): the
  classical anchor (`eval.sift_matching`).
* ``descriptor``: today's correspondences of the node (`pipeline.processor`): the most distinctive descriptor
  cells of A (`detect_keypoints`, 12 px apart), coarse-to-fine mutual nearest neighbours with the ratio test, capped
  at the node's 200.
* ``descriptor_grid``: the same matching from one query per coarse cell of A (8 px grid), no cap: today's method
  with as many queries as the learned matcher.
* ``matcher``: the learned coarse-to-fine matcher (`matcher.runtime`), mutual matches above its threshold.

The pairs and their ground truth are the matcher's held-out pairs (`data.match_pairs.SyntheticMatchPairs`, split
"test": scenes of instances never trained on).

Per method: matches per pair, precision at 1 / 3 / 5 px (among matches whose A point has ground truth: visible in
B, not occluded), correct matches at 3 px per pair, and the relative pose from the matches (essential matrix with
RANSAC, `eval.pose`) scored by the AUC of max(rotation, translation-direction) error at 5 / 10 / 20 degrees. A
precision-vs-correct-matches curve per method (sweeping its own score) shows every operating point.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.match_pairs import SyntheticMatchPairs
from ..descriptor_map import DescriptorMap
from ..matcher.runtime import LearnedMatcher
from ..matching.dense import match_dense
from ..matching.detect import detect_keypoints
from ..pipeline.config import PipelineConfig
from ..runtime.extractor import DescriptorExtractor
from .pose import estimate_pose, match_precision, pose_auc, pose_errors, relative_pose
from .sift_matching import match_rootsift

METHODS = ("rootsift", "descriptor", "descriptor_grid", "matcher")
#: Views of an evaluation pair differ by this many degrees of viewing direction.
VIEW_ANGLE = (20.0, 45.0)
EVAL_SEED = 4_000_037


@dataclass
class PairMatches:
    """One method's matches on one pair with their ground truth.

    Shape: uv_a, uv_b, truth_b (M, 2) pixels (truth NaN where A's point has none); score (M,) higher = better.
    """

    uv_a: np.ndarray
    uv_b: np.ndarray
    truth_b: np.ndarray
    score: np.ndarray
    pose_error_deg: float = math.inf


@dataclass
class MatchEvalResult:
    """Per-method summary rows and the raw per-pair matches (for the curves)."""

    summary: dict[str, dict[str, float]]
    pairs: list[str]
    matches: dict[str, list[PairMatches]] = field(default_factory=dict)


def _resized_K(K: torch.Tensor, native_hw: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of a view resized from `native_hw` to `size` (pixel centres at integers)."""
    sx, sy = size[1] / native_hw[1], size[0] / native_hw[0]
    K = K.numpy().astype(np.float64).copy()
    K[0, :] *= sx
    K[1, :] *= sy
    K[0, 2] += 0.5 * sx - 0.5
    K[1, 2] += 0.5 * sy - 0.5
    return K


def _descriptor(map_a: DescriptorMap, map_b: DescriptorMap, cfg: PipelineConfig, grid: bool,
                coarse_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if grid:
        m = match_dense(map_a, map_b, grid_step=coarse_px, max_ratio=cfg.correspondence_max_ratio, max_matches=0)
    else:
        uv, _ = detect_keypoints(map_a, min_distance=cfg.correspondence_spacing,
                                 max_keypoints=4 * cfg.correspondence_max)
        m = match_dense(map_a, map_b, points_a=uv, max_ratio=cfg.correspondence_max_ratio,
                        max_matches=cfg.correspondence_max)
    return m.uv_a, m.uv_b, (1.0 - m.ratio).astype(np.float32)


def evaluate_matching(extractor: DescriptorExtractor, matcher: LearnedMatcher | None, synthetic: str | Path,
                      pairs: int = 100, split: str = "test", size: tuple[int, int] = (240, 320),
                      threshold: float = 0.0, methods: tuple[str, ...] = METHODS,
                      progress: bool = True) -> MatchEvalResult:
    """Run every method on `pairs` seeded view pairs (one per scene, cycling) of `split` (see module docstring).

    `threshold`: the matcher's confidence threshold (0 = every mutual match: the curves sweep it anyway)."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; known: {METHODS}")
    if "matcher" in methods and matcher is None:
        raise ValueError("the matcher method needs a matcher file")
    if matcher is not None:
        matcher.check_model(extractor.info.model_id)
    stride = matcher.info.descriptor_stride if matcher is not None else extractor.info.stride
    ds = SyntheticMatchPairs(synthetic, split, size, 2 * stride, VIEW_ANGLE)
    cfg = PipelineConfig()
    per: dict[str, list[PairMatches]] = {m: [] for m in methods}
    names: list[str] = []
    for i in tqdm(range(pairs), desc="match eval", unit="pair", disable=not progress):
        scene, ia, ib = ds.pair(i, EVAL_SEED + i)
        names.append(f"{scene}:{ia}->{ib}")
        img_a, img_b = ds.images(scene, ia, ib)
        rgb_a = (img_a.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        rgb_b = (img_b.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        (K_a, T_a), (K_b, T_b) = ds.data.camera(scene, ia), ds.data.camera(scene, ib)
        native = tuple(ds.data.arrays(scene, ia, ("depth",))["depth"].shape)
        Ka, Kb = _resized_K(K_a, native, size), _resized_K(K_b, native, size)
        R, t = relative_pose(T_a.numpy(), T_b.numpy())
        maps = None
        if {"descriptor", "descriptor_grid", "matcher"} & set(methods):
            maps = extractor.extract(rgb_a), extractor.extract(rgb_b)
        for method in methods:
            if method == "rootsift":
                uv_a, uv_b, ratio = match_rootsift(rgb_a, rgb_b)
                score = 1.0 - ratio
            elif method in ("descriptor", "descriptor_grid"):
                uv_a, uv_b, score = _descriptor(*maps, cfg, method == "descriptor_grid", 2.0 * stride)
            else:
                m = matcher.match(*maps, threshold=threshold, image_a=rgb_a, image_b=rgb_b)
                uv_a, uv_b, score = m.uv_a, m.uv_b, m.confidence
            truth = (ds.ground_truth(scene, ia, ib, torch.from_numpy(np.asarray(uv_a, np.float64)).reshape(-1, 2))
                     .numpy().astype(np.float64))
            pm = PairMatches(np.asarray(uv_a).reshape(-1, 2), np.asarray(uv_b).reshape(-1, 2), truth.reshape(-1, 2),
                             np.asarray(score, np.float32))
            est = estimate_pose(pm.uv_a, pm.uv_b, Ka, Kb)
            if est is not None:
                pm.pose_error_deg = max(pose_errors(est.R, est.t, R, t))
            per[method].append(pm)
    return MatchEvalResult({m: summarize(per[m]) for m in methods}, names, per)


def summarize(rows: list[PairMatches]) -> dict[str, float]:
    """Means per pair and pooled precisions of one method (see module docstring)."""
    n = max(len(rows), 1)
    pred = np.concatenate([r.uv_b for r in rows]) if rows else np.zeros((0, 2))
    truth = np.concatenate([r.truth_b for r in rows]) if rows else np.zeros((0, 2))
    prec = match_precision(pred, truth)
    out = {"pairs": float(len(rows)), "matches_per_pair": prec["matches"] / n,
           "with_truth_share": prec["with_truth"] / max(prec["matches"], 1)}
    for t in (1, 3, 5):
        out[f"precision@{t}px"] = float(prec[f"precision@{t}px"])
    out["correct@3px_per_pair"] = prec["correct@3px"] / n
    out.update(pose_auc([r.pose_error_deg for r in rows]))
    return out


def precision_curve(rows: list[PairMatches], px: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Precision @px against correct matches per pair, keeping the matches above each score threshold.

    Returns (correct_per_pair, precision), ordered from the strictest threshold to none."""
    if not rows:
        return np.zeros(0), np.zeros(0)
    score = np.concatenate([r.score for r in rows])
    truth = np.concatenate([r.truth_b for r in rows])
    err = np.linalg.norm(np.concatenate([r.uv_b for r in rows]) - truth, axis=1)
    has = np.isfinite(err)
    order = np.argsort(-score, kind="stable")
    ok = (has & (err <= px))[order]
    cum_ok, cum_has = np.cumsum(ok), np.cumsum(has[order])
    return cum_ok / len(rows), np.where(cum_has > 0, cum_ok / np.maximum(cum_has, 1), np.nan)


def correct_at_precision(rows: list[PairMatches], precision: float = 0.9, px: float = 3.0) -> float:
    """Most correct matches per pair among the operating points (score thresholds) with at least `precision`."""
    correct, prec = precision_curve(rows, px)
    ok = prec >= precision
    return float(correct[ok].max()) if ok.any() else 0.0


def write_report(result: MatchEvalResult, out_dir: str | Path, header: str = "") -> Path:
    """report.md, report.json and curves.png (precision @3 px against correct matches per pair) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for m, rows in result.matches.items():
        result.summary[m]["correct@3px_at_90%_precision"] = correct_at_precision(rows)
    cols = ("matches_per_pair", "precision@1px", "precision@3px", "precision@5px", "correct@3px_per_pair",
            "correct@3px_at_90%_precision", "auc@5", "auc@10", "auc@20")
    lines = [f"# Matching evaluation ({len(result.pairs)} held-out pairs, views {VIEW_ANGLE[0]:g}-{VIEW_ANGLE[1]:g} "
             "degrees apart)", "", header, "",
             "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m, s in result.summary.items():
        lines.append(f"| {m} | " + " | ".join(f"{s[c]:.3f}" if abs(s[c]) < 10 else f"{s[c]:.1f}" for c in cols)
                     + " |")
    lines += ["", "precision@t: share of matches within t px of the ground truth among those whose A point has one "
              "(visible in B). correct@3px_at_90%_precision: correct matches per pair at the loosest score threshold "
              "of the method that keeps precision@3px >= 0.9. auc@t: pose AUC (max of rotation and translation-"
              "direction error; essential matrix, RANSAC 0.5 px).", "", "![curves](curves.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps({"pairs": result.pairs, "summary": result.summary}, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m, rows in result.matches.items():
        c, p = precision_curve(rows)
        ax.plot(c, p, label=m)
    ax.axhline(0.9, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("correct matches @3 px per pair")
    ax.set_ylabel("precision @3 px")
    ax.set_ylim(0, 1.02)
    ax.set_title("each method's score threshold swept (strict -> none)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    return out / "report.md"


__all__ = ["METHODS", "VIEW_ANGLE", "PairMatches", "MatchEvalResult", "evaluate_matching", "summarize",
           "precision_curve", "correct_at_precision", "write_report"]
