"""Fine-tuning a (pretrained) encoder: frozen early units, frozen batch-norm statistics, and a slower
learning rate for the encoder than for the fresh decoder and head."""

from __future__ import annotations

import torch
from torch import nn

from ..models import DescriptorNet
from .config import FinetuneConfig


def freeze_encoder_stages(net: DescriptorNet, n: int) -> int:
    """Stop gradients into the first `n` units of the encoder (its `stage_modules()`); returns the number of
    parameters frozen.

    Raises:
        ValueError: `n` exceeds the encoder's units.
    """
    if n == 0:
        return 0
    units = net.encoder.stage_modules()
    if n > len(units):
        raise ValueError(f"finetune.freeze_stages={n}, but the {net.config.name} encoder has {len(units)} units")
    frozen = 0
    for unit in units[:n]:
        for p in unit.parameters():
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def set_train_mode(net: DescriptorNet, freeze_bn: bool) -> None:
    """net.train(), with the encoder's BatchNorm layers kept in eval mode (fixed statistics) if `freeze_bn`."""
    net.train()
    if freeze_bn:
        for m in net.encoder.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def param_groups(net: DescriptorNet, cfg: FinetuneConfig) -> list[dict]:
    """Optimiser parameter groups of the trainable parameters: the encoder's with `lr_mult` =
    cfg.encoder_lr_mult, everything else with 1.0 (the loop multiplies the scheduled rate by it). With a
    multiplier of 1 it is one group in `net.parameters()` order, as before fine-tuning options existed, so older
    checkpoints resume."""
    if cfg.encoder_lr_mult == 1.0:
        return [{"params": [p for p in net.parameters() if p.requires_grad], "lr_mult": 1.0}]
    enc = {id(p) for p in net.encoder.parameters()}
    encoder = [p for p in net.parameters() if p.requires_grad and id(p) in enc]
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in enc]
    groups = [{"params": rest, "lr_mult": 1.0}]
    if encoder and cfg.encoder_lr_mult > 0:
        groups.append({"params": encoder, "lr_mult": cfg.encoder_lr_mult})
    elif encoder:  # a multiplier of 0 freezes the encoder outright: no optimiser state, no weight decay drift
        for p in encoder:
            p.requires_grad_(False)
    return groups


@torch.no_grad()
def pca_init_head(net: DescriptorNet, images: torch.Tensor, samples: int = 50_000, seed: int = 0) -> float:
    """Set the 1x1 descriptor head to the top-D principal components of the decoder's features on `images`
    (bias: minus the projected mean), so the network starts as the PCA of its pretrained features instead of a
    random projection. Returns the fraction of the feature variance the D components keep.

    Shape:
        images: (N, 3, H, W) float RGB in [0, 1].

    Raises:
        ValueError: the head is not a single 1x1 convolution, or D exceeds the feature channels.
    """
    head = net.head
    if not isinstance(head, nn.Conv2d) or head.kernel_size != (1, 1):
        raise ValueError(f"finetune.pca_head_images needs a 1x1 conv head; {net.config.name} has {type(head).__name__}")
    was_training = net.training
    net.eval()
    feats = net._levels(images.to(head.weight.device))[0]
    net.train(was_training)
    c, d = feats.shape[1], head.out_channels
    if d > c:
        raise ValueError(f"descriptor_dim {d} exceeds the {c} feature channels: PCA cannot initialise the head")
    x = feats.permute(0, 2, 3, 1).reshape(-1, c).double()
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = x[torch.randperm(x.shape[0], generator=g)[:samples].to(x.device)]
    mean = x.mean(0)
    _, sv, vh = torch.linalg.svd(x - mean, full_matrices=False)
    w = vh[:d]
    head.weight.copy_(w.to(head.weight)[:, :, None, None])
    head.bias.copy_(-(w @ mean).to(head.bias))
    var = sv.square()
    return float(var[:d].sum() / var.sum())


__all__ = ["freeze_encoder_stages", "set_train_mode", "param_groups", "pca_init_head"]
