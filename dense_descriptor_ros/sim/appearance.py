"""The realistic look (domain randomisation): photo-derived textures with printed labels and multi-scale
detail, materials from matte to glossy, and random lighting.

`sim generate --appearance cartoon` keeps the original procedural look (sim/textures.py);
`--appearance realistic` uses this module. Photographs come only from the TRAINING sample images
(`data.sample_images.TRAIN_IMAGES`): the held-out photos, on which descriptors are evaluated, never
become textures. Every function draws from the numpy Generator it is given, so the look is a pure
function of the seed. The aim (as in Dense Object Nets and sim-to-real domain randomisation work) is that
colour alone does not identify a point: every surface carries texture at several scales, labels make
the front of an object differ from its back, and lighting and material vary between scenes.
"""

from __future__ import annotations

import math
import string
from functools import cache

import cv2
import numpy as np

from .textures import METAL_PARTS, Appearance, Material, random_color, skimage_image, wood_texture

#: instance body texture side (pixels): a body spans about 60-120 pixels at 320x240, so this is
#: above the image resolution at every distance the cameras use
BODY_TEXTURE = 256
#: texture side of the other parts (handles, rims, lids, ...)
PART_TEXTURE = 128
#: photos are reduced to this longer side once (crops of larger ones cost more to resize than they add)
PHOTO_SIDE = 512
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL)


#: names of the photos loaded for textures by this process (a test checks that none is held out)
PHOTOS_LOADED: set[str] = set()


@cache
def training_photos() -> tuple[str, ...]:
    """Names of the scikit-image photos that textures may use: the training images only."""
    from ..sample_images import TRAIN_IMAGES

    return tuple(TRAIN_IMAGES)


def photo(name: str) -> np.ndarray:
    """A training photo as (H, W, 3) uint8 RGB, at most PHOTO_SIDE pixels on its longer side; a
    held-out photo is refused."""
    if name not in training_photos():
        raise ValueError(f"{name!r} is not a training photo: held-out photos never become textures")
    PHOTOS_LOADED.add(name)
    return _reduced(name)


@cache
def _reduced(name: str) -> np.ndarray:
    img = skimage_image(name)
    scale = PHOTO_SIDE / max(img.shape[:2])
    if scale >= 1:
        return img
    return cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def random_material(rng: np.random.Generator) -> Material:
    """Matte (about a third), satin or glossy."""
    kind = rng.uniform()
    if kind < 0.35:
        return Material(float(rng.uniform(0.0, 0.08)), float(rng.uniform(4, 12)))
    if kind < 0.7:
        return Material(float(rng.uniform(0.1, 0.35)), float(rng.uniform(8, 30)))
    return Material(float(rng.uniform(0.35, 0.9)), float(rng.uniform(25, 120)))


# ---------------------------------------------------------------------------------------------- textures


def fractal_noise(rng: np.random.Generator, h: int, w: int, cells: tuple[int, ...] = (3, 6, 12, 24, 48, 96),
                  falloff: float = 0.75) -> np.ndarray:
    """(h, w) float32 noise with structure at several scales (cubic-upsampled Gaussian grids of `cells`
    cells, the finer ones weighted by falloff^k), zero mean and unit standard deviation."""
    out = np.zeros((h, w), np.float32)
    for k, c in enumerate(cells):
        grid = rng.standard_normal((c + 3, c + 3)).astype(np.float32)
        up = cv2.resize(grid, (w * (c + 3) // c, h * (c + 3) // c), interpolation=cv2.INTER_CUBIC)
        oy, ox = (up.shape[0] - h) // 2, (up.shape[1] - w) // 2
        out += falloff ** k * up[oy:oy + h, ox:ox + w]
    return (out - out.mean()) / max(float(out.std()), 1e-6)


def photo_crop(rng: np.random.Generator, h: int, w: int, min_frac: float = 0.15) -> np.ndarray:
    """(h, w, 3) uint8: a random crop of a random training photo, randomly rotated by 90 degree steps and
    flipped, resized to (h, w)."""
    names = training_photos()
    img = photo(names[int(rng.integers(len(names)))])
    img = np.rot90(img, int(rng.integers(4)))
    if rng.uniform() < 0.5:
        img = img[:, ::-1]
    ih, iw = img.shape[:2]
    aspect = w / h
    side = rng.uniform(min_frac, 1.0) * min(ih, iw / aspect)
    ch, cw = max(int(side), 4), max(int(side * aspect), 4)
    y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
    crop = np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw])
    interp = cv2.INTER_AREA if ch > h else cv2.INTER_CUBIC
    return cv2.resize(crop, (w, h), interpolation=interp)


