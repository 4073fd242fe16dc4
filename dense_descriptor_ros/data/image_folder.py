"""Augmentation pairs from a folder of ordinary images (any images; cluttered scenes are fine)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..correspondence.augment import AugmentConfig, TwoViewAugmenter
from ..correspondence.sampling import sample_pairs
from .base import PairItem

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def list_images(root: str | Path) -> list[Path]:
    """Image files under `root` (recursive), sorted for determinism."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_rgb(path: Path, size: tuple[int, int] | None) -> np.ndarray | None:
    """RGB uint8 (H, W, 3), resized to cover `size` (H, W) and centre-cropped; None if unreadable."""
    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if img is None or img.size == 0:
        return None
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if size is None:
        return img
    h, w = size
    s = max(h / img.shape[0], w / img.shape[1])
    nh, nw = max(h, round(img.shape[0] * s)), max(w, round(img.shape[1] * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])


@dataclass
class ImageFolderPairs:
    """Self-supervised pairs: two random augmentations of one image with exact correspondences.

    Images are decoded once at construction (resized to `load_size` to keep memory and time low);
    unreadable or corrupt files are skipped and counted in `skipped` with a warning.

    Args:
        root: folder of images (searched recursively).
        size: (H, W) of the training views.
        load_size: (H, W) the source images are resized to (cover + centre crop); default 1.25 x size.
        n_matches, nonmatches_per_match, background_fraction, min_nonmatch_distance: see sample_pairs.
        augment: the augmentation ranges.
    """

    root: str | Path
    size: tuple[int, int] = (240, 320)
    load_size: tuple[int, int] | None = None
    n_matches: int = 256
    nonmatches_per_match: int = 4
    min_nonmatch_distance: float = 8.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool = False

    def __post_init__(self) -> None:
        files = list_images(self.root)
        load = self.load_size or (round(self.size[0] * 1.25), round(self.size[1] * 1.25))
        self.images: list[np.ndarray] = []
        self.paths: list[Path] = []
        self.skipped: list[Path] = []
        for p in tqdm(files, desc=f"loading {self.root}", disable=not self.progress, unit="img"):
            img = load_rgb(p, load)
            if img is None:
                self.skipped.append(p)
            else:
                self.images.append(img)
                self.paths.append(p)
        if self.skipped:
            log.warning("skipped %d unreadable image(s) in %s (first: %s)", len(self.skipped), self.root,
                        self.skipped[0])
        if not self.images:
            raise ValueError(f"no readable images in {self.root} ({len(self.skipped)} unreadable)")
        self.augmenter = TwoViewAugmenter(self.size, self.augment)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> PairItem:
        index, seed = key
        img = torch.from_numpy(self.images[index]).permute(2, 0, 1).float().div(255.0)[None]
        views = self.augmenter(img, seed)
        gen = torch.Generator().manual_seed(seed)
        pairs = sample_pairs(views.map_ab, views.valid_a, self.size, self.n_matches,
                             self.nonmatches_per_match, gen, min_nonmatch_distance=self.min_nonmatch_distance)
        return PairItem(views.image_a, views.image_b, pairs)
