"""The descriptor map type shared by the runtime (which makes maps) and matching (which reads them): NumPy only,
so it sits on the ground floor and both import it from here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DescriptorMap:
    """Descriptors of one image and the geometry that maps them back to its pixels.

    Pixel convention (see correspondence/pairs.py): (x, y), pixel centres at integers. A map cell
    (column j, row i) is centred on image pixel ((j + 0.5) * sx - 0.5, (i + 0.5) * sy - 0.5).

    Shape:
        descriptors: (h, w, D) float32 or float16.
    """

    # (h, w, D) descriptors.
    descriptors: np.ndarray
    # (sx, sy): input-image pixels per map cell (network stride x resize factor).
    stride: tuple[float, float]
    # (W, H) of the input image.
    image_size: tuple[int, int]
    # ModelInfo.model_id of the network that made it ("" = unknown).
    model_id: str = ""
    # Whether the descriptors are L2-normalised.
    normalized: bool = False

    def __post_init__(self) -> None:
        if self.descriptors.ndim != 3:
            raise ValueError(f"descriptors: expected shape (h, w, D), got {self.descriptors.shape}")
        self.stride = (float(self.stride[0]), float(self.stride[1]))

    @property
    def descriptor_dim(self) -> int:
        return int(self.descriptors.shape[2])

    def to_map(self, uv: np.ndarray) -> np.ndarray:
        """Image pixel (x, y) (..., 2) -> map coordinates (column, row) (..., 2)."""
        return (np.asarray(uv, dtype=np.float64) + 0.5) / np.asarray(self.stride) - 0.5

    def to_image(self, p: np.ndarray) -> np.ndarray:
        """Map coordinates (column, row) (..., 2) -> image pixel (x, y) (..., 2)."""
        return (np.asarray(p, dtype=np.float64) + 0.5) * np.asarray(self.stride) - 0.5


__all__ = ["DescriptorMap"]
