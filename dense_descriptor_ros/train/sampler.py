"""Which (index, seed) keys every process loads at every step: deterministic and resumable.

The pair order of each epoch comes from torch's DistributedSampler (shuffled with seed + epoch, split
over ranks); each key also carries a seed derived from (run seed, epoch, rank, position), from which
the dataset draws everything random about the pair. Starting at any micro-batch reproduces exactly
what an uninterrupted run would have loaded there.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DistributedSampler

_MIX = 0x9E3779B97F4A7C15  # 64-bit golden-ratio constant for seed mixing


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from several integers (splitmix-style)."""
    h = 0
    for p in parts:
        h = (h ^ (p + _MIX + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class KeyedBatchSampler:
    """Yields micro-batches of (index, seed) keys for one rank, from `start` to `total` micro-batches."""

    def __init__(self, dataset_len: int, batch_size: int, seed: int, start: int, total: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if dataset_len < 1:
            raise ValueError("the training dataset is empty")
        self.n, self.b, self.seed = dataset_len, batch_size, seed
        self.start, self.total = start, total
        self.rank, self.world = rank, world_size
        # drop_last=False pads by repetition, so every rank sees the same number of keys per epoch
        self.per_epoch = max(1, -(-dataset_len // world_size) // batch_size)

    def _epoch_indices(self, epoch: int) -> list[int]:
        s = DistributedSampler(range(self.n), num_replicas=self.world, rank=self.rank, shuffle=True,
                               seed=self.seed, drop_last=False)
        s.set_epoch(epoch)
        idx = list(s)
        while len(idx) < self.b:  # fewer items than one batch: cycle
            idx += idx
        return idx

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, idx = -1, []
        for g in range(self.start, self.total):
            e, pos = divmod(g, self.per_epoch)
            if e != epoch:
                epoch, idx = e, self._epoch_indices(e)
            rows = idx[pos * self.b:(pos + 1) * self.b]
            yield [(i, mix_seed(self.seed, e, self.rank, pos * self.b + j)) for j, i in enumerate(rows)]
