"""Tiny random-init models whose descriptors are O(1) (the default head init makes them ~1e-2, which
would make every absolute tolerance meaningless)."""

from __future__ import annotations

import torch
from torch import nn

from dense_descriptor_ros.models import DescriptorNet, ModelConfig, build_model


def tiny_model(name: str = "lite", normalize: bool = False, seed: int = 0, **kwargs) -> DescriptorNet:
    torch.manual_seed(seed)
    cfg = ModelConfig(name=name, normalize=normalize, decoder_channels=16, width_mult=0.5, **kwargs)
    model = build_model(cfg)
    head = model.head[-1] if isinstance(model.head, nn.Sequential) else model.head
    nn.init.normal_(head.weight, std=1.0)
    nn.init.normal_(head.bias, std=0.1)
    # Non-trivial BatchNorm statistics, so that folding them into the convolutions is exercised.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()
