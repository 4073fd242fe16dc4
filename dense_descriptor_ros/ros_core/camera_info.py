"""Pinhole intrinsics from sensor_msgs/CameraInfo-like objects, validated.

Duck-typed over rclpy and rosbags messages (lower-case `k`, `p`, `d`) and ROS 1 style objects
(upper-case `K`, `P`, `D`). Intrinsics always come from the camera driver's CameraInfo, never from
constants in code. Pixel convention of the package: pixel centres at integers, so the principal point
(cx, cy) is in the same coordinates as `correspondence.pairs` uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["CameraInfoError", "Intrinsics", "UncalibratedCameraError", "intrinsics_from_camera_info"]


class CameraInfoError(ValueError):
    """A CameraInfo that cannot give intrinsics: uncalibrated (all-zero K), malformed or mismatched."""


class UncalibratedCameraError(CameraInfoError):
    """The CameraInfo of an uncalibrated camera (an all-zero matrix): what such drivers publish, not an error
    in the message, but there are no intrinsics."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the images that go with a CameraInfo (binning and ROI applied)."""

    K: np.ndarray  # (3, 3) float64 camera matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], pixels
    height: int  # rows of the images these intrinsics describe
    width: int  # columns of the images these intrinsics describe
    distortion_model: str  # CameraInfo.distortion_model, e.g. "plumb_bob"; "" if none given
    D: np.ndarray  # (n,) float64 distortion coefficients; all zero or empty for rectified images

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cx(self) -> float:
        return float(self.K[0, 2])

    @property
    def cy(self) -> float:
        return float(self.K[1, 2])

    @property
    def is_distorted(self) -> bool:
        """True if the distortion coefficients are non-zero (the image is not rectified)."""
        return bool(np.any(self.D != 0))

    def check_image_size(self, height: int, width: int) -> None:
        """Raise CameraInfoError unless an image of (height, width) matches these intrinsics (a
        CameraInfo from another resolution or another camera is a common misconfiguration)."""
        if (height, width) != (self.height, self.width):
            raise CameraInfoError(
                f"image is {width}x{height} but the camera info describes {self.width}x{self.height} "
                "(camera info from another stream or resolution?)")


def _field(msg: Any, name: str) -> Any:
    """`msg.name`, accepting ROS 2 lower-case and ROS 1 upper-case spellings."""
    for attr in (name, name.upper()):
        if hasattr(msg, attr):
            return getattr(msg, attr)
    raise CameraInfoError(f"camera info has no field {name!r}")


def intrinsics_from_camera_info(msg: Any, matrix: Literal["k", "p"] = "k") -> Intrinsics:
    """Intrinsics from a CameraInfo, checked for calibration and sanity.

    Args:
        msg: CameraInfo-like object with height, width, k (9), p (12), d, distortion_model and
            optionally binning_x/y and roi.
        matrix: "k" for the raw camera matrix (images as captured), "p" for the left 3x3 block of the
            projection matrix (rectified images, e.g. `image_rect`).

    Raises:
        UncalibratedCameraError (a CameraInfoError): all-zero matrix (uncalibrated).
        CameraInfoError: wrong sizes, non-positive or non-finite focal
            lengths, a last row other than (0, 0, 1), or an empty image size.
    """
    if matrix == "k":
        K = np.asarray(_field(msg, "k"), dtype=np.float64).reshape(-1)
        if K.size != 9:
            raise CameraInfoError(f"camera info k has {K.size} values, expected 9")
        K = K.reshape(3, 3)
    elif matrix == "p":
        P = np.asarray(_field(msg, "p"), dtype=np.float64).reshape(-1)
        if P.size != 12:
            raise CameraInfoError(f"camera info p has {P.size} values, expected 12")
        K = P.reshape(3, 4)[:, :3].copy()
    else:
        raise ValueError(f"matrix must be 'k' or 'p', got {matrix!r}")
    if not np.any(K):
        raise UncalibratedCameraError(
            f"camera info has no intrinsics ({matrix} is all zero): the camera is not calibrated")
    if not np.all(np.isfinite(K)):
        raise CameraInfoError(f"camera info {matrix} has non-finite values: {K.reshape(-1).tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise CameraInfoError(f"camera info {matrix} has non-positive focal lengths fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]):
        raise CameraInfoError(f"camera info {matrix} last row is {K[2].tolist()}, expected [0, 0, 1]")

    height, width = int(msg.height), int(msg.width)
    # REP 104: k describes the full-resolution sensor; the published image may be a binned ROI of it.
    bx = max(int(getattr(msg, "binning_x", 0) or 0), 1)
    by = max(int(getattr(msg, "binning_y", 0) or 0), 1)
    roi = getattr(msg, "roi", None)
    x0 = y0 = 0
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        x0, y0, width, height = int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)
    if height <= 0 or width <= 0:
        raise CameraInfoError(f"camera info image size is {width}x{height}")
    if (bx, by, x0, y0) != (1, 1, 0, 0):
        # A binned pixel centre u' covers full-resolution pixels whose centres average to
        # b * u' + (b - 1) / 2, so with centres at integers u' = (u - x0 - (b - 1) / 2) / b.
        K = K.copy()
        K[0, :] = [K[0, 0] / bx, K[0, 1] / bx, (K[0, 2] - x0 - (bx - 1) / 2) / bx]
        K[1, :] = [0.0, K[1, 1] / by, (K[1, 2] - y0 - (by - 1) / 2) / by]
        height, width = height // by, width // bx
    D = np.asarray(_field(msg, "d"), dtype=np.float64).reshape(-1) if matrix == "k" else np.zeros(0)
    model = str(getattr(msg, "distortion_model", "") or "")
    return Intrinsics(K=K, height=height, width=width, distortion_model=model, D=D)
