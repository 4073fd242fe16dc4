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


@dataclass
class PairItem:
    """Two views and their correspondences.

    Shape:
        image_a, image_b: (3, H, W) float32 RGB in [0, 1] (the same H, W within a batch).
        pairs: PairSample with batch size 1.
    """

    image_a: torch.Tensor
    image_b: torch.Tensor
    pairs: PairSample

    def __post_init__(self) -> None:
        check_shape(self.image_a, (3, "H", "W"), "image_a")
        check_shape(self.image_b, (3, "H", "W"), "image_b")


@dataclass
class PairBatch:
    """A collated batch: images (B, 3, H, W) and a PairSample of batch size B."""

    image_a: torch.Tensor
    image_b: torch.Tensor
    pairs: PairSample

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.image_a.to(device), self.image_b.to(device), self.pairs.to(device))


def collate_pairs(items: list[PairItem]) -> PairBatch:
    """Stack PairItems into a PairBatch (DataLoader collate_fn)."""
    return PairBatch(torch.stack([i.image_a for i in items]), torch.stack([i.image_b for i in items]),
                     PairSample.collate([i.pairs for i in items]))


class PairDataset(Protocol):
    """The dataset protocol the trainer consumes."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: tuple[int, int]) -> PairItem: ...
