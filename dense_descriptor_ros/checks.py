"""Shape checks used by every layer (the ground floor: imports nothing of the package)."""

from __future__ import annotations

import torch


def check_shape(t: torch.Tensor, shape: tuple[int | str, ...], name: str) -> None:
    """Raise ValueError unless `t` has len(shape) dims and every int entry matches (str = any size)."""
    if t.ndim != len(shape) or any(isinstance(s, int) and s != n for s, n in zip(shape, t.shape, strict=True)):
        raise ValueError(f"{name}: expected shape ({', '.join(map(str, shape))}), got {tuple(t.shape)}")


__all__ = ["check_shape"]
