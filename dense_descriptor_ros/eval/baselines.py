"""Hand-made dense descriptors the learned ones are compared with: dense RootSIFT and raw colour.

Dense RootSIFT is kornia's `SIFTDescriptor(patch_size, rootsift=True)` evaluated on the patch around
every cell of a strided grid. Instead of unfolding thousands of overlapping patches (about 2 s per
320x240 image at stride 4), it uses the fact that the descriptor is linear in the orientation
histograms up to its normalisation: each of the 4 x 4 spatial bins is a fixed weighting of the patch
(kornia's Gaussian window times its triangular pooling kernel), so one strided convolution of the
image's 8 orientation maps with those 16 kernels gives every patch's unnormalised descriptor at once.
The kernels are read off the kornia module itself, and the result equals kornia's on patches wherever
the patch sees the same image gradients (`test/eval/test_baselines.py`); at patch borders it uses the
image's true gradient where kornia, seeing only the patch, pads.
"""

from __future__ import annotations

import math

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_shape
from ..models.descriptor_net import HypercolumnDecoder

#: ImageNet statistics, as the networks normalise their input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_image(image: torch.Tensor) -> None:
    check_shape(image, ("B", 3, "H", "W"), "image")


def orientation_histograms(gray: torch.Tensor, num_ang_bins: int = 8, eps: float = 1e-10) -> torch.Tensor:
    """Per-pixel gradient magnitude split linearly between the two nearest of `num_ang_bins` orientation
    bins, exactly as kornia's SIFTDescriptor bins a patch (central differences, magnitude sqrt(g^2 + eps),
    bin 0 centred on +x).

    Shape:
        gray: (B, 1, H, W) -> (B, num_ang_bins, H, W).
    """
    check_shape(gray, ("B", 1, "H", "W"), "gray")
    g = kornia.filters.spatial_gradient(gray, "diff")
    gx, gy = g[:, :, 0], g[:, :, 1]
    sq = gx * gx + gy * gy
    nonzero = sq > 0
    mag = torch.where(nonzero, torch.sqrt(sq + eps), torch.zeros_like(sq))
    ori = torch.where(nonzero, torch.atan2(gy, gx + eps) + 2.0 * math.pi, torch.full_like(sq, 2.0 * math.pi))
    o = num_ang_bins * ori / (2.0 * math.pi)
    bo0 = torch.floor(o)
    w1 = o - bo0
    b0 = (bo0 % num_ang_bins).long()
    b1 = (b0 + 1) % num_ang_bins
    hist = gray.new_zeros(gray.shape[0], num_ang_bins, *gray.shape[-2:])
    hist.scatter_add_(1, b0, (1.0 - w1) * mag)
    hist.scatter_add_(1, b1, w1 * mag)
    return hist


