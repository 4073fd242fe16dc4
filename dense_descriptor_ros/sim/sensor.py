"""Colour-camera effects applied to a rendered RGB image (the realistic look): lens blur (defocus or a
little motion) and vignetting, shot and read noise, auto-exposure with an exposure error (dim scenes get
more gain, hence more visible noise), a white-balance error and optional JPEG compression.

They act on the RGB only, after rendering: depth, masks, canonical coordinates, poses and keypoints are
those of the clean render. The settings of a view are drawn by `sample_sensor` and recorded in
scene.json, the noise itself comes from the same Generator, so a view is a pure function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

#: auto-exposure target: mean linear luminance (0.18 = middle grey, about 118 in sRGB)
AUTO_EXPOSURE = 0.18
#: auto-exposure gain limits
GAIN_RANGE = (0.5, 4.0)


@dataclass
class SensorSettings:
    """The camera effects of one view."""

    blur: str  # "none", "defocus" (Gaussian) or "motion" (a line kernel)
    blur_px: float  # defocus: Gaussian sigma; motion: kernel length (pixels)
    blur_angle_deg: float  # motion blur direction in the image
    vignetting: float  # relative brightness loss in the image corners
    exposure: float  # exposure error: factor on the auto-exposure gain (1 = mean linear grey at AUTO_EXPOSURE)
    white_balance: list[float]  # per-channel (R, G, B) gains on linear intensity: a white-balance error
    shot_noise: float  # variance of the shot noise per unit of linear intensity (Poisson-like)
    read_noise: float  # standard deviation of the read noise (linear intensity in [0, 1])
    jpeg_quality: int  # JPEG quality of a compress/decompress round trip; 0 = none

    def to_json(self) -> dict:
        return asdict(self)


def sample_sensor(rng: np.random.Generator) -> SensorSettings:
    """Random, mostly mild camera effects for one view."""
    kind = rng.uniform()
    if kind < 0.45:
        blur, px = "defocus", float(rng.uniform(0.3, 0.9))
    elif kind < 0.6:
        blur, px = "motion", float(rng.uniform(1.0, 3.0))
    else:
        blur, px = "none", 0.0
    angle = float(rng.uniform(0, 180))
    wb = 2.0 ** rng.uniform(-0.2, 0.2, 3)
    return SensorSettings(
        blur=blur, blur_px=px, blur_angle_deg=angle, vignetting=float(rng.uniform(0.0, 0.35)),
        exposure=float(2.0 ** np.clip(rng.normal(0.0, 0.3), -0.7, 0.6)),
        white_balance=(wb / wb[1]).tolist(),
        shot_noise=float(rng.uniform(0.0003, 0.003)), read_noise=float(rng.uniform(0.002, 0.01)),
        jpeg_quality=int(rng.integers(55, 96)) if rng.uniform() < 0.3 else 0)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(np.maximum(x, 0.0031308), 1 / 2.4) - 0.055)


#: uint8 sRGB -> linear, and linear quantised to _LEVELS steps -> uint8 sRGB (lookup tables: the
#: per-pixel power functions would cost more than the rest of the camera model)
_TO_LINEAR = _srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_LEVELS = 8192
_TO_SRGB = np.clip(np.round(255 * _linear_to_srgb(np.arange(_LEVELS) / (_LEVELS - 1))), 0, 255).astype(np.uint8)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised line kernel of `length` pixels (anti-aliased) at `angle_deg`."""
    size = 2 * math.ceil(length / 2) + 1
    k = np.zeros((size * 4, size * 4), np.float32)  # drawn at 4x and reduced: sub-pixel lengths
    c = size * 2
    dx, dy = 2 * length * math.cos(math.radians(angle_deg)), 2 * length * math.sin(math.radians(angle_deg))
    cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 2, cv2.LINE_AA)
    k = cv2.resize(k, (size, size), interpolation=cv2.INTER_AREA)
    return k / k.sum()


def apply_sensor(rgb: np.ndarray, s: SensorSettings, rng: np.random.Generator) -> np.ndarray:
    """The camera's image of a rendered view.

    Shape:
        rgb: (H, W, 3) uint8 -> (H, W, 3) uint8.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    x = _TO_LINEAR[rgb]
    if s.blur == "defocus":
        x = cv2.GaussianBlur(x, (0, 0), s.blur_px, borderType=cv2.BORDER_REFLECT)
    elif s.blur == "motion":
        x = cv2.filter2D(x, -1, motion_kernel(s.blur_px, s.blur_angle_deg), borderType=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / ((w - 1) ** 2 / 4 + (h - 1) ** 2 / 4)
    x = x * (1.0 - s.vignetting * r2)[..., None]
    # shot (variance proportional to the signal) and read noise at the sensor, as one Gaussian per pixel
    noise = rng.standard_normal((h, w, 3), dtype=np.float32)
    x = x + np.sqrt(s.shot_noise * np.maximum(x, 0) + s.read_noise ** 2) * noise
    lum = float((x @ np.array([0.2126, 0.7152, 0.0722], np.float32)).mean())
    gain = np.clip(AUTO_EXPOSURE / max(lum, 1e-4), *GAIN_RANGE) * s.exposure
    x = x * gain * np.asarray(s.white_balance, np.float32)
    out = _TO_SRGB[np.clip(x * (_LEVELS - 1) + 0.5, 0, _LEVELS - 1).astype(np.int32)]
    if s.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