def recolor(rng: np.random.Generator, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Random hue rotation, saturation, contrast and brightness, or a duotone (grey levels mapped between
    two random colours), so that a photo's own colours do not identify it. uint8 in and out."""
    x = img.astype(np.float32) / 255.0
    if rng.uniform() < 0.35:  # duotone
        g = x.mean(-1, keepdims=True)
        g = (g - g.mean()) / max(float(g.std()), 1e-3) * rng.uniform(0.12, 0.3) + 0.5
        c1, c2 = random_color(rng), random_color(rng)
        out = (1 - g) * c1 + g * c2
    else:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # float: H in [0, 360)
        hsv[..., 0] = (hsv[..., 0] + strength * rng.uniform(0, 360)) % 360
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.4, 1.6) + rng.uniform(0.0, 0.3), 0, 1)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        out = (out - out.mean()) * rng.uniform(0.6, 1.3) + out.mean() * rng.uniform(0.7, 1.2)
    return np.clip(np.round(255 * out), 0, 255).astype(np.uint8)


def _random_word(rng: np.random.Generator) -> str:
    kind = rng.uniform()
    if kind < 0.2:
        return "".join(rng.choice(list(string.digits), int(rng.integers(2, 6))))
    letters = string.ascii_uppercase if rng.uniform() < 0.6 else string.ascii_lowercase
    word = "".join(rng.choice(list(letters), int(rng.integers(3, 9))))
    if kind > 0.85:
        word += f" {int(rng.integers(1, 999))}{['g', 'ml', '%', ' oz', ''][int(rng.integers(5))]}"
    return word


