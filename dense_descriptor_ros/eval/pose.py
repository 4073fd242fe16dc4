"""Two-view relative pose evaluation, as in SuperGlue (Sarlin et al. 2020) and LoFTR (Sun et al. 2021).

A matcher is scored downstream by what its matches are for: the relative pose of two views. The
essential matrix is fitted with RANSAC to the matches in normalised coordinates and decomposed with
the cheirality check; its error against the ground truth is the larger of the rotation angle error and
the angle between the translation directions (the essential matrix fixes t only up to scale and sign,
so the direction error is folded into [0, 90] degrees). Over a set of pairs, `pose_auc` integrates the
recall of that error up to 5, 10 and 20 degrees, with failed pairs counted as an infinite error.

`match_precision` scores the matches themselves: the fraction whose B position lies within a few
pixels of the ground truth, among the matches that have one (not occluded, inside B).

Pure NumPy and OpenCV. Poses follow `geometry.camera`: T is T_world_camera (camera -> world, OpenCV
axes), so a point of camera A moves into camera B by inv(T_b) @ T_a, as in `geometry.reprojection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: Minimum number of matches the five-point solver needs.
MIN_MATCHES = 5
#: Pose AUC thresholds (degrees) of the SuperGlue / LoFTR tables.
AUC_THRESHOLDS = (5.0, 10.0, 20.0)
#: Match precision thresholds (pixels).
PRECISION_THRESHOLDS = (1.0, 3.0, 5.0)


def _as_array(a: object, shape: tuple[int | str, ...], name: str) -> np.ndarray:
    """`a` as a float64 array; ValueError unless its shape matches (str entries = any size)."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != len(shape) or any(isinstance(s, int) and s != n for s, n in zip(shape, arr.shape, strict=True)):
        raise ValueError(f"{name}: expected shape ({', '.join(map(str, shape))}), got {arr.shape}")
    return arr


