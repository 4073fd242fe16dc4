"""The sample photographs scikit-image ships (no download), split into training and held-out sets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Loaders that work offline in scikit-image 0.26 (the others need pooch and a download). `cat` is
# the same photo as `chelsea`, so it is left out; greyscale ones are stacked to RGB.
TRAIN_IMAGES = ("astronaut", "brick", "camera", "cell", "coins", "colorwheel", "grass", "hubble_deep_field",
                "immunohistochemistry", "logo", "moon", "page", "retina", "text")
HELDOUT_IMAGES = ("chelsea", "coffee", "rocket", "gravel", "clock")


def _load(name: str) -> np.ndarray:
    from skimage import data  # imported lazily: skimage import costs ~1 s

    img = getattr(data, name)()
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img.astype(np.uint8))


def write_sample_images(out_dir: str | Path) -> tuple[Path, Path]:
    """Write the images as PNG to out_dir/train and out_dir/heldout (idempotent). Returns both folders."""
    out = Path(out_dir)
    folders = []
    for split, names in (("train", TRAIN_IMAGES), ("heldout", HELDOUT_IMAGES)):
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = d / f"{name}.png"
            if not path.exists():
                cv2.imwrite(str(path), cv2.cvtColor(_load(name), cv2.COLOR_RGB2BGR))
        folders.append(d)
    return folders[0], folders[1]
