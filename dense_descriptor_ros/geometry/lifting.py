"""Lift image points to 3D in the camera optical frame from a depth image and intrinsics K (NumPy).

Depth comes as ROS publishes it: 16UC1 in millimetres (uint16) or 32FC1 in metres (float32). A point's
depth is the median of the valid depths in a small window around it, which bridges the holes of
structured-light and stereo sensors; 0, NaN, inf and depths outside [min_depth, max_depth] are
invalid. A point whose window holds no valid depth gets no 3D position (valid=False, NaN xyz),
never an invented one. Conventions as in geometry/camera.py: pixels (x, y) with centres at
integers, OpenCV optical frame (x right, y down, z forward), depth = z.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DepthEncoding = Literal["16UC1", "32FC1"]


def depth_to_meters(depth: np.ndarray, encoding: DepthEncoding | None = None, min_depth: float = 0.0,
                    max_depth: float = float("inf")) -> np.ndarray:
    """(H, W) depth image -> float32 metres with NaN wherever the depth is invalid.

    `encoding` defaults from the dtype: uint16 -> "16UC1" (mm), float32/float64 -> "32FC1" (m)."""
    if depth.ndim != 2:
        raise ValueError(f"depth: expected shape (H, W), got {depth.shape}")
    if encoding is None:
        encoding = "16UC1" if depth.dtype == np.uint16 else "32FC1"
    if encoding == "16UC1":
        if depth.dtype != np.uint16:
            raise ValueError(f"16UC1 depth must be uint16 millimetres, got {depth.dtype}")
        z = np.multiply(depth, np.float32(1e-3), dtype=np.float32)
    elif encoding == "32FC1":
        if depth.dtype not in (np.float32, np.float64):
            raise ValueError(f"32FC1 depth must be float32 metres, got {depth.dtype}")
        z = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth encoding must be '16UC1' or '32FC1', got {encoding!r}")
    # One mask in two comparisons: NaN fails both, +inf fails the upper bound (capped to a finite value).
    lo = np.float32(max(min_depth, 0.0))
    hi = np.float32(min(max_depth, float(np.finfo(np.float32).max)))
    with np.errstate(invalid="ignore"):
        ok = (z >= lo) if lo > 0 else (z > 0)
        ok &= z <= hi
    np.copyto(z, np.float32(np.nan), where=~ok)
    return z


def _nan_median(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise median ignoring NaN, without all-NaN warnings. (N, k) -> median (N,), count (N,)."""
    count = np.isfinite(a).sum(1)
    s = np.sort(a, axis=1)  # NaN sorts last
    lo = np.clip((count - 1) // 2, 0, a.shape[1] - 1)
    hi = np.clip(count // 2, 0, a.shape[1] - 1)
    rows = np.arange(len(a))
    med = 0.5 * (s[rows, lo] + s[rows, hi])
    return np.where(count > 0, med, np.nan), count


def lift_points(uv: np.ndarray, depth: np.ndarray, K: np.ndarray, encoding: DepthEncoding | None = None,
                window: int = 5, min_depth: float = 0.05, max_depth: float = 10.0,
                min_valid: int = 1,
                statistic: Literal["median", "nearest"] = "median") -> tuple[np.ndarray, np.ndarray]:
    """3D points in the camera optical frame at (sub)pixel positions.

    Args:
        uv: (N, 2) pixel (x, y) in the depth image (registered to the colour image); NaN rows (e.g.
            keypoints not found) are invalid.
        depth: (H, W) uint16 millimetres (16UC1) or float32 metres (32FC1).
        K: (3, 3) intrinsics of the depth image.
        window: odd side of the square window the median depth is taken over (1 = the pixel itself).
        min_depth, max_depth: valid depth range in metres.
        min_valid: fewest valid depths the window must hold.
        statistic: the window's depth that is used: "median" (robust to noise; at a depth edge it
            takes whichever side has more pixels) or "nearest" (the closest surface: for points known
            to lie on an object, e.g. named keypoints on a thin mug handle, where a match 2 px off
            the handle would otherwise get the table's depth behind it; measured on the simulated
            mug sequence with 2 px errors: median 4-6 mm with a 80th percentile under 10 mm, against
            8-37 mm and 80-190 mm for "median").

    Returns:
        xyz (N, 3) float64 metres (NaN where invalid) and valid (N,) bool.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv: expected shape (N, 2), got {uv.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K: expected shape (3, 3), got {K.shape}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be odd and >= 1, got {window}")
    if depth.ndim != 2:
        raise ValueError(f"depth: expected shape (H, W), got {depth.shape}")
    h, w = depth.shape
    n = len(uv)
    finite = np.isfinite(uv).all(1)
    inside = finite & (uv[:, 0] >= -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < h - 0.5)
    c = np.rint(np.where(inside[:, None], uv, 0.0)).astype(np.int64)
    r = window // 2
    off = np.arange(-r, r + 1)
    rows = c[:, 1, None, None] + off[None, :, None]
    cols = c[:, 0, None, None] + off[None, None, :]
    in_img = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    # Convert only the sampled windows, not the whole image (this runs for every frame in the node).
    raw = depth[np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)].reshape(n, -1)
    z = depth_to_meters(raw, encoding, min_depth, max_depth)
    z[~in_img.reshape(n, -1)] = np.nan
    if statistic == "median":
        zmed, count = _nan_median(z)
    elif statistic == "nearest":
        count = np.isfinite(z).sum(1)
        zmed = np.where(count > 0, np.nanmin(np.where(np.isfinite(z), z, np.inf), axis=1), np.nan)
    else:
        raise ValueError(f"statistic must be 'median' or 'nearest', got {statistic!r}")
    valid = inside & (count >= min_valid) & np.isfinite(zmed)
    zv = np.where(valid, zmed, np.nan)
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    x = (uv[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    xyz = np.stack([x * zv, y * zv, zv], 1)
    xyz[~valid] = np.nan
    return xyz, valid


def lift_correspondences(uv_a: np.ndarray, uv_b: np.ndarray, depth_a: np.ndarray, depth_b: np.ndarray,
                         K_a: np.ndarray, K_b: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both ends of (M) correspondences in 3D. Returns xyz_a, xyz_b (M, 3) and valid (M,) bool, True
    only where both ends have a depth. `kwargs` go to `lift_points`."""
    xyz_a, va = lift_points(uv_a, depth_a, K_a, **kwargs)
    xyz_b, vb = lift_points(uv_b, depth_b, K_b, **kwargs)
    valid = va & vb
    xyz_a[~valid] = np.nan
    xyz_b[~valid] = np.nan
    return xyz_a, xyz_b, valid
