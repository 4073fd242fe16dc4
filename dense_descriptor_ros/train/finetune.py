"""Fine-tuning a (pretrained) encoder: frozen early units, frozen batch-norm statistics, and a slower
learning rate for the encoder than for the fresh decoder and head."""

from __future__ import annotations

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


__all__ = ["freeze_encoder_stages", "set_train_mode", "param_groups"]