def _contrasting(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """A colour far in lightness from `bg`."""
    light = float(bg @ np.array([0.299, 0.587, 0.114]))
    val = (0.0, 0.3) if light > 0.5 else (0.75, 1.0)
    return random_color(rng, sat=(0.0, 0.9), val=val)


def _draw_logo(rng: np.random.Generator, img: np.ndarray, centre: tuple[int, int], r: int, color: np.ndarray) -> None:
    c = tuple(int(v) for v in np.round(255 * color))
    kind = int(rng.integers(4))
    if kind == 0:
        cv2.circle(img, centre, r, c, -1, cv2.LINE_AA)
        cv2.circle(img, centre, max(r // 2, 1), tuple(255 - v for v in c), -1, cv2.LINE_AA)
    elif kind == 1:
        cv2.ellipse(img, centre, (r, max(r // 2, 1)), float(rng.uniform(0, 180)), 0, 360, c, -1, cv2.LINE_AA)
    else:
        n = int(rng.integers(3, 7)) * (2 if kind == 3 else 1)
        ang = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(n) / n
        rad = np.where(np.arange(n) % 2 == 1, 0.45 * r, r) if kind == 3 else np.full(n, r)
        pts = np.stack([centre[0] + rad * np.cos(ang), centre[1] + rad * np.sin(ang)], 1)
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], c, cv2.LINE_AA)


def printed_label(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8: a product label with a plain, gradient or photo background, one to three lines of
    random text in random fonts, a logo, optional border and barcode."""
    bg = random_color(rng, sat=(0.0, 0.9), val=(0.15, 1.0))
    if rng.uniform() < 0.25:
        img = recolor(rng, photo_crop(rng, h, w)).astype(np.float32) / 255.0
        img = 0.5 * img + 0.5 * bg
    elif rng.uniform() < 0.4:
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to((1 - t) * bg + t * random_color(rng), (h, w, 3))
    else:
        img = np.broadcast_to(bg, (h, w, 3))
    img = np.ascontiguousarray(np.clip(np.round(255 * img), 0, 255).astype(np.uint8))
    ink = _contrasting(rng, bg)
    ink_c = tuple(int(v) for v in np.round(255 * ink))
    if rng.uniform() < 0.5:  # border
        t = int(rng.integers(1, 4))
        cv2.rectangle(img, (t, t), (w - 1 - t, h - 1 - t), ink_c, t, cv2.LINE_AA)
    lines = int(rng.integers(1, 4))
    y = int(rng.uniform(0.1, 0.3) * h)
    logo_left = rng.uniform() < 0.5
    x0 = int(0.3 * w) if logo_left else int(0.06 * w)
    for k in range(lines):
        font = FONTS[int(rng.integers(len(FONTS)))]
        text = _random_word(rng)
        thick = int(rng.integers(1, 3 if k else 4))
        (tw, th), _ = cv2.getTextSize(text, font, 1.0, thick)
        scale = min(rng.uniform(0.4, 0.66) * w / max(tw, 1), (0.55 if k == 0 else 0.3) * h / max(th, 1))
        th_px = int(th * scale)
        y = min(y + th_px + int(0.05 * h), h - 2)
        cv2.putText(img, text, (x0, y), font, scale, ink_c if k == 0 else tuple(int(v) for v in np.round(
            255 * _contrasting(rng, bg))), thick, cv2.LINE_AA)
    r = int(rng.uniform(0.1, 0.2) * min(h, w) + 2)
    cx = int(0.15 * w) if logo_left else int(rng.uniform(0.72, 0.88) * w)
    _draw_logo(rng, img, (cx, int(rng.uniform(0.3, 0.7) * h)), r, random_color(rng))
    if rng.uniform() < 0.35:  # barcode
        bx, by, bw, bh = int(0.62 * w), int(0.72 * h), int(0.3 * w), int(0.2 * h)
        cv2.rectangle(img, (bx - 2, by - 2), (bx + bw + 2, by + bh + 2), (250, 250, 250), -1)
        widths = rng.integers(1, 4, 40)
        x = bx
        for i, bwid in enumerate(widths):
            if x + bwid > bx + bw:
                break
            if i % 2 == 0:
                cv2.rectangle(img, (int(x), by), (int(x + bwid - 1), by + bh), (15, 15, 15), -1)
            x += bwid
    return img


def _paint(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float32 base coat in [0, 1]: a recoloured photo, or one or two paint colours mottled by
    photo luminance and noise."""
    if rng.uniform() < 0.5:
        return recolor(rng, photo_crop(rng, h, w)).astype(np.float32) / 255.0
    c1 = random_color(rng)
    c2 = c1 * rng.uniform(0.6, 1.0) if rng.uniform() < 0.5 else random_color(rng)
    lum = photo_crop(rng, h, w).astype(np.float32).mean(-1) / 255.0
    t = np.clip(0.5 + (lum - lum.mean()) * rng.uniform(0.3, 1.0) + 0.15 * fractal_noise(rng, h, w), 0, 1)
    return (1 - t[..., None]) * c1 + t[..., None] * c2


def _bands(rng: np.random.Generator, img: np.ndarray) -> None:
    """Horizontal bands (across u, i.e. around a body of revolution) painted in place."""
    h = img.shape[0]
    for _ in range(int(rng.integers(0, 4))):
        y0 = int(rng.integers(0, h))
        y1 = min(h, y0 + int(rng.uniform(0.02, 0.12) * h))
        img[y0:y1] = random_color(rng)


def _detail(rng: np.random.Generator, img: np.ndarray, amount: float) -> np.ndarray:
    """Multiply by (1 + amount * multi-scale noise) and add fine speckle: wear, print grain, dirt."""
    h, w = img.shape[:2]
    lum = 1.0 + amount * fractal_noise(rng, h, w)
    speck = 0.5 * amount * fractal_noise(rng, h, w, cells=(64, 128), falloff=1.0)
    return np.clip(img * lum[..., None] + speck[..., None], 0, 1)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(255 * x), 0, 255).astype(np.uint8)


def body_texture(rng: np.random.Generator, size: int = BODY_TEXTURE) -> np.ndarray:
    """(size, size, 3) uint8 texture of an instance's main part: base coat, bands, one or two printed
    labels and multi-scale detail. The texture's x axis wraps around a body of revolution."""
    img = _paint(rng, size, size)
    _bands(rng, img)
    for _ in range(1 if rng.uniform() < 0.6 else 2):
        lw, lh = int(rng.uniform(0.28, 0.55) * size), int(rng.uniform(0.3, 0.6) * size)
        label = printed_label(rng, lh, lw).astype(np.float32) / 255.0
        x0, y0 = int(rng.integers(0, size - lw + 1)), int(rng.integers(0, size - lh + 1))
        img[y0:y0 + lh, x0:x0 + lw] = label
    return _to_u8(_detail(rng, img, rng.uniform(0.05, 0.15)))


def part_texture(rng: np.random.Generator, color: np.ndarray, metal: bool, size: int = PART_TEXTURE) -> np.ndarray:
    """(size, size, 3) uint8 texture of a secondary part: its colour with photo-derived and noise detail,
    or brushed metal."""
    if metal:
        streak = cv2.resize(rng.standard_normal((size, 4)).astype(np.float32), (size, size),
                            interpolation=cv2.INTER_LINEAR)
        img = color[None, None] * (1 + 0.06 * streak[..., None]) + 0.05 * fractal_noise(rng, size, size)[..., None]
        return _to_u8(np.clip(img, 0, 1))
    lum = photo_crop(rng, size, size).astype(np.float32).mean(-1) / 255.0
    t = (lum - lum.mean()) * rng.uniform(0.15, 0.5)
    img = color[None, None] * (1 + t[..., None])
    return _to_u8(_detail(rng, np.clip(img, 0, 1), rng.uniform(0.05, 0.15)))


def realistic_instance_appearance(rng: np.random.Generator, category: str, parts: list[str],
                                  textured: list[bool], textures: bool = True) -> Appearance:
    """Textures (one per part), part colours and material of one instance; `textured[i]` marks the parts
    that show the main (labelled) texture, the others get part textures in palette colours. Colours and
    material are drawn first, so `textures=False` (the textures are cached on disk) gives the same ones
    and empty textures."""
    palette = [random_color(rng), random_color(rng), np.full(3, rng.uniform(0.7, 0.95))]
    metal = np.full(3, rng.uniform(0.55, 0.8))
    material = random_material(rng)
    colors = {part: metal if (category, part) in METAL_PARTS else palette[int(rng.integers(len(palette)))]
              for part in parts}
    if not textures:
        return Appearance(np.zeros((0, 0, 3), np.uint8), colors, {}, material)
    texture = body_texture(rng)
    part_textures = {part: part_texture(rng, colors[part], (category, part) in METAL_PARTS)
                     for part, main in zip(parts, textured, strict=True) if not main}
    return Appearance(texture, colors, part_textures, material)


def realistic_surface_texture(rng: np.random.Generator, kind: str, size: int = 512) -> np.ndarray:
    """(size, size, 3) uint8 texture of the table ("table"), the floor or a wall: wood, a recoloured photo
    tiled a few times, or paint with multi-scale detail; sometimes with printed clutter (labels) on the
    table. Clutter objects ("distractor") get a body texture (photo, bands, labels)."""
    if kind == "distractor":
        return body_texture(rng, size)
    r = rng.uniform()
    if kind == "table" and r < 0.35:
        img = wood_texture(rng, size).astype(np.float32) / 255.0
    elif r < 0.75:
        tiles = int(rng.integers(1, 4))
        tile = recolor(rng, photo_crop(rng, size // tiles + 1, size // tiles + 1, min_frac=0.3), strength=0.5)
        img = np.tile(tile, (tiles, tiles, 1))[:size, :size].astype(np.float32) / 255.0
        if kind != "table":  # walls and floors are muted
            img = 0.5 * img + 0.5 * img.mean((0, 1))
    else:
        img = np.broadcast_to(random_color(rng, sat=(0.0, 0.5), val=(0.3, 0.95)), (size, size, 3)).copy()
    if kind == "table" and rng.uniform() < 0.5:  # sheets of paper, stickers
        for _ in range(int(rng.integers(1, 4))):
            lw, lh = int(rng.uniform(0.06, 0.15) * size), int(rng.uniform(0.06, 0.15) * size)
            x0, y0 = int(rng.integers(0, size - lw)), int(rng.integers(0, size - lh))
            img[y0:y0 + lh, x0:x0 + lw] = printed_label(rng, lh, lw).astype(np.float32) / 255.0
    return _to_u8(_detail(rng, img, rng.uniform(0.04, 0.12)))


# ---------------------------------------------------------------------------------------------- lighting


def light_color(kelvin: float) -> np.ndarray:
    """(3,) RGB of a black body at `kelvin` (approximation by Tanner Helland), max channel 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
    g = 99.47 * math.log(t) - 161.12 if t <= 66 else 288.12 * (t - 60) ** -0.0755
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.52 * math.log(t - 10) - 305.04)
    c = np.clip(np.array([r, g, b]), 1.0, 255.0)
    return c / c.max()


def realistic_lighting_params(rng: np.random.Generator) -> dict:
    """Light direction (towards the light, world frame), colour temperature and intensities of a scene:
    from low warm light to high cool light, bright and dim."""
    az, el = rng.uniform(-math.pi, math.pi), math.radians(rng.uniform(20, 88))
    kelvin = rng.uniform(2700, 7500)
    intensity = rng.uniform(0.6, 1.2)
    ambient = rng.uniform(0.25, 0.6)
    return {"direction": [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)],
            "color": light_color(kelvin).tolist(), "distance": float(rng.uniform(2.0, 5.0)),
            "ambient": float(ambient * intensity), "diffuse": float((1.0 - 0.5 * ambient) * intensity),
            "specular": float(rng.uniform(0.0, 0.25))}
