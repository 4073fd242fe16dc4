"""Procedural textures and colours for objects and the room (patterns plus scikit-image sample images).

Only the scikit-image images that ship inside the package are used (no download). Every function draws
from the numpy Generator it is given, so appearance is a pure function of the seed.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

#: scikit-image sample images that load offline.
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "moon", "page",
                  "rocket", "text", "hubble_deep_field", "immunohistochemistry", "colorwheel", "clock", "cell")
PATTERNS = ("solid", "stripes", "checker", "dots", "gradient", "blobs", "image", "image")


@cache
def skimage_image(name: str) -> np.ndarray:
    """A scikit-image sample image as (H, W, 3) uint8 RGB (grey images replicated)."""
    import skimage.data  # local: importing skimage.data costs ~0.3 s and only texture generation needs it

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (255 * (img.astype(np.float64) / max(float(img.max()), 1e-9))).astype(np.uint8)
    return np.ascontiguousarray(img)


def random_color(rng: np.random.Generator, sat: tuple[float, float] = (0.2, 0.95),
                 val: tuple[float, float] = (0.25, 0.95)) -> np.ndarray:
    """(3,) RGB in [0, 1] drawn in HSV."""
    return np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)))


def _mix(t: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Blend two colours with weights t (S, S) in [0, 1] -> (S, S, 3) uint8."""
    out = (1 - t[..., None]) * c1 + t[..., None] * c2
    return np.clip(np.round(255 * out), 0, 255).astype(np.uint8)


def pattern_texture(rng: np.random.Generator, size: int = 128, kind: str | None = None) -> np.ndarray:
    """A random (size, size, 3) uint8 texture: a pattern, a tinted or plain scikit-image crop."""
    kind = kind or PATTERNS[int(rng.integers(len(PATTERNS)))]
    c1, c2 = random_color(rng), random_color(rng)
    y, x = np.mgrid[0:size, 0:size] / size
    if kind == "solid":
        t = 0.08 * rng.standard_normal((size, size))
        return _mix(np.clip(t, 0, 1), c1, c1 * 0.8)
    if kind == "stripes":
        ang = rng.uniform(0, np.pi)
        freq = int(rng.integers(2, 9))
        t = (np.sin(2 * np.pi * freq * (np.cos(ang) * x + np.sin(ang) * y)) > rng.uniform(-0.5, 0.5)).astype(float)
        return _mix(t, c1, c2)
    if kind == "checker":
        n = int(rng.integers(2, 9))
        return _mix(((np.floor(x * n) + np.floor(y * n)) % 2).astype(float), c1, c2)
    if kind == "dots":
        n = int(rng.integers(3, 9))
        fx, fy = (x * n) % 1 - 0.5, (y * n) % 1 - 0.5
        return _mix((np.hypot(fx, fy) < rng.uniform(0.15, 0.4)).astype(float), c1, c2)
    if kind == "gradient":
        return _mix(x if rng.uniform() < 0.5 else y, c1, c2)
    if kind == "blobs":
        g = rng.uniform(0, 1, (6, 6)).astype(np.float32)
        t = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        return _mix(np.clip(t, 0, 1), c1, c2)
    if kind == "image":
        img = skimage_image(SKIMAGE_IMAGES[int(rng.integers(len(SKIMAGE_IMAGES)))])
        h, w = img.shape[:2]
        side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
        if rng.uniform() < 0.5:  # tint: grey level between two random colours
            return _mix(crop.mean(-1) / 255.0, c1, c2)
        return crop
    raise ValueError(f"unknown texture kind {kind!r}")


def wood_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Wood-like grain for table tops."""
    y, x = np.mgrid[0:size, 0:size] / size
    g = cv2.resize(rng.uniform(0, 1, (8, 8)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(6, 20) * y + 2.0 * g + 0.3 * x))
    base = np.array(colorsys.hsv_to_rgb(rng.uniform(0.05, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.85)))
    return _mix(np.clip(t, 0, 1), base, base * rng.uniform(0.55, 0.8))


def surface_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Texture for the table or the floor: wood, a pattern or a sample image."""
    if rng.uniform() < 0.35:
        return wood_texture(rng, size)
    return pattern_texture(rng, size)


@dataclass
class Material:
    """How shiny a surface is (the realistic look): a white Blinn-Phong highlight added after rendering
    (`sim/shading.py`; TinyRenderer has one specular coefficient per render call and ignores per-object
    specular colours, measured).

    Attributes:
        gloss: highlight strength in [0, 1] (0 = matte).
        shininess: Blinn-Phong exponent (higher = smaller, sharper highlight).
    """

    gloss: float
    shininess: float


@dataclass
class Appearance:
    """How one instance looks: its texture (for textured parts) and a solid colour per other part.

    Attributes:
        texture: (S, S, 3) uint8 RGB.
        colors: part name -> (3,) RGB in [0, 1] for parts drawn without the texture.
        part_textures: part name -> (S, S, 3) uint8 RGB for parts drawn without the main texture (the
            realistic look; empty in the cartoon look, where those parts are flat `colors`).
        material: the realistic look's material (None: the cartoon look, no added highlights).
    """

    texture: np.ndarray
    colors: dict[str, np.ndarray]
    part_textures: dict[str, np.ndarray] = field(default_factory=dict)
    material: Material | None = None


METAL_PARTS = {("can", "rim"), ("can", "lid"), ("can", "base")}


def instance_appearance(rng: np.random.Generator, category: str, parts: list[str], size: int = 128) -> Appearance:
    """Texture and part colours of one instance (cans get metal lids; other parts random palette colours)."""
    texture = pattern_texture(rng, size)
    palette = [random_color(rng), random_color(rng), np.full(3, rng.uniform(0.75, 0.95))]
    metal = np.full(3, rng.uniform(0.55, 0.8))
    colors = {}
    for part in parts:
        colors[part] = metal if (category, part) in METAL_PARTS else palette[int(rng.integers(len(palette)))]
    return Appearance(texture, colors)
