"""Synthetic descriptor maps with known geometry: a smooth random field and exactly shifted copies."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dense_descriptor_ros.runtime import DescriptorMap


def smooth_field(h: int, w: int, d: int = 16, sigma: float = 3.0, seed: int = 0) -> np.ndarray:
    """(h, w, d) float32 Gaussian-smoothed noise with unit standard deviation."""
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((h, w, d)), (sigma, sigma, 0), mode="wrap")
    return (f / f.std()).astype(np.float32)


def shifted(field: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """B with B(p + (dx, dy)) = A(p): cubic-spline shift, so the true match of A's pixel p is p + shift."""
    return ndimage.shift(field, (dy, dx, 0), order=3, mode="nearest").astype(np.float32)


def as_map(desc: np.ndarray, stride: float = 1.0, model_id: str = "m") -> DescriptorMap:
    h, w = desc.shape[:2]
    return DescriptorMap(desc, (stride, stride), (round(w * stride), round(h * stride)), model_id)
