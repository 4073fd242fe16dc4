"""The pretext-pretraining configuration (`dense-descriptor pretrain`): one typed dataclass tree, loaded from YAML +
command-line overrides like the training configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..models.config import ModelConfig


@dataclass
class PretrainDataConfig:
    # Unlabeled image sources, any mix of: folders of images (recursive; "samples" = the training photos),
    # synthetic datasets (`sim generate` output, their "train" split's RGB renders only) and rosbag2 recordings
    # (a folder with metadata.yaml, or a .mcap / .db3 file: the colour topic's frames). Labels, depth and poses
    # are never read.
    sources: tuple[str, ...] = ("samples",)
    # Held-out sources for the validation accuracy (same kinds; a synthetic dataset gives its "test" split, the
    # scenes of held-out instances). "" entries are ignored; empty = no validation.
    val_sources: tuple[str, ...] = ("samples_heldout",)
    # At most this many images per source (evenly spaced; 0 = all). Images are kept in memory at `pool_side`.
    max_images_per_source: int = 2000
    # Every n-th frame of a bag source.
    bag_frame_step: int = 1
    # Images are resized so that their shorter side is this many pixels before crops are drawn.
    pool_side: int = 160
    # Side of the square crops the encoder sees (candidates and mixtures).
    crop: int = 112
    # Fixed, seeded validation items.
    val_items: int = 256

    def __post_init__(self) -> None:
        if not any(s for s in self.sources):
            raise ValueError("data.sources needs at least one image folder, synthetic dataset or bag")
        if self.crop < 32 or self.pool_side < self.crop:
            raise ValueError(f"need 32 <= crop <= pool_side, got crop {self.crop}, pool_side {self.pool_side}")
        if self.max_images_per_source < 0 or self.bag_frame_step < 1 or self.val_items < 0:
            raise ValueError("max_images_per_source and val_items must be >= 0, bag_frame_step >= 1")


@dataclass
class UnmixConfig:
    # Candidate images per item (the softmax runs over them) and how many of them are blended into the mixture.
    candidates: int = 8
    sources: int = 2
    # Blend weights of the sources: Dirichlet-like, each weight at least this share (so every source shows).
    min_weight: float = 0.25
    # The mixture's copy of a source is a re-framed crop of the same image (shifted by up to this fraction of the
    # crop, scaled by up to 1 +- this) with its own brightness / contrast jitter, so that recognising a source
    # takes more than matching pixels.
    reframe: float = 0.2
    jitter: float = 0.2
    # Embedding: global average pool of the encoder's last map -> MLP (hidden, dim), unit length.
    hidden: int = 256
    dim: int = 128
    # Logits = scale x cosine with a learned scale that starts at 1 (the loss then starts at its chance level,
    # log K) and is capped at 1 / temperature; it learns at scale_lr_mult x the learning rate.
    temperature: float = 0.05
    scale_lr_mult: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.sources < self.candidates:
            raise ValueError(f"need 1 <= sources < candidates, got {self.sources}, {self.candidates}")
        if not 0.0 <= self.min_weight * self.sources <= 1.0:
            raise ValueError(f"min_weight * sources must be in [0, 1], got {self.min_weight} * {self.sources}")
        if not 0 < self.temperature <= 1 or self.hidden < 1 or self.dim < 1 or self.scale_lr_mult < 0:
            raise ValueError("need 0 < temperature <= 1, hidden and dim >= 1, scale_lr_mult >= 0")
        if not 0.0 <= self.reframe < 0.5 or not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"need 0 <= reframe < 0.5 and 0 <= jitter < 1, got {self.reframe}, {self.jitter}")


@dataclass
class PretrainConfig:
    # The network whose encoder is pretrained (models/architectures.py; only the encoder is used and saved).
    # `model.pretrained=true` starts the pretext from the architecture's ImageNet weights.
    model: ModelConfig = field(default_factory=ModelConfig)
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    unmix: UnmixConfig = field(default_factory=UnmixConfig)
    # AdamW, linear warm-up then cosine decay to min_lr_ratio x lr; gradient-norm clipping (0 = off).
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    steps: int = 1000
    # Items (mixture + candidates) per step.
    batch_size: int = 8
    seed: int = 0
    workers: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Run directory (TensorBoard logs, checkpoints, resolved config, encoder.safetensors).
    out_dir: str = "runs/pretrain"
    log_every: int = 10
    ckpt_every: int = 100
    val_every: int = 100

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "ckpt_every", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0 or self.lr <= 0:
            raise ValueError(f"workers must be >= 0 and lr > 0, got {self.workers}, {self.lr}")
