"""What every training dataset returns, and how items are batched.

A pair dataset maps a key ``(index, seed)`` to a :class:`PairItem`. Everything random in the item
(augmentation draw, view choice, sampling) comes from `seed`, so an item is a pure function of its key:
resuming a run or splitting it over DDP ranks reproduces exactly the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from ..checks import check_shape
from ..correspondence.pairs import PairSample

#: label of a pixel whose class is unknown (photographs, recordings): ignored by the part loss
UNLABELLED = -1


@dataclass
class PairItem:
    """Two views and their correspondences, and optionally what each pixel shows.

    Shape:
        image_a, image_b: (3, H, W) float32 RGB in [0, 1] (the same H, W within a batch).
        pairs: PairSample with batch size 1.
        labels_a, labels_b: (H, W) int64 part ids of the simulator (dataset.json "parts"; 0 = background),
            UNLABELLED where unknown; None when the source has no labels (or they were not asked for).
        coords_a, coords_b: (4, H, W) float32 canonical (x, y, z, r) targets (`data.canonical`), NaN where
            unknown or hidden by symmetry; None when the source has none (or they were not asked for).
    """

    image_a: torch.Tensor
    image_b: torch.Tensor
    pairs: PairSample
    labels_a: torch.Tensor | None = None
    labels_b: torch.Tensor | None = None
    coords_a: torch.Tensor | None = None
    coords_b: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_shape(self.image_a, (3, "H", "W"), "image_a")
        check_shape(self.image_b, (3, "H", "W"), "image_b")
        for name, lab, img in (("labels_a", self.labels_a, self.image_a), ("labels_b", self.labels_b, self.image_b)):
            if lab is not None:
                check_shape(lab, tuple(img.shape[1:]), name)
        for name, co, img in (("coords_a", self.coords_a, self.image_a), ("coords_b", self.coords_b, self.image_b)):
            if co is not None:
                check_shape(co, (4, *img.shape[1:]), name)


@dataclass
class PairBatch:
    """A collated batch: images (B, 3, H, W), a PairSample of batch size B, (B, H, W) labels or None and
    (B, 4, H, W) canonical targets or None."""

    image_a: torch.Tensor
    image_b: torch.Tensor
    pairs: PairSample
    labels_a: torch.Tensor | None = None
    labels_b: torch.Tensor | None = None
    coords_a: torch.Tensor | None = None
    coords_b: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> PairBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return PairBatch(self.image_a.to(device), self.image_b.to(device), self.pairs.to(device),
                         move(self.labels_a), move(self.labels_b), move(self.coords_a), move(self.coords_b))


def _stack_labels(labels: list[torch.Tensor | None], images: torch.Tensor) -> torch.Tensor | None:
    """(B, H, W) labels, UNLABELLED for items without; None when no item has any."""
    if all(lab is None for lab in labels):
        return None
    return torch.stack([torch.full(images.shape[2:], UNLABELLED, dtype=torch.int64) if lab is None else lab.long()
                        for lab in labels])


def _stack_coords(coords: list[torch.Tensor | None], images: torch.Tensor) -> torch.Tensor | None:
    """(B, 4, H, W) canonical targets, NaN for items without; None when no item has any."""
    if all(c is None for c in coords):
        return None
    return torch.stack([torch.full((4, *images.shape[2:]), float("nan")) if c is None else c.float() for c in coords])


def collate_pairs(items: list[PairItem]) -> PairBatch:
    """Stack PairItems into a PairBatch (DataLoader collate_fn)."""
    image_a, image_b = torch.stack([i.image_a for i in items]), torch.stack([i.image_b for i in items])
    return PairBatch(image_a, image_b, PairSample.collate([i.pairs for i in items]),
                     _stack_labels([i.labels_a for i in items], image_a),
                     _stack_labels([i.labels_b for i in items], image_b),
                     _stack_coords([i.coords_a for i in items], image_a),
                     _stack_coords([i.coords_b for i in items], image_b))


class PairDataset(Protocol):
    """The dataset protocol the trainer consumes."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: tuple[int, int]) -> PairItem: ...
