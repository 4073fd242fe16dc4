"""Losses for dense descriptor learning: DON contrastive / triplet, pixel InfoNCE, dense SimSiam, and a
pyramid wrapper. Every single-level loss is called as `loss(desc_a, desc_b, pairs, stride) -> LossOutput`."""

from __future__ import annotations

import inspect

import torch.nn as nn

from .base import LossOutput
from .contrastive import CONTRASTIVE_MODES, PixelwiseContrastiveLoss
from .dense_nce import DenseInfoNCELoss
from .infonce import PixelInfoNCELoss
from .pyramid import PyramidLoss
from .simsiam import DenseSimSiamLoss, collapse_std

# The loss registry: name -> (class, arguments fixed by the name, arguments that name does not use). A new loss
# is one module plus one line here (docs/extending.md); its constructor's arguments are read from the training
# config's `loss` section by name (train/loop.py build_loss_from_config).
_LOSSES: dict[str, tuple[type[nn.Module], dict[str, object], tuple[str, ...]]] = {
    "contrastive": (PixelwiseContrastiveLoss, {"mode": "hinge"}, ("triplet_margin",)),
    "triplet": (PixelwiseContrastiveLoss, {"mode": "triplet"},
                ("margin", "match_weight", "masked_nonmatch_weight", "background_nonmatch_weight",
                 "scale_by_hard_negatives")),
    "infonce": (PixelInfoNCELoss, {}, ()),
    "dense_infonce": (DenseInfoNCELoss, {}, ()),
    "simsiam": (DenseSimSiamLoss, {}, ()),
}
LOSS_NAMES = tuple(_LOSSES)


def loss_parameters(name: str) -> dict[str, bool]:
    """The constructor arguments loss `name` takes (those the name fixes or does not use left out), each
    with whether it is required (has no default)."""
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    cls, fixed, unused = _LOSSES[name]
    return {p: v.default is inspect.Parameter.empty for p, v in inspect.signature(cls).parameters.items()
            if p not in fixed and p not in unused}


def build_loss(name: str, **kwargs: object) -> nn.Module:
    """Build a single-level loss by name with its explicit hyperparameters.

    "triplet" is PixelwiseContrastiveLoss(mode="triplet"); "simsiam" needs predictor=model.predictor.
    Raises ValueError for an unknown name, an argument that loss does not use, or a missing one.
    """
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    cls, fixed, _ = _LOSSES[name]
    accepted = list(loss_parameters(name))
    bad = sorted(set(kwargs) - set(accepted))
    if bad:
        raise ValueError(f"loss {name!r} does not take {', '.join(bad)}; it takes {', '.join(accepted)}")
    try:
        inspect.signature(cls).bind(**fixed, **kwargs)
    except TypeError as e:  # a required argument is missing, e.g. simsiam's predictor
        raise ValueError(f"loss {name!r}: {e}") from None
    return cls(**fixed, **kwargs)


__all__ = ["LOSS_NAMES", "CONTRASTIVE_MODES", "LossOutput", "PixelwiseContrastiveLoss", "PixelInfoNCELoss",
           "DenseInfoNCELoss", "DenseSimSiamLoss", "PyramidLoss", "build_loss", "loss_parameters",
           "collapse_std"]
