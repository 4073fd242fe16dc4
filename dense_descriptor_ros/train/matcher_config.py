"""Typed configuration of a matcher training run (`dense-descriptor matcher train`), loaded from YAML + command-line
overrides like the descriptor training configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..correspondence.augment import AugmentConfig
from ..matcher.config import MatcherConfig


@dataclass
class MatcherDataConfig:
    # Synthetic RGB-D dataset (`sim generate` output): multi-view pairs of its "train" split, ground truth from
    # depth and camera poses ("" = none).
    synthetic_dir: str = "data/sim_real_i250"
    # Folder of photographs for augmentation pairs (exact homography ground truth; "samples" = the training
    # photos; "" = none).
    image_dir: str = "samples"
    # Share of the augmentation pairs when both sources are given.
    image_fraction: float = 0.3
    # Views of a multi-view pair differ by this many degrees of viewing direction (min, max).
    view_angle_deg: tuple[float, float] = (10.0, 60.0)
    # (H, W) of the training images; the descriptor map must come out with an even height and width.
    image_size: tuple[int, int] = (240, 320)
    # Geometric and photometric augmentation of the photo pairs.
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if not self.synthetic_dir and not self.image_dir:
            raise ValueError("matcher data needs synthetic_dir, image_dir or both")
        if not 0.0 <= self.image_fraction <= 1.0:
            raise ValueError(f"image_fraction must be in [0, 1], got {self.image_fraction}")
        if not 0.0 <= self.view_angle_deg[0] <= self.view_angle_deg[1]:
            raise ValueError(f"view_angle_deg must be a range (min, max), got {self.view_angle_deg}")


@dataclass
class MatcherTrainConfig:
    # The frozen descriptor network (.safetensors / .pt) whose maps the matcher learns on; the matcher file records
    # its model id and the runtime refuses maps of another model.
    descriptor_model: str = "models/default/model.safetensors"
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    data: MatcherDataConfig = field(default_factory=MatcherDataConfig)
    # Loss = coarse NLL of the true cells under the dual-softmax + fine_weight x mean squared error (fine cells)
    # of the refined positions (computed at the true coarse cells, LoFTR's choice).
    fine_weight: float = 1.0
    # + fine_ce_weight x the cross-entropy of the fine window's softmax against the bilinear weights of the true
    # position (a classification signal: the squared error alone trains the fine level slowly).
    fine_ce_weight: float = 1.0
    # AdamW, linear warm-up then cosine decay to min_lr_ratio x lr; gradient-norm clipping (0 = off).
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    scale_lr_mult: float = 100.0
    steps: int = 2000
    batch_size: int = 4
    seed: int = 0
    workers: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Run directory (TensorBoard logs, checkpoints, resolved config, matcher.safetensors).
    out_dir: str = "runs/matcher"
    log_every: int = 10
    ckpt_every: int = 100
    val_every: int = 200
    # Fixed, seeded held-out pairs (synthetic "test" split, photo pairs from image_dir's held-out photos) scored
    # every val_every steps.
    val_pairs: int = 32

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "ckpt_every", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0 or self.lr <= 0 or min(self.fine_weight, self.fine_ce_weight) < 0 or self.val_pairs < 0:
            raise ValueError("workers, fine_weight, fine_ce_weight and val_pairs must be >= 0 and lr > 0")
