"""Fully convolutional dense descriptor networks.

Every network maps an RGB image in [0, 1] to a D-dimensional descriptor per pixel. Input
normalisation (mean/std) happens inside the network so that every runtime backend (PyTorch,
ONNX Runtime) shares the same preprocessing: divide uint8 by 255.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .architectures import get_architecture
from .config import ModelConfig
from .layers import ConvBNAct, init_weights


def _check_image(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an image batch of shape (B, 3, H, W), got {tuple(x.shape)}")


class FPNDecoder(nn.Module):
    """Top-down feature pyramid (Lin et al. 2017) over encoder maps, finest first.

    Shape:
        feats: maps with `in_channels` channels at strides s_0 < s_1 < ... -> same number of maps with
        `channels` channels at the same strides.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int, smooth: bool = True) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.ModuleList(
            ConvBNAct(channels, channels, 3) if smooth else nn.Identity() for _ in in_channels
        )

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.lateral[-1](feats[-1])
        outs = [self.smooth[-1](x)]
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            x = lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False)
            outs.append(self.smooth[i](x))
        return outs[::-1]


class HypercolumnDecoder(nn.Module):
    """Every encoder map L2-normalised over channels, bilinearly resampled to the finest map's grid and
    concatenated (a hypercolumn, Hariharan et al. 2015). It has no parameters: the descriptor head is a linear
    map of the pretrained features themselves, which `train.finetune.pca_init_head` can start at their
    principal components, so training starts where the untrained features already are.

    Shape:
        feats: maps finest first -> one map with sum(channels) channels on the finest grid.
    """

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        size = feats[0].shape[-2:]
        cols = [F.normalize(f, dim=1) if f.shape[-2:] == size else
                F.interpolate(F.normalize(f, dim=1), size=size, mode="bilinear", align_corners=False)
                for f in feats]
        return [torch.cat(cols, 1)]


class Predictor(nn.Module):
    """SimSiam predictor MLP (Chen & He 2021) applied to sampled descriptors.

    Shape:
        (N, D) -> (N, D)
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DescriptorNet(nn.Module):
    """Encoder + (optional FPN) decoder + 1x1 descriptor head.

    Attributes:
        config: the ModelConfig it was built from.
        stride: stride of the descriptor map before upsampling.
        predictor: the SimSiam predictor, or None.

    Shape:
        forward: (B, 3, H, W) float in [0, 1] -> (B, D, H, W) if config.upsample else
        (B, D, ceil(H / stride), ceil(W / stride)).
        forward_pyramid: -> list of (descriptors (B, D, h_l, w_l), stride_l), finest first.
    """

    def __init__(self, config: ModelConfig, load_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        d = config.descriptor_dim
        arch = get_architecture(config.name)
        self.encoder: nn.Module = arch.encoder(config)
        if arch.decoder == "none":
            self.decoder: nn.Module | None = None
            self.levels = 1
            head_in = self.encoder.channels[-1]
            self.level_strides = (self.encoder.strides[-1],)
        elif arch.decoder == "hypercolumn":
            self.decoder = HypercolumnDecoder()
            self.levels = 1
            head_in = sum(self.encoder.channels)
            self.level_strides = (self.encoder.strides[0],)
        else:
            # fpn_slim: no 3x3 smoothing on the pyramid; the depthwise head does it once, at the finest level
            self.decoder = FPNDecoder(self.encoder.channels, config.decoder_channels, smooth=arch.decoder == "fpn")
            self.levels = len(self.encoder.channels)
            head_in = config.decoder_channels
            self.level_strides = tuple(self.encoder.strides)
        if arch.head == "depthwise":
            self.head: nn.Module = nn.Sequential(
                ConvBNAct(head_in, head_in, 3, groups=head_in), nn.Conv2d(head_in, d, 1))
        else:
            self.head = nn.Conv2d(head_in, d, 1)
        self.stride = self.level_strides[0]
        self.predictor = Predictor(d, config.predictor_hidden) if config.predictor_hidden > 0 else None
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        init_weights(self)
        # A small last layer starts every loss at its uniform value (e.g. InfoNCE = log N) and keeps the
        # first steps from being dominated by the random projection ("init well", Karpathy's recipe).
        last = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)
        if config.pretrained and load_pretrained:
            arch.pretrained(self.encoder)

    @property
    def descriptor_dim(self) -> int:
        return self.config.descriptor_dim

    def _levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_image(x)
        feats = self.encoder((x - self.mean) / self.std)
        if self.decoder is None:
            return [feats[-1]]
        return self.decoder(feats)

    def _describe(self, f: torch.Tensor) -> torch.Tensor:
        d = self.head(f)
        return F.normalize(d, dim=1) if self.config.normalize else d

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        """Descriptors at the network's own `stride` (what training samples from, bilinearly)."""
        return self._describe(self._levels(x)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.forward_native(x)
        if self.config.upsample:
            d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
            if self.config.normalize:
                d = F.normalize(d, dim=1)
        return d

    def forward_pyramid(self, x: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
        """Descriptor maps of every pyramid level, through the shared head (for the pyramidal loss)."""
        return [(self._describe(f), s) for f, s in zip(self._levels(x), self.level_strides, strict=True)]


def build_model(config: ModelConfig, load_pretrained: bool = True) -> DescriptorNet:
    """Build a network from its config (the only constructor the rest of the package uses).

    `load_pretrained=False` skips reading the architecture's pretrained weights even when `config.pretrained`
    is set: for networks whose weights are about to be replaced (a model file, a checkpoint, `init_from`)."""
    return DescriptorNet(config, load_pretrained)
