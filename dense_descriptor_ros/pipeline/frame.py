"""One synchronised RGB-D input frame, decoded and checked, independent of where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..geometry.lifting import depth_to_meters


class FrameError(ValueError):
    """An input frame the pipeline cannot use (the message says why); the caller drops the frame."""


@dataclass
class Frame:
    """Decoded inputs of one time step.

    Shape:
        rgb: (H, W, 3) uint8; depth: (H, W) float32 metres, NaN where invalid, or None (no depth);
        K: (3, 3) float64 intrinsics of the colour image, or None (no camera info: 2D outputs only).
    """

    rgb: np.ndarray
    depth: np.ndarray | None
    K: np.ndarray | None
    stamp_ns: int  # stamp of the colour image's header
    frame_id: str  # optical frame of the colour image
    # Why the frame has fewer outputs than its messages promise (an uncalibrated camera info, an empty depth
    # image), for the caller to warn about; decode_frame fills it.
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the colour image."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


def make_frame(rgb: np.ndarray, depth: np.ndarray | None, K: np.ndarray | None, stamp_ns: int, frame_id: str,
               depth_encoding: str | None = None, size_mismatch: str = "scale", depth_min: float = 0.0,
               depth_max: float = float("inf")) -> Frame:
    """Check and normalise decoded inputs into a Frame.

    Args:
        depth: (h, w) uint16 millimetres (16UC1) or float32 metres (32FC1), registered to the colour
            image (same optical frame). Zero, NaN and out-of-range depths become NaN (invalid).
        size_mismatch: depth of another size than the colour image: "scale" resamples it (nearest
            neighbour, so invalid pixels stay invalid and no depth is invented across edges) when the
            aspect ratios agree within 1%; "reject" raises FrameError.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise FrameError(f"colour image: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    z = None
    if depth is not None:
        z = depth_to_meters(depth, depth_encoding, depth_min, depth_max)
        if z.shape != (h, w):
            dh, dw = z.shape
            if size_mismatch == "reject":
                raise FrameError(f"depth is {dw}x{dh} but colour is {w}x{h} (size_mismatch=reject)")
            if size_mismatch != "scale":
                raise ValueError(f"size_mismatch must be 'scale' or 'reject', got {size_mismatch!r}")
            if abs((dw / dh) / (w / h) - 1.0) > 0.01:
                raise FrameError(f"depth {dw}x{dh} and colour {w}x{h} have different aspect ratios: "
                                 "the depth is not registered to the colour image")
            z = cv2.resize(z, (w, h), interpolation=cv2.INTER_NEAREST)
    if K is not None:
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise FrameError(f"camera matrix K is not a valid 3x3 intrinsics matrix: {K.tolist()}")
    return Frame(rgb, z, K, int(stamp_ns), frame_id)
