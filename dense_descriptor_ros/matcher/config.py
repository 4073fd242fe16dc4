"""Typed configuration of the learned matcher's network (its training run: train/matcher_config.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MatcherConfig:
    # Descriptor dimension D of the descriptor network whose maps the matcher reads (set from the model file).
    descriptor_dim: int = 64
    # Width of the coarse features and the attention layers.
    d_model: int = 64
    # Pairs of (self, cross) linear-attention layers at the coarse level.
    layers: int = 4
    # Attention heads.
    heads: int = 4
    # Channels of the fine features the refinement correlates.
    fine_dim: int = 32
    # 3x3 convolutions (each after a ReLU) that turn descriptors, coarse context and image features into fine features.
    fine_layers: int = 1
    # Start from the descriptors: both levels' features = an orthogonal projection of the descriptors + learned terms
    # whose last layer starts at zero (false: LoFTR's start, everything learned from scratch; docs/matcher.md).
    residual_start: bool = True
    # Channels of the small CNN on the image whose features join the fine level (0 = descriptors only), and the
    # image pixels per fine cell (the descriptor model's native stride; a power of two).
    image_channels: int = 32
    image_stride: int = 4
    # Coarse logits = scale x cosine: the scale starts at 1 (the loss then starts at log(Na) + log(Nb)), learns at
    # scale_lr_mult x the learning rate and is capped here; the fine window's starts at fine_init_scale.
    max_scale: float = 50.0
    fine_init_scale: float = 10.0

    def __post_init__(self) -> None:
        if min(self.descriptor_dim, self.fine_dim, self.fine_layers) < 1 or self.layers < 0 or self.image_channels < 0:
            raise ValueError("descriptor_dim, fine_dim and fine_layers must be >= 1, layers and image_channels >= 0")
        if self.image_stride < 2 or self.image_stride & (self.image_stride - 1):
            raise ValueError(f"image_stride must be a power of two >= 2, got {self.image_stride}")
        if self.d_model % 4 or self.heads < 1 or self.d_model % self.heads:
            raise ValueError(f"d_model must be a multiple of 4 and of heads, got {self.d_model}, {self.heads}")
        if not 1.0 <= self.max_scale or not 0 < self.fine_init_scale <= self.max_scale:
            raise ValueError("need max_scale >= 1 and 0 < fine_init_scale <= max_scale")