class DenseRootSIFT(nn.Module):
    """RootSIFT (Arandjelovic & Zisserman 2012) of the patch centred on every cell of a strided grid.

    Cell (j, i) is centred on input pixel ((j + 0.5) * stride - 0.5, (i + 0.5) * stride - 0.5), the
    package's map convention, so the patch size is made of the stride's parity (32 -> 33 at an odd
    stride). The image is reflect-padded so border cells see a mirrored patch.

    Shape:
        (B, 3, H, W) float RGB in [0, 1] -> (B, 128, ceil(H / stride), ceil(W / stride)), unit L2 norm
        (kornia's angle-major layout).
    """

    def __init__(self, stride: int = 4, patch_size: int = 32, num_ang_bins: int = 8,
                 num_spatial_bins: int = 4, clipval: float = 0.2) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if (patch_size - stride) % 2:
            patch_size += 1
        if patch_size < stride:
            raise ValueError(f"patch_size ({patch_size}) must be >= stride ({stride})")
        self.stride, self.patch_size = stride, patch_size
        self.num_ang_bins, self.clipval = num_ang_bins, clipval
        sift = kornia.feature.SIFTDescriptor(patch_size, num_ang_bins, num_spatial_bins, rootsift=True,
                                             clipval=clipval)
        # The spatial bins as linear functionals of a patch's (weighted) orientation map: push every
        # one-hot patch through kornia's Gaussian window and pooling convolution.
        p = patch_size
        with torch.no_grad():
            eye = torch.eye(p * p).reshape(p * p, 1, p, p) * sift.gk.reshape(1, 1, p, p)
            pooled = sift.pk(eye)  # (p*p, 1, nb, nb)
        nb = num_spatial_bins
        k = pooled.reshape(p * p, nb * nb).T.reshape(nb, nb, p, p).double()  # (by, bx, y, x)
        # Window and pooling kernel are both products of a row and a column profile, so every bin's
        # kernel is a[by] (column) x c[bx] (row): two 1-D convolutions instead of one 2-D (16x fewer MACs).
        u, sv, vh = torch.linalg.svd(k[0, 0])
        a0, c0 = u[:, 0] * sv[0], vh[0]
        rows = torch.einsum("bxyz,y->bxz", k[:1], a0)[0] / a0.square().sum()  # c[bx]: (nb, p)
        cols = torch.einsum("byxz,z->byx", k[:, :1], c0)[:, 0] / c0.square().sum()  # a[by]: (nb, p)
        if (torch.einsum("ay,bx->abyx", cols, rows) - k).abs().max() > 1e-6 * k.abs().max():
            raise RuntimeError("kornia's SIFT bin kernels are not separable any more: update DenseRootSIFT")
        self.num_spatial_bins = nb
        self.register_buffer("col_kernels", cols.float().reshape(nb, 1, p, 1).contiguous(), persistent=False)
        self.register_buffer("row_kernels", rows.float().reshape(nb, 1, 1, p).contiguous(), persistent=False)

    @property
    def descriptor_dim(self) -> int:
        return self.num_ang_bins * self.num_spatial_bins**2

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        b, _, h, w = image.shape
        s, p = self.stride, self.patch_size
        hc, wc = -(-h // s), -(-w // s)
        left = (p - s) // 2  # patch of cell 0 starts at (s - p) / 2
        right_w = (wc - 1) * s + p - left - w
        right_h = (hc - 1) * s + p - left - h
        gray = kornia.color.rgb_to_grayscale(image.float())
        # reflect padding needs pad < size; replicate beyond that (tiny images only)
        mode = "reflect" if max(left, right_w, right_h) < min(h, w) else "replicate"
        gray = F.pad(gray, (left, right_w, left, right_h), mode=mode)
        hist = orientation_histograms(gray, self.num_ang_bins)  # (B, A, H', W')
        nb, na = self.num_spatial_bins, self.num_ang_bins
        x = F.conv2d(hist.reshape(b * na, 1, *hist.shape[-2:]), self.col_kernels.to(hist), stride=(s, 1))
        x = F.conv2d(x.reshape(b * na * nb, 1, hc, -1), self.row_kernels.to(hist), stride=(1, s))
        x = x.reshape(b, na * nb * nb, hc, wc)  # (angle, bin row, bin column): kornia's angle-major layout
        x = F.normalize(x, dim=1, eps=1e-12).clamp(0.0, self.clipval)
        x = F.normalize(x, dim=1, eps=1e-12)
        return torch.sqrt(F.normalize(x, p=1, dim=1, eps=1e-12) + 1e-10)


def _rotated_patches(gray: torch.Tensor, centres: torch.Tensor, angle: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Square patches of `gray` around `centres`, turned by `angle` (radians, array coordinates x right, y
    down: the patch's x axis points along (cos a, sin a)), bilinear, mirrored beyond the border.

    Shape:
        gray (1, 1, H, W), centres (N, 2) pixel (x, y), angle (N,) -> (N, 1, patch_size, patch_size).
    """
    _, _, h, w = gray.shape
    u = torch.arange(patch_size, device=gray.device, dtype=gray.dtype) - (patch_size - 1) / 2
    vv, uu = torch.meshgrid(u, u, indexing="ij")
    c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    x = centres[:, 0, None, None] + c * uu - s * vv
    y = centres[:, 1, None, None] + s * uu + c * vv
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], -1)  # (N, P, P, 2)
    n = centres.shape[0]
    out = F.grid_sample(gray.expand(1, 1, h, w), grid.reshape(1, n * patch_size, patch_size, 2), mode="bilinear",
                        padding_mode="reflection", align_corners=False)
    return out.reshape(1, n, patch_size, patch_size).permute(1, 0, 2, 3)


class OrientedDenseRootSIFT(nn.Module):
    """RootSIFT with SIFT's rotation normalisation on every cell of a strided grid: the rotation-invariant anchor
    of the rotation evaluation (issue #16).

    Each cell's 32 x 32 patch is read upright, its dominant gradient orientation found (kornia's
    PatchDominantGradientOrientation: 36-bin histogram of Gaussian-weighted gradients, smoothed, the peak), and the
    patch read again turned by that orientation before kornia's SIFTDescriptor (rootsift). A turned image turns
    every dominant orientation with it, so the descriptor stays (up to resampling) the same. Unlike
    `DenseRootSIFT` (one convolution), it samples every patch: about 10x slower, an evaluation baseline only.

    Shape:
        (B, 3, H, W) float RGB in [0, 1] -> (B, 128, ceil(H / stride), ceil(W / stride)), unit L2 norm.
    """

    def __init__(self, stride: int = 4, patch_size: int = 32, chunk: int = 4096) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride, self.patch_size, self.chunk = stride, patch_size, chunk
        self.orienter = kornia.feature.PatchDominantGradientOrientation(patch_size)
        self.sift = kornia.feature.SIFTDescriptor(patch_size, rootsift=True)
        self.requires_grad_(False)  # a fixed baseline (kornia's orienter smooths with a conv layer)

    @property
    def descriptor_dim(self) -> int:
        return 128

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        b, _, h, w = image.shape
        s = self.stride
        hc, wc = -(-h // s), -(-w // s)
        ys = (torch.arange(hc, device=image.device, dtype=torch.float32) + 0.5) * s - 0.5
        xs = (torch.arange(wc, device=image.device, dtype=torch.float32) + 0.5) * s - 0.5
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
        gray = kornia.color.rgb_to_grayscale(image.float())
        out = []
        for i in range(b):
            descs = []
            for c in centres.split(self.chunk):
                upright = _rotated_patches(gray[i:i + 1], c, torch.zeros(len(c), device=c.device), self.patch_size)
                # kornia measures the angle the other way round from our patch axes (tested: a turned image must
                # give the same descriptor)
                angle = -self.orienter(upright)
                descs.append(self.sift(_rotated_patches(gray[i:i + 1], c, angle, self.patch_size)))
            out.append(torch.cat(descs).T.reshape(self.descriptor_dim, hc, wc))
        return F.normalize(torch.stack(out), dim=1)


def rgb_descriptor(image: torch.Tensor) -> torch.Tensor:
    """Normalised RGB: each channel standardised with the ImageNet statistics the networks use.

    Shape:
        (B, 3, H, W) in [0, 1] -> (B, 3, H, W).
    """
    _check_image(image)
    mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image - mean) / std


def lab_descriptor(image: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (D65): Euclidean distance is the perceptual colour difference Delta E (1976).

    Shape:
        (B, 3, H, W) in [0, 1] -> (B, 3, H, W), L in [0, 100], a and b in about [-128, 127].
    """
    _check_image(image)
    return kornia.color.rgb_to_lab(image.clamp(0.0, 1.0))


class PretrainedHypercolumn(nn.Module):
    """The untrained features of a pretrained encoder: every tap of `encoder` L2-normalised, bilinearly
    resampled to the finest tap's stride and concatenated (a hypercolumn, Hariharan et al. 2015), then
    L2-normalised again. For EfficientNet-Lite0 with ImageNet weights: blocks 2, 4 and 10 at stride 4, 176-D.
    It shows what our self-supervised training adds to ImageNet features.

    Shape:
        (B, 3, H, W) float RGB in [0, 1] -> (B, sum(channels), ceil(H / s), ceil(W / s)), unit L2 norm,
        s = the finest tap's stride.
    """

    def __init__(self, encoder: nn.Module, mean: tuple[float, float, float] = IMAGENET_MEAN,
                 std: tuple[float, float, float] = IMAGENET_STD) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.decoder = HypercolumnDecoder()
        self.stride = int(encoder.strides[0])
        self.descriptor_dim = int(sum(encoder.channels))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        h, w = image.shape[-2:]
        feats = self.encoder((image.float() - self.mean) / self.std)
        hyper = self.decoder(feats)[0]
        # the finest tap is at ceil(H / s) for these encoders (padding k // 2): the map convention
        check_shape(hyper, (image.shape[0], self.descriptor_dim, -(-h // self.stride), -(-w // self.stride)),
                    "hypercolumn")
        return F.normalize(hyper, dim=1)


__all__ = ["PretrainedHypercolumn", "DenseRootSIFT", "OrientedDenseRootSIFT", "orientation_histograms",
           "rgb_descriptor", "lab_descriptor"]
