"""sensor_msgs/Image fields <-> numpy arrays, without cv_bridge (not installable from PyPI).

Works on anything with the Image fields `height, width, encoding, step, is_bigendian, data`: rclpy
messages (`data` is an array.array), rosbags messages (`data` is a numpy array) or plain objects.
Colour always decodes to RGB uint8 (H, W, 3); depth always decodes to float32 metres (H, W) with NaN
where the sensor had no reading (REP 117), so `np.isfinite(depth)` is the validity mask.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["ImageCodecError", "UnsupportedEncodingError", "MalformedImageError", "ImageFields",
           "COLOR_ENCODINGS", "DEPTH_ENCODINGS", "image_to_rgb", "image_to_depth", "image_to_depth_raw", "rgb_to_image",
           "depth_to_image", "labels_to_image"]


class ImageCodecError(ValueError):
    """An Image that cannot be converted; the message says which field is wrong."""


class UnsupportedEncodingError(ImageCodecError):
    """The encoding is not one this codec converts (see COLOR_ENCODINGS and DEPTH_ENCODINGS)."""


class MalformedImageError(ImageCodecError):
    """The fields contradict each other (step too small, data too short, empty image)."""


# encoding -> (channels, index of R, G, B in the pixel); mono8 repeats its one channel.
COLOR_ENCODINGS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
# encoding -> (element dtype, metres per unit). 16UC1 is millimetres (REP 118), 32FC1 metres.
DEPTH_ENCODINGS: dict[str, tuple[np.dtype, float]] = {
    "16UC1": (np.dtype(np.uint16), 1e-3),
    "32FC1": (np.dtype(np.float32), 1.0),
}


@dataclass(frozen=True)
class ImageFields:
    """The fields of a sensor_msgs/Image except the header (the caller stamps it with the input's)."""

    height: int  # rows
    width: int  # columns
    encoding: str  # e.g. "rgb8", "16UC1"
    is_bigendian: int  # 0: multi-byte elements are little-endian
    step: int  # bytes per row (no padding: width * bytes per pixel)
    data: np.ndarray  # (step * height,) uint8, row-major

    def to_kwargs(self, data_as: Literal["numpy", "array", "bytes"] = "numpy") -> dict[str, Any]:
        """Keyword arguments for an Image constructor. `data_as`: "numpy" for rosbags messages,
        "array" (array.array('B')) for rclpy messages, whose setter would otherwise check every byte
        in Python, "bytes" for anything else."""
        if data_as == "numpy":
            data: Any = self.data
        elif data_as == "array":
            data = array.array("B", self.data.tobytes())
        elif data_as == "bytes":
            data = self.data.tobytes()
        else:
            raise ValueError(f"data_as must be 'numpy', 'array' or 'bytes', got {data_as!r}")
        return {"height": self.height, "width": self.width, "encoding": self.encoding,
                "is_bigendian": self.is_bigendian, "step": self.step, "data": data}


def _rows(msg: Any, bytes_per_pixel: int) -> np.ndarray:
    """The pixel bytes of `msg` as (height, width * bytes_per_pixel) uint8, row padding removed.

    Checks the layout fields against each other and against the length of `data`.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise MalformedImageError(f"image is empty: height={height}, width={width}")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise MalformedImageError(
            f"step {step} is smaller than width * bytes per pixel = {width} * {bytes_per_pixel} = {row_bytes} "
            f"(encoding {msg.encoding!r})")
    try:
        buf = np.frombuffer(msg.data, dtype=np.uint8)
    except (TypeError, ValueError):  # a list of ints, or a non-contiguous array
        buf = np.asarray(msg.data, dtype=np.uint8).ravel()
    if buf.size < step * height:
        raise MalformedImageError(
            f"data has {buf.size} bytes, fewer than step * height = {step} * {height} = {step * height}")
    return buf[: step * height].reshape(height, step)[:, :row_bytes]


def _encoding(msg: Any) -> str:
    return str(msg.encoding)


def image_to_rgb(msg: Any) -> np.ndarray:
    """Decode a colour Image (rgb8, bgr8, rgba8, bgra8, mono8) to RGB.

    Returns:
        (H, W, 3) uint8, C-contiguous, a copy (never a view of `msg.data`).
    """
    enc = _encoding(msg)
    if enc not in COLOR_ENCODINGS:
        hint = " (a depth encoding: use image_to_depth)" if enc in DEPTH_ENCODINGS else ""
        raise UnsupportedEncodingError(
            f"colour encoding {enc!r} is not supported{hint}; supported: {', '.join(COLOR_ENCODINGS)}")
    channels, rgb = COLOR_ENCODINGS[enc]
    pixels = _rows(msg, channels).reshape(int(msg.height), int(msg.width), channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    # A strided view (reversed for BGR) and one copy: 3x faster than fancy indexing.
    view = pixels[..., 2::-1] if rgb == (2, 1, 0) else pixels[..., :3]
    return np.array(view, order="C", copy=True)


def image_to_depth_raw(msg: Any) -> tuple[np.ndarray, str]:
    """The depth Image's pixels as sent, unconverted: (H, W) uint16 millimetres for 16UC1 or float32 metres
    for 32FC1, native byte order (a read-only view of `msg.data` when no conversion is needed), and the
    encoding. geometry.depth_to_meters (or make_frame) turns it into metres with NaN where invalid in
    one pass; image_to_depth does both."""
    enc = _encoding(msg)
    if enc not in DEPTH_ENCODINGS:
        hint = " (a colour encoding: use image_to_rgb)" if enc in COLOR_ENCODINGS else ""
        raise UnsupportedEncodingError(
            f"depth encoding {enc!r} is not supported{hint}; supported: {', '.join(DEPTH_ENCODINGS)}")
    native = DEPTH_ENCODINGS[enc][0]
    dtype = native.newbyteorder(">" if msg.is_bigendian else "<")
    rows = np.ascontiguousarray(_rows(msg, dtype.itemsize))
    depth = rows.view(dtype).reshape(int(msg.height), int(msg.width))
    if dtype != native:  # a byte order other than this machine's
        depth = depth.astype(native)
    return depth, enc


def image_to_depth(msg: Any) -> np.ndarray:
    """Decode a depth Image (16UC1 in millimetres or 32FC1 in metres) to metres.

    Zero, negative and non-finite readings (no return) become NaN.

    Returns:
        (H, W) float32 metres, a copy.
    """
    from ..geometry.lifting import depth_to_meters  # here: the geometry package imports torch; the codec must not

    depth, enc = image_to_depth_raw(msg)
    return depth_to_meters(depth, enc)  # type: ignore[arg-type]


def rgb_to_image(rgb: np.ndarray, encoding: str = "rgb8") -> ImageFields:
    """Encode RGB (H, W, 3) uint8 as an Image in `encoding` (any of COLOR_ENCODINGS; mono8 takes the
    ITU-R BT.601 luma, as OpenCV's RGB2GRAY)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if encoding not in COLOR_ENCODINGS:
        raise UnsupportedEncodingError(
            f"colour encoding {encoding!r} is not supported; supported: {', '.join(COLOR_ENCODINGS)}")
    h, w = rgb.shape[:2]
    channels, order = COLOR_ENCODINGS[encoding]
    if encoding == "mono8":
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        pixels = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    else:
        pixels = np.empty((h, w, channels), np.uint8)
        pixels[..., list(order)] = rgb  # order[i] is where channel i of RGB goes
        if channels == 4:
            pixels[..., 3] = 255
    return ImageFields(h, w, encoding, 0, w * channels, np.ascontiguousarray(pixels).reshape(-1))


def labels_to_image(labels: np.ndarray) -> ImageFields:
    """Encode a (H, W) uint8 label image (class ids) as mono8."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels: expected (H, W) uint8, got {labels.shape} {labels.dtype}")
    h, w = labels.shape
    return ImageFields(h, w, "mono8", 0, w, np.ascontiguousarray(labels).reshape(-1))


def depth_to_image(depth_m: np.ndarray, encoding: str = "16UC1") -> ImageFields:
    """Encode metric depth (H, W) as an Image; NaN, non-positive and (16UC1) unrepresentable values
    (>= 65.5355 m) become 0, the 'no reading' value of 16UC1. 32FC1 writes NaN for no reading."""
    if depth_m.ndim != 2:
        raise ValueError(f"depth_m: expected (H, W), got {depth_m.shape}")
    if encoding not in DEPTH_ENCODINGS:
        raise UnsupportedEncodingError(
            f"depth encoding {encoding!r} is not supported; supported: {', '.join(DEPTH_ENCODINGS)}")
    dtype, scale = DEPTH_ENCODINGS[encoding]
    d = depth_m.astype(np.float64) / scale
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(d) & (d > 0)
        if dtype == np.uint16:
            d = np.rint(d)
            valid &= d <= np.iinfo(np.uint16).max
            out = np.where(valid, d, 0).astype("<u2")
        else:
            out = np.where(valid, d, np.nan).astype("<f4")
    h, w = out.shape
    return ImageFields(h, w, encoding, 0, w * out.itemsize, out.reshape(-1).view(np.uint8))
