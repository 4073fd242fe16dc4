"""The sample photographs that installed packages ship (no download): scikit-image's, split into training and
held-out sets, and the real evaluation photos (REAL_HELDOUT). On the ground floor: the simulator reads the training
list from here without importing data/."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

# Loaders that work offline in scikit-image 0.26 (the others need pooch and a download). `cat` is
# the same photo as `chelsea`, so it is left out; greyscale ones are stacked to RGB.
TRAIN_IMAGES = ("astronaut", "brick", "camera", "cell", "coins", "colorwheel", "grass", "hubble_deep_field",
                "immunohistochemistry", "logo", "moon", "page", "retina", "text")
HELDOUT_IMAGES = ("chelsea", "coffee", "rocket", "gravel", "clock")
#: Real photographs for evaluation only (the `real_photo` set): the held-out scikit-image photos and Grace Hopper's
#: portrait that matplotlib ships (US Navy photograph, public domain). None is a training image or a simulator
#: texture.
REAL_HELDOUT = (*HELDOUT_IMAGES, "grace_hopper")
#: Names `resolve_image_dir` turns into folders of these photos.
BUILTIN_FOLDERS = ("samples", "samples_heldout", "real_heldout")


def _load(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            img = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(img)
    from skimage import data  # imported lazily: skimage import costs ~1 s

    img = getattr(data, name)()
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img.astype(np.uint8))


def sample_images_dir() -> Path:
    """Where the sample photos are written (created on first use; $DENSE_DESCRIPTOR_CACHE moves it)."""
    base = Path(os.environ.get("DENSE_DESCRIPTOR_CACHE", Path.home() / ".cache" / "dense_descriptor_ros"))
    return base / "sample_images"


def resolve_image_dir(name: str) -> Path:
    """'samples' / 'samples_heldout' -> scikit-image's training / held-out photos, 'real_heldout' -> the real
    evaluation photos (REAL_HELDOUT); anything else is a folder path."""
    if name in BUILTIN_FOLDERS:
        train, heldout, real = write_sample_images(sample_images_dir())
        return {"samples": train, "samples_heldout": heldout, "real_heldout": real}[name]
    return Path(name)


def write_sample_images(out_dir: str | Path) -> tuple[Path, Path, Path]:
    """Write the images as PNG to out_dir/train, out_dir/heldout and out_dir/real_heldout (idempotent).
    Returns the three folders."""
    out = Path(out_dir)
    folders = []
    for split, names in (("train", TRAIN_IMAGES), ("heldout", HELDOUT_IMAGES), ("real_heldout", REAL_HELDOUT)):
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        for name in names:
            path = d / f"{name}.png"
            if not path.exists():
                cv2.imwrite(str(path), cv2.cvtColor(_load(name), cv2.COLOR_RGB2BGR))
        folders.append(d)
    return folders[0], folders[1], folders[2]
