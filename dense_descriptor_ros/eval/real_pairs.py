"""Real-image evaluation pairs, beside the synthetic sets (issue #14): nothing here was rendered by us.

* ``real_photo``: held-out real photographs (`data.sample_images.REAL_HELDOUT`: never a training image nor a
  simulator texture) seen under two viewpoint-like homographies (rotation up to 30 degrees, scale 0.75-1.33,
  perspective) and two illuminations (gamma, exposure, white balance, a shading gradient, sensor noise and
  blur): an HPatches-like viewpoint + illumination pair with exact ground truth, p_B = M_B inv(M_A) p_A.
* ``real_stereo``: the Middlebury 2014 "motorcycle" stereo pair that scikit-image ships with its ground-truth
  disparity: two real cameras, real parallax, real occlusions and non-Lambertian surfaces. Each pair is a
  random rescaled crop of the left image and the corresponding crop of the right one; a point of A is scored
  where its disparity is known and it is not occluded in B (z-buffer test on the disparities).

Every pair is a pure function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

#: Range of the rotation (degrees), log-uniform scale and corner jitter (fraction of the size) of view B.
ROTATION_DEG = 30.0
SCALE = (0.75, 1.33)
PERSPECTIVE = 0.12
#: Source canvas of a real_photo pair, as a multiple of the view size (room for rotated, zoomed-out views).
CANVAS = 1.6
#: Scale range of a real_stereo crop (the full pair is 741 x 500).
STEREO_SCALE = (0.5, 0.75)
#: A point is occluded in the right view if a point with a disparity this much larger lands on its pixel.
OCCLUSION_DISPARITY_PX = 1.0


@dataclass
class RealPair:
    """Two uint8 RGB views and the map of A's pixels into B.

    Shape:
        image_a, image_b: (H, W, 3) uint8. map_ab: (H, W, 2) float32 pixel (x, y) in B of every pixel of A.
        valid: (H, W) bool, the pixels of A with a ground-truth correspondence inside B.
    """

    image_a: np.ndarray
    image_b: np.ndarray
    map_ab: np.ndarray
    valid: np.ndarray


def _pixel_grid(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs, ys], -1).astype(np.float64)


def _apply_h(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = pts @ M[:, :2].T + M[:, 2]
    return p[..., :2] / p[..., 2:3]


def photometric(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A plausible change of illumination and camera on a uint8 RGB image: gamma, exposure, white balance,
    a smooth shading gradient, blur and sensor noise (`strength` 0 = none, 1 = the full ranges)."""
    x = img.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    gamma = float(np.exp(rng.uniform(-1, 1) * strength * np.log(1.8)))
    gain = float(np.exp(rng.uniform(-1, 1) * strength * np.log(1.5)))
    balance = np.exp(rng.uniform(-1, 1, 3) * strength * np.log(1.2)).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(ang) * (xs / w - 0.5) + np.sin(ang) * (ys / h - 0.5)) + 0.5  # about [0, 1]
    shading = 1.0 - strength * rng.uniform(0.0, 0.45) * np.clip(ramp, 0, 1)
    x = np.clip(x, 0, 1) ** gamma * gain * balance * shading[..., None]
    sigma_blur = strength * rng.uniform(0.0, 1.0)
    if sigma_blur > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma_blur)
    x = x + rng.normal(0.0, strength * rng.uniform(0.0, 4.0) / 255.0, x.shape).astype(np.float32)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _view_corners(h: int, w: int, canvas_hw: tuple[int, int], rng: np.random.Generator, moved: bool) -> np.ndarray:
    """(4, 2) corners in the canvas of the region a view shows (A: about the centre; B: rotated, scaled,
    shifted and perspective-distorted)."""
    ch, cw = canvas_hw
    c = np.array([(cw - 1) / 2, (ch - 1) / 2])
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    if moved:
        ang = np.deg2rad(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
        s = np.exp(rng.uniform(np.log(SCALE[0]), np.log(SCALE[1])))
        R = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        pts = (base / s) @ R.T + rng.uniform(-0.08, 0.08, 2) * [w, h]
        pts += rng.uniform(-PERSPECTIVE, PERSPECTIVE, (4, 2)) * [w, h]
    else:
        pts = base + rng.uniform(-0.03, 0.03, (4, 2)) * [w, h]
    return pts + c


def photo_pair(canvas: np.ndarray, size: tuple[int, int], seed: int, illumination: bool = True) -> RealPair:
    """A viewpoint + illumination pair of one photograph.

    Args:
        canvas: (Hc, Wc, 3) uint8, the photo resized to cover CANVAS x size.
        size: (H, W) of the views.
        illumination: change illumination and camera (`photometric`); False = geometry only.
    """
    h, w = size
    rng = np.random.default_rng(seed)
    out = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    M = []
    for moved in (False, True):
        src = _view_corners(h, w, canvas.shape[:2], rng, moved).astype(np.float32)
        M.append(cv2.getPerspectiveTransform(src, out).astype(np.float64))
    views = [cv2.warpPerspective(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
             for m in M]
    image_a = photometric(views[0], rng, 0.3 if illumination else 0.0)
    image_b = photometric(views[1], rng, 1.0 if illumination else 0.0)
    grid = _pixel_grid(h, w)
    src = _apply_h(np.linalg.inv(M[0]), grid)
    map_ab = _apply_h(M[1], src)
    ch, cw = canvas.shape[:2]
    valid = ((map_ab[..., 0] >= 0) & (map_ab[..., 0] <= w - 1) & (map_ab[..., 1] >= 0) & (map_ab[..., 1] <= h - 1)
             & (src[..., 0] >= 0) & (src[..., 0] <= cw - 1) & (src[..., 1] >= 0) & (src[..., 1] <= ch - 1))
    return RealPair(image_a, image_b, map_ab.astype(np.float32), valid)


@cache
def stereo_motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Middlebury 2014 motorcycle (scikit-image ships it): left, right (500, 741, 3) uint8 and the left
    disparity (500, 741) float32 in pixels, NaN where unknown."""
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    disp = np.where(np.isfinite(disp), disp, np.nan).astype(np.float32)
    return np.ascontiguousarray(left), np.ascontiguousarray(right), disp


def _visible_in_right(disp: np.ndarray) -> np.ndarray:
    """(H, W) bool: left pixels whose point is not hidden in the right view by a nearer (larger-disparity) one."""
    h, w = disp.shape
    xs = np.arange(w)[None, :].repeat(h, 0)
    known = np.isfinite(disp)
    xr = np.round(xs - np.nan_to_num(disp, nan=0.0)).astype(np.int64)
    inside = known & (xr >= 0) & (xr < w)
    zbuf = np.full((h, w), -np.inf)
    rows = np.nonzero(inside)
    np.maximum.at(zbuf, (rows[0], xr[inside]), disp[inside])
    vis = np.zeros((h, w), bool)
    vis[inside] = disp[inside] >= zbuf[rows[0], xr[inside]] - OCCLUSION_DISPARITY_PX
    return vis


def stereo_pair(size: tuple[int, int], seed: int) -> RealPair:
    """A rescaled crop of the left motorcycle image and the crop of the right one that shows the same part."""
    h, w = size
    left, right, disp = stereo_motorcycle()
    H, W = disp.shape
    rng = np.random.default_rng(seed)
    s = max(rng.uniform(*STEREO_SCALE), h / H + 1e-3, w / W + 1e-3)
    sw, sh = int(round(W * s)), int(round(H * s))
    L = cv2.resize(left, (sw, sh), interpolation=cv2.INTER_AREA)
    R = cv2.resize(right, (sw, sh), interpolation=cv2.INTER_AREA)
    x0, y0 = int(rng.integers(0, sw - w + 1)), int(rng.integers(0, sh - h + 1))
    # A's pixels at full resolution (pixel centres scale about -0.5), their disparity and visibility
    grid = _pixel_grid(h, w) + [x0, y0]
    full = (grid + 0.5) / s - 0.5
    fx = np.clip(np.round(full[..., 0]).astype(int), 0, W - 1)
    fy = np.clip(np.round(full[..., 1]).astype(int), 0, H - 1)
    d = disp[fy, fx].astype(np.float64)
    vis = _visible_in_right(disp)[fy, fx] & np.isfinite(d)
    xr = ((full[..., 0] - np.nan_to_num(d) + 0.5) * s - 0.5)
    med = float(np.nanmedian(np.where(vis, grid[..., 0] - xr, np.nan))) if vis.any() else 0.0
    xb0 = int(np.clip(round(x0 - med), 0, sw - w))
    map_ab = np.stack([xr - xb0, grid[..., 1] - y0], -1)
    valid = vis & (map_ab[..., 0] >= 0) & (map_ab[..., 0] <= w - 1)
    return RealPair(np.ascontiguousarray(L[y0:y0 + h, x0:x0 + w]), np.ascontiguousarray(R[y0:y0 + h, xb0:xb0 + w]),
                    map_ab.astype(np.float32), valid)


__all__ = ["RealPair", "photo_pair", "stereo_pair", "photometric", "stereo_motorcycle", "CANVAS"]
