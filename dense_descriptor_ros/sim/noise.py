"""A depth-sensor noise model for rendered depth (structured-light / stereo style).

Effects, in order: (1) quantisation in disparity d = f b / z to 1/`subpixel` pixel (depth steps grow
with z^2), with a small Gaussian disparity jitter; (2) dropout at depth discontinuities (the projector
shadow / stereo occlusion band, widened by `edge_width` pixels); (3) dropout on dark surfaces (too little
returned light), more likely the darker the pixel; (4) sparse random dropout. Dropped pixels are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class DepthNoise:
    """Parameters of the noise model."""

    baseline: float = 0.075  # metres between projector and camera (or stereo pair)
    subpixel: float = 8.0  # disparity quantisation: 1/subpixel pixel steps
    disparity_sigma: float = 0.05  # Gaussian disparity jitter (pixels)
    edge_jump: float = 0.03  # relative depth jump between neighbours that marks a discontinuity
    edge_width: int = 2  # pixels around a discontinuity that may drop out
    edge_dropout: float = 0.7  # probability of dropping a pixel in the edge band
    dark_threshold: float = 0.12  # mean RGB in [0, 1] below which dropout starts
    dark_dropout: float = 0.9  # dropout probability at black
    random_dropout: float = 0.002  # probability of dropping any pixel


def apply_depth_noise(depth: np.ndarray, rgb: np.ndarray, fx: float, rng: np.random.Generator,
                      model: DepthNoise | None = None) -> np.ndarray:
    """Noisy float32 depth (0 = no measurement) from exact depth (H, W) metres and rgb (H, W, 3) uint8."""
    m = model or DepthNoise()
    z = depth.astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    zs = np.where(ok, z, 1.0)
    disp = fx * m.baseline / zs + m.disparity_sigma * rng.standard_normal(z.shape)
    disp = np.maximum(np.round(disp * m.subpixel) / m.subpixel, 1.0 / m.subpixel)
    noisy = fx * m.baseline / disp
    # discontinuities: relative jump to any 4-neighbour
    pad = np.pad(zs, 1, mode="edge")
    jump = np.max(np.abs(np.stack([pad[1:-1, :-2], pad[1:-1, 2:], pad[:-2, 1:-1], pad[2:, 1:-1]]) - zs), 0) / zs
    edges = (jump > m.edge_jump) | ~ok
    if m.edge_width > 0:
        k = 2 * m.edge_width + 1
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    drop = edges & (rng.uniform(size=z.shape) < m.edge_dropout)
    lum = rgb.astype(np.float64).mean(-1) / 255.0
    p_dark = m.dark_dropout * np.clip(1.0 - lum / m.dark_threshold, 0.0, 1.0)
    drop |= rng.uniform(size=z.shape) < p_dark
    drop |= rng.uniform(size=z.shape) < m.random_dropout
    return np.where(ok & ~drop, noisy, 0.0).astype(np.float32)
