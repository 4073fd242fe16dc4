"""Keypoints for correspondences: non-maximum suppression on a distinctiveness map of the descriptors.

Distinctiveness is the smaller eigenvalue of the descriptor field's structure tensor
J = sum_d grad(F_d) grad(F_d)^T, summed over a small window (Shi & Tomasi 1994, applied to the D
channels of the descriptor map instead of intensity). Near a point p the squared descriptor distance
is |F(p + delta) - F(p)|^2 ~ delta^T J delta, so the smaller eigenvalue bounds how sharply a match
is localised in the worst direction: large on corners of descriptor space, small on edges (the
aperture problem) and flat regions. Selection is SuperPoint-style NMS (DeTone et al. 2018: keep
local maxima of a max-pooled score) with a minimum distance and a cap.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..descriptor_map import DescriptorMap
from .dense import mask_to_map


def distinctiveness(desc: np.ndarray, window: int = 3) -> np.ndarray:
    """Smaller eigenvalue of the windowed structure tensor of a descriptor map.

    Shape:
        desc: (h, w, D) -> (h, w) float32, >= 0 (units: squared descriptor distance per cell^2).
    """
    if desc.ndim != 3:
        raise ValueError(f"desc: expected shape (h, w, D), got {desc.shape}")
    f = desc.astype(np.float32, copy=False)
    gx = np.empty_like(f)
    gy = np.empty_like(f)
    gx[:, 1:-1] = 0.5 * (f[:, 2:] - f[:, :-2])
    gx[:, 0], gx[:, -1] = f[:, min(1, f.shape[1] - 1)] - f[:, 0], f[:, -1] - f[:, max(-2, -f.shape[1])]
    gy[1:-1] = 0.5 * (f[2:] - f[:-2])
    gy[0], gy[-1] = f[min(1, f.shape[0] - 1)] - f[0], f[-1] - f[max(-2, -f.shape[0])]
    jxx = np.einsum("hwd,hwd->hw", gx, gx)
    jxy = np.einsum("hwd,hwd->hw", gx, gy)
    jyy = np.einsum("hwd,hwd->hw", gy, gy)
    if window > 1:
        jxx, jxy, jyy = (cv2.boxFilter(j, -1, (window, window), borderType=cv2.BORDER_REFLECT) for j in (jxx, jxy, jyy))
    half_trace = 0.5 * (jxx + jyy)
    return np.maximum(half_trace - np.sqrt(0.25 * (jxx - jyy) ** 2 + jxy**2), 0.0).astype(np.float32)


def nms(score: np.ndarray, radius: int, max_keypoints: int, min_score: float = 0.0,
        valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of `score` in (2 radius + 1)^2 windows, strongest first, capped.

    Kept points are more than `radius` cells apart (Chebyshev); ties on plateaus are broken by
    position so that they never survive together.

    Shape:
        score: (h, w); valid: (h, w) bool -> (N, 2) int (row, column), (N,) scores.
    """
    h, w = score.shape
    s = score.astype(np.float64)
    # Tie-break: a ramp far below any real score difference makes every maximum unique.
    s = s + (np.abs(s).max() + 1e-30) * 1e-9 * np.arange(h * w).reshape(h, w) / (h * w)
    dil = cv2.dilate(s, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8), borderType=cv2.BORDER_REFLECT)
    keep = (s >= dil) & (score > min_score)
    if valid is not None:
        keep &= valid
    r, c = np.nonzero(keep)
    sc = score[r, c]
    order = np.argsort(-sc, kind="stable")
    if max_keypoints > 0:
        order = order[:max_keypoints]
    return np.stack([r[order], c[order]], 1), sc[order].astype(np.float32)


def detect_keypoints(dmap: DescriptorMap, min_distance: float = 8.0, max_keypoints: int = 500,
                     min_score: float = 0.01, border: int = 1, window: int = 3,
                     mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinctive, spread-out pixels to match from.

    Args:
        min_distance: kept keypoints are at least this many pixels apart.
        max_keypoints: cap (0 = no cap), strongest first.
        min_score: relative threshold: score > min_score * max score of the map.
        border: cells along the map border that are never keypoints (one-sided gradients there).
        mask: optional bool mask ((H, W) image or (h, w) map).

    Returns:
        uv (N, 2) float64 pixel (x, y) in the input image, score (N,) float32.
    """
    score = distinctiveness(dmap.descriptors, window)
    h, w = score.shape
    cell = min(dmap.stride)
    radius = max(1, math.ceil(min_distance / cell - 1e-9) - 1)
    valid = np.zeros((h, w), bool)
    valid[border:h - border, border:w - border] = True
    if mask is not None:
        valid &= mask_to_map(mask, dmap)
    rc, sc = nms(score, radius, max_keypoints, min_score * float(score.max()), valid)
    return dmap.to_image(rc[:, ::-1].astype(np.float64)), sc
