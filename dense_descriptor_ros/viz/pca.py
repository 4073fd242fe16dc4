"""Descriptor images: project D-dimensional descriptors to RGB with PCA."""

from __future__ import annotations

import numpy as np
import torch

from ..correspondence.pairs import check_shape


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
