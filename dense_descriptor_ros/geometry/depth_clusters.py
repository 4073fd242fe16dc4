"""Object masks from depth alone (issue #18): the supporting plane found by RANSAC, the points above it grouped
into connected clusters. For recordings without a simulator's labels: their masks feed the mask-guided pair
sampling (matches on objects, non-matches split between objects and background) when training from a bag.

Assumes a tabletop: the largest plane in view supports the objects, the camera looks at it from above (the side
of the plane the camera is on is "up"), and an object stands inside the image region the table covers. Pure NumPy
+ OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DepthClusterConfig:
    """Settings of depth_clusters (metres unless said otherwise)."""

    # A point within this distance of the plane is on it (RANSAC inlier threshold; real sensors want ~0.01).
    plane_threshold: float = 0.008
    # Object points lie between these heights above the plane.
    min_height: float = 0.012
    max_height: float = 0.6
    # RANSAC hypotheses and the random subset of valid pixels they are scored on.
    iterations: int = 150
    sample_points: int = 3000
    # Neighbouring object pixels whose depths differ by more than abs + rel * z belong to different clusters.
    jump_abs: float = 0.01
    jump_rel: float = 0.02
    # Clusters smaller than this share of the image are noise.
    min_cluster_fraction: float = 0.0015
    # The plane must hold at least this share of the valid pixels, else there is no table and no mask.
    min_plane_fraction: float = 0.15
    # A region without depth becomes part of the cluster that holds at least this share of the pixels around it.
    hole_border_share: float = 0.6
    # Pixels without depth up to this far (pixels) from a cluster join it: sensors lose the depth along silhouettes.
    rim_fill: int = 3
    # A cluster stands on the table when at least this share of its pixels lies inside the image region the table
    # covers (the convex hull of the plane's pixels); the rest (a wall or the floor beyond the table edge, above
    # the plane's extension) is background.
    min_support_fraction: float = 0.5


@dataclass
class DepthClusters:
    """Result of depth_clusters.

    Shape:
        labels: (H, W) int32, 0 = background / table / no depth, 1..n = clusters, largest first.
        plane: (4,) float64 (a, b, c, d), a x + b y + c z + d = 0 in camera coordinates with unit normal pointing
        towards the camera, or None when no plane was found.
    """

    labels: np.ndarray
    plane: np.ndarray | None
    plane_fraction: float

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: on some object."""
        return self.labels > 0

    @property
    def count(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0


def backproject(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W, 3) camera-frame points of a depth image (metres; 0 / NaN where invalid give z = 0)."""
    h, w = depth.shape
    z = np.nan_to_num(depth.astype(np.float64), nan=0.0)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=-1)


def fit_plane_ransac(points: np.ndarray, threshold: float, iterations: int,
                     rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray]:
    """The plane with the most inliers among `iterations` 3-point hypotheses, refined by least squares on its
    inliers; oriented so that the origin (the camera) is on its positive side.

    Shape: points (N, 3) -> plane (4,) or None (fewer than 3 points or all degenerate), inliers (N,) bool."""
    n = len(points)
    best, best_in = None, np.zeros(n, bool)
    if n < 3:
        return None, best_in
    for _ in range(iterations):
        p = points[rng.choice(n, 3, replace=False)]
        normal = np.cross(p[1] - p[0], p[2] - p[0])
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        inl = np.abs(points @ normal - normal @ p[0]) < threshold
        if inl.sum() > best_in.sum():
            best, best_in = np.append(normal, -normal @ p[0]), inl
    if best is None:
        return None, best_in
    q = points[best_in]  # least-squares refit: the smallest principal direction of the inliers
    c = q.mean(0)
    normal = np.linalg.svd(q - c, full_matrices=False)[2][-1]
    plane = np.append(normal, -normal @ c)
    if plane[3] < 0:  # the camera (origin) on the positive side: heights above the table are positive
        plane = -plane
    return plane, np.abs(points @ plane[:3] + plane[3]) < threshold


def depth_clusters(depth: np.ndarray, K: np.ndarray, config: DepthClusterConfig | None = None,
                   seed: int = 0) -> DepthClusters:
    """Objects on the supporting plane of a depth image.

    Args:
        depth: (H, W) metres, 0 or NaN where invalid.
        K: (3, 3) intrinsics of the depth image.
        seed: RANSAC's random draws (the result is a pure function of the inputs and the seed).

    Raises:
        ValueError: depth not 2-D or K not 3 x 3.
    """
    cfg = config or DepthClusterConfig()
    if depth.ndim != 2 or np.shape(K) != (3, 3):
        raise ValueError(f"expected depth (H, W) and K (3, 3), got {depth.shape} and {np.shape(K)}")
    h, w = depth.shape
    pts = backproject(depth, np.asarray(K, np.float64))
    valid = pts[..., 2] > 0
    empty = DepthClusters(np.zeros((h, w), np.int32), None, 0.0)
    idx = np.flatnonzero(valid)
    if idx.size < 3:
        return empty
    rng = np.random.default_rng(seed)
    sub = idx if idx.size <= cfg.sample_points else rng.choice(idx, cfg.sample_points, replace=False)
    plane, _ = fit_plane_ransac(pts.reshape(-1, 3)[sub], cfg.plane_threshold, cfg.iterations, rng)
    if plane is None:
        return empty
    height = pts @ plane[:3] + plane[3]
    on_plane = valid & (np.abs(height) < cfg.plane_threshold)
    fraction = float(on_plane.sum() / idx.size)
    if fraction < cfg.min_plane_fraction:
        return DepthClusters(np.zeros((h, w), np.int32), plane, fraction)
    above = valid & (height > cfg.min_height) & (height < cfg.max_height)
    # cut the object mask where depth jumps (an object in front of another) before grouping
    z = pts[..., 2]
    tol = cfg.jump_abs + cfg.jump_rel * z
    jump = np.zeros((h, w), bool)
    dx = np.abs(np.diff(z, axis=1)) > np.minimum(tol[:, 1:], tol[:, :-1])
    dy = np.abs(np.diff(z, axis=0)) > np.minimum(tol[1:], tol[:-1])
    jump[:, 1:] |= dx
    jump[1:] |= dy
    core = (above & ~jump).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=4)
    ys, xs = np.nonzero(on_plane)
    table = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(table, cv2.convexHull(np.stack([xs, ys], 1).astype(np.int32)), 1)
    inside = np.bincount(lab.ravel(), weights=table.ravel().astype(np.float64), minlength=n)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= cfg.min_cluster_fraction * h * w
            and inside[i] >= cfg.min_support_fraction * stats[i, cv2.CC_STAT_AREA]]
    keep.sort(key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    remap = np.zeros(n, np.int32)
    remap[keep] = np.arange(1, len(keep) + 1)
    labels = remap[lab]
    # give the cut pixels (depth edges above the table) to a neighbouring cluster
    grown = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
    edge = above & (labels == 0) & (grown > 0)
    labels[edge] = grown[edge]
    missing = ~valid
    _fill_holes(labels, missing, cfg.hole_border_share)
    for _ in range(cfg.rim_fill):  # silhouettes without depth: grow the clusters into them, one pixel a pass
        grown = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
        rim = missing & (labels == 0) & (grown > 0)
        labels[rim] = grown[rim]
    return DepthClusters(labels, plane, fraction)


def _fill_holes(labels: np.ndarray, missing: np.ndarray, share: float) -> None:
    """Give each connected region of missing depth to the cluster that holds at least `share` of the pixels around
    it (a sensor finds no depth on dark or shiny surfaces and along silhouettes: holes inside an object, and
    notches at its rim, belong to it). In place."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats(missing.astype(np.uint8), connectivity=8)
    h, w = labels.shape
    kernel = np.ones((3, 3), np.uint8)
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(w, x + bw + 1), min(h, y + bh + 1)
        region = (comp[y0:y1, x0:x1] == i).astype(np.uint8)
        ring = (cv2.dilate(region, kernel) > 0) & (region == 0)
        around = labels[y0:y1, x0:x1][ring]
        if around.size == 0:
            continue
        votes = np.bincount(around)
        best = int(votes[1:].argmax()) + 1 if votes.size > 1 else 0
        if best and votes[best] >= share * around.size:
            labels[y0:y1, x0:x1][region > 0] = best


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


__all__ = ["DepthClusterConfig", "DepthClusters", "backproject", "fit_plane_ransac", "depth_clusters", "mask_iou"]
