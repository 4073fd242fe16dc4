"""Visualisation helpers."""

from .pca import descriptor_to_rgb, pca_basis

__all__ = ["descriptor_to_rgb", "pca_basis"]