def relative_pose(T_a: np.ndarray, T_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid motion from camera A's frame to camera B's: X_b = R X_a + t.

    Shape:
        T_a, T_b: (4, 4) camera -> world poses (T_world_camera). Returns R (3, 3) and t (3,) float64.
    """
    T_a = _as_array(T_a, (4, 4), "T_a")
    T_b = _as_array(T_b, (4, 4), "T_b")
    R_b_t = T_b[:3, :3].T  # inverse of a rotation, exact (no general matrix inverse)
    return R_b_t @ T_a[:3, :3], R_b_t @ (T_a[:3, 3] - T_b[:3, 3])


@dataclass(frozen=True)
class PoseEstimate:
    """Relative pose of B with respect to A estimated from matches (X_b = R X_a + t, |t| = 1).

    Shape:
        R: (3, 3); t: (3,) unit vector (the scale is unobservable); inliers: (N,) bool over the input
        matches (RANSAC inliers that also pass the cheirality check).
    """

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray


def _normalise(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) -> normalised image coordinates K^-1 [u, v, 1] (N, 2) (skew included)."""
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    x = (uv[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x, y], 1)


def estimate_pose(uv_a: np.ndarray, uv_b: np.ndarray, K_a: np.ndarray, K_b: np.ndarray,
                  threshold_px: float = 0.5, confidence: float = 0.99999, seed: int = 0) -> PoseEstimate | None:
    """Relative pose from pixel matches: essential matrix by RANSAC, then `cv2.recoverPose`.

    As LoFTR's `estimate_pose`: the points are normalised with each view's intrinsics and the RANSAC
    threshold becomes `threshold_px` over the mean focal length. When the five-point solver returns
    several essential matrices, the one with the most cheirality-checked inliers wins. OpenCV's RNG is
    seeded with `seed` (global OpenCV state), so the result is reproducible.

    Shape:
        uv_a, uv_b: (N, 2) pixel (x, y) of matched points in A and B; K_a, K_b: (3, 3).
        Returns a PoseEstimate, or None with fewer than 5 distinct points in either view or when no
        decomposition has inliers.
    """
    uv_a = _as_array(uv_a, ("N", 2), "uv_a")
    uv_b = _as_array(uv_b, (len(uv_a), 2), "uv_b")
    K_a = _as_array(K_a, (3, 3), "K_a")
    K_b = _as_array(K_b, (3, 3), "K_b")
    if not (np.isfinite(uv_a).all() and np.isfinite(uv_b).all()):
        raise ValueError("uv_a, uv_b: non-finite coordinates")
    if threshold_px <= 0 or not 0 < confidence < 1:
        raise ValueError(f"need threshold_px > 0 and 0 < confidence < 1, got {threshold_px}, {confidence}")
    # Repeated points add no constraint, and OpenCV returns an arbitrary pose for them.
    if min(len(np.unique(uv_a, axis=0)), len(np.unique(uv_b, axis=0))) < MIN_MATCHES:
        return None
    pa, pb = _normalise(uv_a, K_a), _normalise(uv_b, K_b)
    threshold = threshold_px / np.mean([K_a[0, 0], K_a[1, 1], K_b[0, 0], K_b[1, 1]])
    cv2.setRNGSeed(int(seed))
    E, mask = cv2.findEssentialMat(pa, pb, np.eye(3), method=cv2.RANSAC, prob=confidence, threshold=threshold)
    if E is None or mask is None or E.shape[0] % 3 != 0 or E.shape[1:] != (3,):
        return None
    best: PoseEstimate | None = None
    best_n = 0
    for E_i in np.split(E, E.shape[0] // 3):
        # recoverPose writes into the mask it is given: each candidate starts from RANSAC's inliers.
        # distanceThresh=1e9 as LoFTR means (no point is "at infinity"; the default, 50 baselines, drops
        # far points of short-baseline pairs). By keyword: a positional 1e9 binds to another overload.
        n, R, t, m, _ = cv2.recoverPose(E_i, pa, pb, np.eye(3), distanceThresh=1e9, mask=mask.copy())
        if n > best_n:
            best_n = n
            best = PoseEstimate(R=np.asarray(R, np.float64), t=np.asarray(t, np.float64).reshape(3),
                                inliers=m.reshape(-1) > 0)
    return best


def _angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between two 3-vectors; atan2 stays precise near 0 and 180 (arccos does not)."""
    return math.degrees(math.atan2(float(np.linalg.norm(np.cross(a, b))), float(a @ b)))


def pose_errors(R_est: np.ndarray, t_est: np.ndarray, R_true: np.ndarray, t_true: np.ndarray,
                min_translation: float = 1e-6) -> tuple[float, float]:
    """Rotation and translation-direction errors in degrees.

    Rotation: the angle of R_est^T R_true, from |R_est - R_true|_F = 2 sqrt(2) sin(angle / 2) (precise
    at small angles, where the trace formula loses digits). Translation: the angle between the
    directions, folded to min(angle, 180 - angle) since an essential matrix does not know the sign of
    t; 0 when |t_true| < `min_translation` (a pure rotation has no direction to get wrong).

    Shape:
        R_est, R_true: (3, 3) rotations; t_est, t_true: (3,). Returns (err_R_deg, err_t_deg).
    """
    R_est = _as_array(R_est, (3, 3), "R_est")
    R_true = _as_array(R_true, (3, 3), "R_true")
    t_est = _as_array(t_est, (3,), "t_est")
    t_true = _as_array(t_true, (3,), "t_true")
    s = min(float(np.linalg.norm(R_est - R_true)) / (2.0 * math.sqrt(2.0)), 1.0)
    err_R = math.degrees(2.0 * math.asin(s))
    if np.linalg.norm(t_true) < min_translation:
        return err_R, 0.0
    if np.linalg.norm(t_est) == 0:
        raise ValueError("t_est: zero vector has no direction")
    a = _angle_between(t_est, t_true)
    return err_R, min(a, 180.0 - a)


def _key(t: float) -> str:
    return f"{float(t):g}"


def pose_auc(errors_deg: Sequence[float | None] | np.ndarray,
             thresholds: Sequence[float] = AUC_THRESHOLDS) -> dict[str, float]:
    """Area under the cumulative pose-error curve up to each threshold, normalised to [0, 1].

    SuperGlue's `pose_auc`: errors sorted, recall rising by 1/N at each, the curve (from (0, 0))
    integrated with the trapezoid rule up to the threshold, divided by the threshold. Each error is
    max(err_R, err_t) of one pair; a failed pair (None, NaN or inf) never counts as recalled.

    Shape:
        errors_deg: (N,) with N >= 1. Returns {"auc@5": ..., "auc@10": ..., "auc@20": ...}.
    """
    e = np.array([np.inf if x is None else x for x in errors_deg], dtype=np.float64)
    if e.ndim != 1 or len(e) == 0:
        raise ValueError(f"errors_deg: expected a non-empty (N,) sequence, got shape {e.shape}")
    if (e < 0).any():
        raise ValueError("errors_deg: negative error")
    if any(t <= 0 for t in thresholds):
        raise ValueError(f"thresholds must be positive, got {tuple(thresholds)}")
    e = np.sort(np.where(np.isnan(e), np.inf, e))
    recall = np.r_[0.0, np.arange(1, len(e) + 1) / len(e)]
    e = np.r_[0.0, e]
    out = {}
    for t in thresholds:
        last = int(np.searchsorted(e, t))  # errors strictly below t
        r = np.r_[recall[:last], recall[last - 1]]
        x = np.r_[e[:last], t]
        out[f"auc@{_key(t)}"] = float(np.trapezoid(r, x=x) / t)
    return out


def match_precision(uv_b_pred: np.ndarray, uv_b_true: np.ndarray,
                    thresholds: Sequence[float] = PRECISION_THRESHOLDS) -> dict[str, int | float]:
    """Match counts and precision against ground-truth positions in B.

    A row of `uv_b_true` with a NaN has no ground truth (occluded or outside B) and is left out of the
    precision. A match is correct at threshold t when its error is <= t pixels.

    Shape:
        uv_b_pred: (N, 2) finite pixel (x, y); uv_b_true: (N, 2), NaN rows where unknown.
        Returns {"matches": N, "with_truth": n, "correct@{t}px": int, "precision@{t}px": correct / n
        (NaN if n == 0)} for each threshold t.
    """
    pred = _as_array(uv_b_pred, ("N", 2), "uv_b_pred")
    true = _as_array(uv_b_true, (len(pred), 2), "uv_b_true")
    if not np.isfinite(pred).all():
        raise ValueError("uv_b_pred: non-finite coordinates")
    has = np.isfinite(true).all(1)
    err = np.linalg.norm(pred[has] - true[has], axis=1)
    n = int(has.sum())
    out: dict[str, int | float] = {"matches": len(pred), "with_truth": n}
    for t in thresholds:
        correct = int((err <= t).sum())
        out[f"correct@{_key(t)}px"] = correct
        out[f"precision@{_key(t)}px"] = correct / n if n else math.nan
    return out


__all__ = ["AUC_THRESHOLDS", "MIN_MATCHES", "PRECISION_THRESHOLDS", "PoseEstimate", "estimate_pose",
           "match_precision", "pose_auc", "pose_errors", "relative_pose"]
