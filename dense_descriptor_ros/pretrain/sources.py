"""Unlabeled images for the pretext, from any mix of image folders, synthetic datasets and rosbag2 recordings.

Only pixels are read: no labels, depth or poses. Every image is resized once so that its shorter side is
`pool_side` and kept in memory as uint8 (a 160 x 213 image is 100 kB; 2000 of them 200 MB).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

BAG_SUFFIXES = (".mcap", ".db3")


@dataclass
class ImagePool:
    """Images in memory, each (h, w, 3) uint8 with min(h, w) == side; `origin[i]` names the source of image i."""

    images: list[np.ndarray]
    origin: list[str]
    side: int

    def __len__(self) -> int:
        return len(self.images)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.origin:
            out[o] = out.get(o, 0) + 1
        return out


def source_kind(source: str) -> str:
    """"synthetic" (a folder with dataset.json), "bag" (a folder with metadata.yaml, or a .mcap / .db3 file) or
    "images" (anything else: a folder of images, or one of the built-in photo folders)."""
    p = Path(source)
    if p.is_file() and p.suffix in BAG_SUFFIXES:
        return "bag"
    if p.is_dir() and (p / "dataset.json").is_file():
        return "synthetic"
    if p.is_dir() and (p / "metadata.yaml").is_file():
        return "bag"
    return "images"


def resize_shorter(img: np.ndarray, side: int) -> np.ndarray:
    """`img` scaled so that its shorter side is `side` (area interpolation when shrinking)."""
    h, w = img.shape[:2]
    s = side / min(h, w)
    if s == 1.0:
        return np.ascontiguousarray(img)
    size = (max(side, round(w * s)), max(side, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _spaced(n: int, limit: int) -> list[int]:
    if limit <= 0 or n <= limit:
        return list(range(n))
    return sorted({int(i) for i in np.linspace(0, n - 1, limit)})


def _folder(source: str, limit: int) -> Iterator[np.ndarray]:
    from ..data.image_folder import list_images, load_rgb
    from ..data.sample_images import resolve_image_dir

    files = list_images(resolve_image_dir(source))
    if not files:
        raise FileNotFoundError(f"no images in {source}")
    for i in _spaced(len(files), limit):
        img = load_rgb(files[i], None)
        if img is None:
            log.warning("skipped unreadable image %s", files[i])
            continue
        yield img


def _synthetic(source: str, split: str, limit: int) -> Iterator[np.ndarray]:
    from ..sim.dataset import SyntheticDataset

    ds = SyntheticDataset(source, split)
    views = [(s, v) for s in ds.scenes for v in range(ds.num_views(s))]
    if not views:
        raise FileNotFoundError(f"{source}: no complete scene in split {split!r}")
    for i in _spaced(len(views), limit):
        scene, v = views[i]
        yield ds.arrays(scene, v, ("rgb",))["rgb"].numpy()


def _bag(source: str, frame_step: int, limit: int) -> Iterator[np.ndarray]:
    from ..bag.dataset import load_bag_frames

    frames = load_bag_frames(source, depth_topic="none", info_topic="none", pose_topic="none",
                             frame_step=frame_step)
    for i in _spaced(len(frames), limit):
        yield frames.rgb[i]


def load_pool(sources: tuple[str, ...] | list[str], side: int, max_per_source: int = 0, bag_frame_step: int = 1,
              split: str = "train", progress: bool = False) -> ImagePool:
    """Every source's images at shorter side `side`.

    Args:
        sources: image folders, synthetic datasets or bags (see source_kind); "" entries are skipped.
        split: the synthetic datasets' split ("train" for training, "test" for held-out instances).

    Raises:
        FileNotFoundError: a source is missing or holds no image.
    """
    pool = ImagePool([], [], side)
    for source in (s for s in sources if s):
        kind = source_kind(source)
        if kind == "synthetic":
            it = _synthetic(source, split, max_per_source)
        elif kind == "bag":
            it = _bag(source, bag_frame_step, max_per_source)
        else:
            it = _folder(source, max_per_source)
        n0 = len(pool)
        for img in tqdm(it, desc=f"load {Path(source).name or source}", unit="img", disable=not progress,
                        leave=False):
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f"{source}: expected RGB images, got shape {img.shape}")
            pool.images.append(resize_shorter(img, side))
            pool.origin.append(source)
        log.info("%s (%s): %d images", source, kind, len(pool) - n0)
    return pool


__all__ = ["ImagePool", "source_kind", "resize_shorter", "load_pool", "BAG_SUFFIXES"]
