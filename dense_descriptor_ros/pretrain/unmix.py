"""The un-mixing pretext (issue #18): blend a few images into one and let the encoder tell which of a set of
candidate images went into the blend.

An item is K candidate crops, k of which (the sources) are blended with random weights into a mixture; the
mixture's copy of each source is re-framed (shifted, scaled) and photometrically jittered, so that finding it
takes recognising the content, not matching pixels. The network embeds the mixture and every candidate (global
average pool of the encoder's last map, a small MLP, unit length); logits are a learned scale x cosine, one softmax
over the K candidates, and the target spreads its mass evenly over the k sources. Chance: loss log K, accuracy
(share of the sources among the top-k candidates) k / K.

Every item stands alone: its candidates are its own (never another item's), so the loss of one item depends on
no other item's pixels except through batch-norm statistics in training mode (tested with the network in eval
mode: test/test_pretrain.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.config import ModelConfig
from ..models.descriptor_net import build_model
from .config import UnmixConfig
from .sources import ImagePool


@dataclass
class UnmixItem:
    """One pretext item.

    Shape:
        mixture: (3, S, S) float in [0, 1]; candidates: (K, 3, S, S); target: (K,) float, 1/k on the sources, 0
        elsewhere; weights: (K,) the blend weights (0 off the sources).
    """

    mixture: torch.Tensor
    candidates: torch.Tensor
    target: torch.Tensor
    weights: torch.Tensor


@dataclass
class UnmixBatch:
    """Items stacked: mixture (B, 3, S, S), candidates (B, K, 3, S, S), target and weights (B, K)."""

    mixture: torch.Tensor
    candidates: torch.Tensor
    target: torch.Tensor
    weights: torch.Tensor

    def to(self, device: torch.device | str) -> UnmixBatch:
        return UnmixBatch(*(t.to(device) for t in (self.mixture, self.candidates, self.target, self.weights)))


def collate_unmix(items: list[UnmixItem]) -> UnmixBatch:
    return UnmixBatch(torch.stack([i.mixture for i in items]), torch.stack([i.candidates for i in items]),
                      torch.stack([i.target for i in items]), torch.stack([i.weights for i in items]))


def _crop(img: np.ndarray, x: float, y: float, side: float, out: int, flip: bool) -> np.ndarray:
    """The square box (x, y, side) of `img` resampled to (out, out), optionally mirrored; float32 in [0, 1]."""
    s = out / side
    m = np.array([[s, 0.0, -x * s], [0.0, s, -y * s]], np.float32)
    patch = cv2.warpAffine(img, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if flip:
        patch = patch[:, ::-1]
    return patch.astype(np.float32) / 255.0


def draw_item(pool: ImagePool, cfg: UnmixConfig, crop: int, seed: int) -> UnmixItem:
    """The item of `seed` (a pure function of pool, config and seed).

    Candidates come from distinct pool images when the pool has at least K, else (tiny held-out pools) from
    independent positions of images drawn with replacement.
    """
    if len(pool) == 0:
        raise ValueError("the image pool is empty")
    rng = np.random.default_rng(seed)
    k, n = cfg.candidates, cfg.sources
    idx = rng.choice(len(pool), size=k, replace=len(pool) < k)
    cands, mix_views = [], []
    sources = rng.choice(k, size=n, replace=False)
    for j, i in enumerate(idx):
        img = pool.images[int(i)]
        h, w = img.shape[:2]
        side = min(h, w) * rng.uniform(0.6, 1.0)
        x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
        flip = bool(rng.random() < 0.5)
        cands.append(_crop(img, x, y, side, crop, flip))
        if j in sources:
            s2 = side * (1.0 + rng.uniform(-cfg.reframe, cfg.reframe))
            x2 = float(np.clip(x + rng.uniform(-cfg.reframe, cfg.reframe) * side, 0, max(0.0, w - s2)))
            y2 = float(np.clip(y + rng.uniform(-cfg.reframe, cfg.reframe) * side, 0, max(0.0, h - s2)))
            view = _crop(img, x2, y2, s2, crop, flip)
            gain = 1.0 + rng.uniform(-cfg.jitter, cfg.jitter)
            bias = rng.uniform(-cfg.jitter, cfg.jitter) * 0.5
            mix_views.append(np.clip(view * gain + bias, 0.0, 1.0))
    free = 1.0 - n * cfg.min_weight
    wts = cfg.min_weight + free * rng.dirichlet(np.ones(n))
    mixture = sum(float(wt) * v for wt, v in zip(wts, mix_views, strict=True))
    target = torch.zeros(k)
    target[torch.from_numpy(sources)] = 1.0 / n
    weights = torch.zeros(k)
    weights[torch.from_numpy(sources)] = torch.from_numpy(wts).float()
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)  # noqa: E731
    return UnmixItem(to_t(mixture).float(), torch.stack([to_t(c) for c in cands]), target, weights)


class UnmixDataset:
    """Keyed pretext items: (index, seed) -> draw_item(seed); `index` only sets the epoch length (the pool size)."""

    def __init__(self, pool: ImagePool, cfg: UnmixConfig, crop: int) -> None:
        self.pool, self.cfg, self.crop = pool, cfg, crop

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, key: tuple[int, int]) -> UnmixItem:
        return draw_item(self.pool, self.cfg, self.crop, int(key[1]))


class UnmixNet(nn.Module):
    """An architecture's encoder (built and initialised exactly as in DescriptorNet, so its weights drop into a
    descriptor network) with a pooled embedding head for the pretext.

    Shape:
        embed: (N, 3, S, S) float in [0, 1] -> (N, dim) unit vectors.
        forward: mixture (B, 3, S, S), candidates (B, K, 3, S, S) -> logits (B, K).
    """

    def __init__(self, model: ModelConfig, cfg: UnmixConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        net = build_model(model, load_pretrained)
        self.model_config = model
        self.encoder = net.encoder
        self.register_buffer("mean", net.mean.clone(), persistent=False)
        self.register_buffer("std", net.std.clone(), persistent=False)
        c = self.encoder.channels[-1]
        self.head = nn.Sequential(nn.Linear(c, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, cfg.dim))
        # Logits = exp(logit_scale) * cosine, the scale learned (as in CLIP) from 1, where the loss starts at its
        # chance level log K for any encoder ("init well"); it is capped at 1 / cfg.temperature.
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.max_log_scale = math.log(1.0 / cfg.temperature)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (N, 3, H, W), got {tuple(x.shape)}")
        f = self.encoder((x - self.mean) / self.std)[-1]
        return F.normalize(self.head(f.mean(dim=(2, 3))), dim=1)

    def forward(self, mixture: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        b, k = candidates.shape[:2]
        if mixture.shape[0] != b or candidates.shape[2:] != mixture.shape[1:]:
            raise ValueError(f"mixture {tuple(mixture.shape)} and candidates {tuple(candidates.shape)} disagree")
        z = self.embed(torch.cat([mixture, candidates.reshape(b * k, *candidates.shape[2:])]))
        zm, zc = z[:b], z[b:].reshape(b, k, -1)
        return torch.einsum("bd,bkd->bk", zm, zc) * self.scale()


def unmix_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the softmax over candidates against the target distribution; log K at chance.

    Shape: logits, target (B, K) -> scalar."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ")
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


@torch.no_grad()
def unmix_accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Share of the sources among each item's top-k candidates (k = its number of sources); chance k / K."""
    k = int((target[0] > 0).sum())
    top = logits.topk(k, dim=1).indices
    hit = target.gather(1, top) > 0
    return float(hit.float().mean())


def chance_loss(cfg: UnmixConfig) -> float:
    return math.log(cfg.candidates)


def chance_accuracy(cfg: UnmixConfig) -> float:
    return cfg.sources / cfg.candidates


__all__ = ["UnmixItem", "UnmixBatch", "collate_unmix", "draw_item", "UnmixDataset", "UnmixNet", "unmix_loss",
           "unmix_accuracy", "chance_loss", "chance_accuracy"]
