"""Training and evaluation pairs for the matcher: two images and, for the centre of every coarse cell of A, where it
lies in B (exact ground truth, LoFTR's supervision).

* `SyntheticMatchPairs`: two views of a synthetic scene a given range of viewing angles apart; the ground truth
  from depth and camera poses (`data.synthetic.resized_correspondences`: occlusion-tested, no blends across depth
  edges; the object instance must agree at both ends). Table and background pixels with depth count too.
* `PhotoMatchPairs`: two augmentations of a photograph (`correspondence.augment.TwoViewAugmenter`); the ground
  truth from the exact homographies.

Items are pure functions of their key (index, seed), like every training dataset here (`data.base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checks import check_shape
from ..correspondence.augment import AugmentConfig, TwoViewAugmenter, apply_homography, in_bounds
from ..geometry.reprojection import SYNTHETIC_ABS_TOL
from .image_folder import ImageFolderPairs
from .synthetic import SyntheticDataset, SyntheticPairDataset, _resize, resized_correspondences


def cell_centres(size: tuple[int, int], coarse_stride: int) -> torch.Tensor:
    """Pixel (x, y) of the centres of the coarse cells of an image of `size` (H, W), row-major: cell (r, c) is
    centred on ((c + 0.5) S - 0.5, (r + 0.5) S - 0.5) (the package's pixel convention).

    Shape:
        -> (hc * wc, 2) float64 with hc = H // S, wc = W // S (cells that do not fit whole are left out).
    """
    h, w = size
    s = coarse_stride
    r, c = torch.meshgrid(torch.arange(h // s, dtype=torch.float64), torch.arange(w // s, dtype=torch.float64),
                          indexing="ij")
    return torch.stack([(c + 0.5) * s - 0.5, (r + 0.5) * s - 0.5], -1).reshape(-1, 2)


@dataclass
class MatchItem:
    """Two images and the ground truth of A's coarse cell centres.

    Shape:
        image_a, image_b: (3, H, W) float32 RGB in [0, 1].
        target_b: (N, 2) float32 pixel (x, y) in B of A's N = (H // S) * (W // S) cell centres (`cell_centres`),
            NaN where there is none (occluded, outside B, no depth).
    """

    image_a: torch.Tensor
    image_b: torch.Tensor
    target_b: torch.Tensor

    def __post_init__(self) -> None:
        check_shape(self.image_a, (3, "H", "W"), "image_a")
        check_shape(self.image_b, (3, "H", "W"), "image_b")
        check_shape(self.target_b, ("N", 2), "target_b")


@dataclass
class MatchBatch:
    """Collated MatchItems: images (B, 3, H, W), target_b (B, N, 2)."""

    image_a: torch.Tensor
    image_b: torch.Tensor
    target_b: torch.Tensor

    def to(self, device: torch.device | str) -> MatchBatch:
        return MatchBatch(self.image_a.to(device), self.image_b.to(device), self.target_b.to(device))


def collate_matches(items: list[MatchItem]) -> MatchBatch:
    return MatchBatch(torch.stack([i.image_a for i in items]), torch.stack([i.image_b for i in items]),
                      torch.stack([i.target_b for i in items]))


class SyntheticMatchPairs:
    """Multi-view pairs of a synthetic dataset's split with the exact ground truth of A's coarse cell centres.

    Args:
        root, split: the dataset and its scene split ("train", or "test" for held-out instances' scenes).
        size: (H, W) of the returned images. coarse_stride: pixels per coarse cell (2 x the descriptor stride).
        view_angle_deg: (min, max) degrees between the views' optical axes (any other view if none qualifies).
    """

    def __init__(self, root: str | Path, split: str = "train", size: tuple[int, int] = (240, 320),
                 coarse_stride: int = 8, view_angle_deg: tuple[float, float] = (10.0, 60.0),
                 abs_tol: float = SYNTHETIC_ABS_TOL) -> None:
        # the pair dataset's view choice (a pure function of the generator), not its sampling
        self.views = SyntheticPairDataset(root, split, min_view_angle_deg=view_angle_deg[0],
                                          max_view_angle_deg=view_angle_deg[1])
        self.data: SyntheticDataset = self.views.data
        self.size, self.coarse_stride, self.abs_tol = tuple(size), coarse_stride, abs_tol
        self.centres = cell_centres(self.size, coarse_stride)

    def __len__(self) -> int:
        return len(self.data)

    def pair(self, index: int, seed: int) -> tuple[str, int, int]:
        """(scene, view A, view B) of the item (index, seed)."""
        scene = self.data.scenes[index % len(self.data)]
        return (scene, *self.views.pick_views(scene, torch.Generator().manual_seed(int(seed))))

    def ground_truth(self, scene: str, ia: int, ib: int, points_a: torch.Tensor) -> torch.Tensor:
        """B pixel (x, y) of A pixels at this item's size, NaN where there is none.

        Shape:
            points_a: (N, 2) -> (N, 2) float32.
        """
        va, vb = (self.data.arrays(scene, i, ("depth", "instance")) for i in (ia, ib))
        (K_a, T_a), (K_b, T_b) = self.data.camera(scene, ia), self.data.camera(scene, ib)
        uv_b, valid = resized_correspondences(va["depth"], K_a, T_a, vb["depth"], K_b, T_b, self.size, self.abs_tol,
                                              points=points_a)
        inst_a = torch.from_numpy(_resize(va["instance"].numpy(), self.size, nearest=True))
        inst_b = torch.from_numpy(_resize(vb["instance"].numpy(), self.size, nearest=True))
        h, w = self.size
        ia_px = points_a.round().long()
        ib_px = uv_b.round().long()
        same = (inst_a[ia_px[:, 1].clamp(0, h - 1), ia_px[:, 0].clamp(0, w - 1)]
                == inst_b[ib_px[:, 1].clamp(0, h - 1), ib_px[:, 0].clamp(0, w - 1)])
        valid &= same
        return torch.where(valid[:, None], uv_b, torch.full_like(uv_b, float("nan"))).float()

    def images(self, scene: str, ia: int, ib: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = []
        for i in (ia, ib):
            rgb = _resize(self.data.arrays(scene, i, ("rgb",))["rgb"].numpy(), self.size)
            out.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0)
        return out[0], out[1]

    def __getitem__(self, key: tuple[int, int]) -> MatchItem:
        scene, ia, ib = self.pair(*key)
        img_a, img_b = self.images(scene, ia, ib)
        return MatchItem(img_a, img_b, self.ground_truth(scene, ia, ib, self.centres))


class PhotoMatchPairs:
    """Two augmentations of a photograph with the exact ground truth of A's coarse cell centres.

    Args:
        root: folder of images (or "samples" / "samples_heldout" resolved by the caller).
        size, coarse_stride: as SyntheticMatchPairs. augment: the augmentation ranges.
    """

    def __init__(self, root: str | Path, size: tuple[int, int] = (240, 320), coarse_stride: int = 8,
                 augment: AugmentConfig | None = None, progress: bool = False) -> None:
        # the folder loader (decoding, resizing, unreadable files) of the descriptor training's photo pairs
        self.photos = ImageFolderPairs(root, size=tuple(size), augment=augment or AugmentConfig(), progress=progress)
        self.augmenter: TwoViewAugmenter = self.photos.augmenter
        self.size = tuple(size)
        self.centres = cell_centres(self.size, coarse_stride)

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, key: tuple[int, int]) -> MatchItem:
        index, seed = key
        img = torch.from_numpy(self.photos.images[index % len(self.photos)]).permute(2, 0, 1).float().div(255.0)
        views = self.augmenter(img[None], seed)
        h, w = self.size
        uv_b = apply_homography(views.matrix_b.double() @ torch.linalg.inv(views.matrix_a.double()), self.centres)
        px = self.centres.round().long()
        valid = views.valid_a[px[:, 1].clamp(0, h - 1), px[:, 0].clamp(0, w - 1)] & in_bounds(uv_b, self.size)
        valid &= torch.isfinite(uv_b).all(-1)
        target = torch.where(valid[:, None], uv_b, torch.full_like(uv_b, float("nan"))).float()
        return MatchItem(views.image_a, views.image_b, target)


__all__ = ["MatchItem", "MatchBatch", "collate_matches", "cell_centres", "SyntheticMatchPairs", "PhotoMatchPairs"]
