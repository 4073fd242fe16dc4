"""Descriptor images: project D-dimensional descriptors to RGB with PCA."""

from __future__ import annotations

import numpy as np
import torch

from ..checks import check_shape


def pca_basis(desc: torch.Tensor, max_samples: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and top-3 principal axes (D, 3) of a (D, H, W) or (B, D, H, W) map.

    Samples a fixed strided subset of pixels so the result is deterministic."""
    d = desc.shape[-3]
    x = desc.detach().float().movedim(-3, -1).reshape(-1, d)
    step = max(1, x.shape[0] // max_samples)
    x = x[::step]
    mean = x.mean(0)
    if d < 3:
        basis = torch.eye(d, 3, device=x.device)
    else:
        _, _, v = torch.linalg.svd(x - mean, full_matrices=False)
        basis = v[:3].T
        # fix the sign ambiguity of SVD so colours do not flip between calls
        basis = basis * torch.sign(basis.sum(0, keepdim=True) + 1e-12)
        basis = torch.nn.functional.pad(basis, (0, 3 - basis.shape[1]))  # fewer than 3 pixels: zero axes
    return mean, basis


def descriptor_to_rgb(desc: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """PCA-RGB image of a descriptor map.

    Shape:
        desc: (D, H, W) -> (H, W, 3) uint8. Pass `basis` from `pca_basis` to colour several maps alike.
    """
    check_shape(desc, ("D", "H", "W"), "desc")
    mean, axes = basis if basis is not None else pca_basis(desc)
    x = desc.detach().float().permute(1, 2, 0) - mean
    y = x @ axes  # (H, W, 3)
    lo = torch.quantile(y.reshape(-1, 3)[:: max(1, y.numel() // 60000)], 0.01, dim=0)
    hi = torch.quantile(y.reshape(-1, 3)[:: max(1, y.numel() // 60000)], 0.99, dim=0)
    y = ((y - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    return (y * 255).round().byte().cpu().numpy()


class PcaColorizer:
    """PCA-RGB images with colours that stay put over a video: the basis and the colour range are fitted
    on the first map and reused (a per-frame fit flickers, and its signs and ranges jump).

    Shape:
        desc: (h, w, D) float16/float32 numpy -> (h, w, 3) uint8 RGB.
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.axes: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def fit(self, desc: np.ndarray) -> None:
        check_shape(desc, ("h", "w", "D"), "desc")
        mean, axes = pca_basis(torch.from_numpy(np.ascontiguousarray(desc, np.float32)).permute(2, 0, 1))
        self.mean, self.axes = mean.numpy(), axes.numpy()
        y = (desc.reshape(-1, desc.shape[2]).astype(np.float32) - self.mean) @ self.axes
        self.lo, self.hi = np.quantile(y, 0.01, axis=0), np.quantile(y, 0.99, axis=0)

    def __call__(self, desc: np.ndarray) -> np.ndarray:
        check_shape(desc, ("h", "w", "D"), "desc")
        if self.mean is None or self.mean.shape[0] != desc.shape[2]:
            self.fit(desc)
        y = (desc.astype(np.float32) - self.mean) @ self.axes
        y = (y - self.lo) / np.maximum(self.hi - self.lo, 1e-8)
        return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
