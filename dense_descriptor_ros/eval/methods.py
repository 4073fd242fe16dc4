"""What the evaluation scores: anything that turns an image into a dense descriptor map.

A `Method` wraps a trained model file, a hand-made baseline or a randomly initialised architecture
behind one call, so every method goes through the same metric code on the same pairs:

    method = build_method("runs/lite/model.safetensors")   # or "rootsift", "lab", "random:don_resnet34:3"
    desc = method.describe(image)   # (1, 3, H, W) float in [0, 1] -> (1, D, ceil(H / s), ceil(W / s))

`full_resolution` upsamples a map to every input pixel (bilinear, the networks' own `forward`), which is
what the best-match metrics search.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import check_shape
from ..models import ARCHITECTURES, ModelConfig, build_model, load_model
from .baselines import DenseRootSIFT, OrientedDenseRootSIFT, PretrainedHypercolumn, lab_descriptor, rgb_descriptor

#: Baseline names `build_method` understands ("rootsift:<stride>" sets the grid stride, default 4;
#: "pretrained:<arch>" the untrained hypercolumn of an architecture with pretrained weights;
#: "rootsift_oriented[:<stride>]" RootSIFT with SIFT's rotation normalisation per cell, the rotation evaluation's
#: anchor, about 10x slower).
BASELINES = ("rootsift", "rootsift_oriented", "rgb", "lab", "pretrained")
#: Seed of "random:<arch>" weights (fixed, so every run scores the same random network).
RANDOM_SEED = 0


class MethodError(ValueError):
    """A method specification that cannot be turned into a Method (user error)."""


@dataclass
class Method:
    """A dense descriptor under evaluation.

    Attributes:
        name: label in tables and plots.
        fn: (1, 3, H, W) float RGB in [0, 1] -> (1, D, ceil(H / stride), ceil(W / stride)).
        stride: input pixels per map cell.
        dim: descriptor dimension D.
        normalized: descriptors have unit L2 norm (kept after upsampling).
        kind: "model", "baseline" or "random".
        info: what it was built from (file, architecture, parameter count...), for the report.
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    stride: int
    dim: int
    normalized: bool = False
    kind: str = "model"
    info: dict = field(default_factory=dict)

    @torch.inference_mode()
    def describe(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) float in [0, 1] -> (1, D, ceil(H / stride), ceil(W / stride)) float32."""
        check_shape(image, (1, 3, "H", "W"), "image")
        out = self.fn(image).float()
        h, w = image.shape[-2:]
        expected = (1, self.dim, math.ceil(h / self.stride), math.ceil(w / self.stride))
        check_shape(out, expected, f"{self.name} output")
        return out

    def full_resolution(self, desc: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling of a (1, D, h, w) map to (1, D, H, W), cell centres kept in place."""
        if self.stride == 1:
            return desc[..., : size[0], : size[1]]
        up = F.interpolate(desc, scale_factor=self.stride, mode="bilinear", align_corners=False,
                           recompute_scale_factor=False)[..., : size[0], : size[1]]
        return F.normalize(up, dim=1) if self.normalized else up


def _network_method(name: str, net: torch.nn.Module, kind: str, info: dict) -> Method:
    cfg: ModelConfig = net.config
    info = dict(info, architecture=cfg.name, descriptor_dim=cfg.descriptor_dim,
                parameters=sum(p.numel() for p in net.parameters()))
    return Method(name, net.forward_native, int(net.stride), cfg.descriptor_dim, cfg.normalize, kind, info)


def random_method(arch: str, dim: int = 16, device: str | torch.device = "cpu",
                  seed: int = RANDOM_SEED) -> Method:
    """An architecture at its (seeded) random initialisation."""
    if arch not in ARCHITECTURES:
        raise MethodError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(ModelConfig(name=arch, descriptor_dim=dim)).to(device).eval()
    suffix = f":{dim}" if dim != 16 else ""
    return _network_method(f"random:{arch}{suffix}", net, "random", {"seed": seed})


def pretrained_method(arch: str, device: str | torch.device = "cpu") -> Method:
    """The untrained pretrained encoder of `arch` as a hypercolumn descriptor ("pretrained:effnet_lite0")."""
    if arch not in ARCHITECTURES or ARCHITECTURES[arch].pretrained is None:
        with_weights = [n for n, a in ARCHITECTURES.items() if a.pretrained is not None]
        raise MethodError(f"pretrained:{arch}: expected an architecture with pretrained weights "
                          f"({', '.join(with_weights)})")
    try:
        net = build_model(ModelConfig(name=arch, pretrained=True))
    except ImportError as e:
        raise MethodError(str(e)) from None
    hyper = PretrainedHypercolumn(net.encoder, net.config.mean, net.config.std).to(device).eval()
    return Method(f"pretrained:{arch}", hyper, hyper.stride, hyper.descriptor_dim, True, "baseline",
                  {"architecture": arch, "features": "untrained hypercolumn of every encoder tap",
                   "weights": ARCHITECTURES[arch].pretrained_origin,
                   "parameters": sum(p.numel() for p in hyper.parameters())})


def baseline_method(name: str, device: str | torch.device = "cpu") -> Method:
    """"rootsift[:stride]", "rootsift_oriented[:stride]", "rgb", "lab" or "pretrained:<arch>"."""
    base, _, arg = name.partition(":")
    if base == "pretrained":
        return pretrained_method(arg, device)
    if base in ("rootsift", "rootsift_oriented"):
        try:
            stride = int(arg) if arg else 4
        except ValueError:
            raise MethodError(f"rootsift stride must be an integer, got {arg!r}") from None
        if stride < 1:
            raise MethodError(f"rootsift stride must be >= 1, got {stride}")
        if base == "rootsift_oriented":
            osift = OrientedDenseRootSIFT(stride).to(device)
            return Method(name, osift, stride, osift.descriptor_dim, True, "baseline",
                          {"patch_size": osift.patch_size, "stride": stride, "orientation": "dominant gradient"})
        sift = DenseRootSIFT(stride).to(device)
        return Method(name, sift, stride, sift.descriptor_dim, True, "baseline",
                      {"patch_size": sift.patch_size, "stride": stride})
    if arg:
        raise MethodError(f"baseline {base!r} takes no argument, got {name!r}")
    if base == "rgb":
        return Method("rgb", rgb_descriptor, 1, 3, False, "baseline",
                      {"colour": "RGB standardised (ImageNet)"})
    if base == "lab":
        return Method("lab", lab_descriptor, 1, 3, False, "baseline", {"colour": "CIE L*a*b*"})
    raise MethodError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)} "
                      "or random:<arch>[:D]")


def onnx_method(path: str | Path, name: str | None = None) -> Method:
    """An exported .onnx model run by ONNX Runtime through the deployment `DescriptorExtractor` (uint8 input,
    as on the robot), so its ms/frame is the deployed latency."""
    from ..runtime import DescriptorExtractor, ExtractorConfig

    path = Path(path)
    try:
        ext = DescriptorExtractor.load(path, ExtractorConfig(output_stride=0, warmup_iters=0))
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise MethodError(f"{path}: {e}") from None

    def fn(image: torch.Tensor) -> torch.Tensor:
        rgb = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
        d = np.ascontiguousarray(ext.extract(rgb).descriptors, dtype=np.float32)
        return torch.from_numpy(d).permute(2, 0, 1)[None].to(image.device)

    info = {"file": str(path), "architecture": ext.info.name, "descriptor_dim": ext.info.descriptor_dim,
            "backend": "onnxruntime", "model_id": ext.info.model_id}
    return Method(name or path.stem, fn, int(ext.info.stride), ext.info.descriptor_dim, ext.info.normalize,
                  "model", info)


def model_method(path: str | Path, name: str | None = None, device: str | torch.device = "cpu") -> Method:
    """A trained model file (.safetensors, training checkpoint .pt, or an .onnx export)."""
    path = Path(path)
    if path.suffix == ".onnx":
        return onnx_method(path, name)
    try:
        net = load_model(path, device)
    except (FileNotFoundError, ValueError) as e:
        raise MethodError(str(e)) from None
    return _network_method(name or path.stem, net, "model", {"file": str(path)})


def lifted_method(inner: Method, order: int) -> Method:
    """`inner` made rotation-invariant by lifting it to C_N and pooling the orbit (`rotation.lifting`): N
    forward passes on the turned image, so N times the cost."""
    from ..rotation import OrbitLifter, group_pool

    try:
        lifter = OrbitLifter(inner.fn, inner.stride, order)
    except ValueError as e:
        raise MethodError(f"c{order}:{inner.name}: {e}") from None

    def fn(image: torch.Tensor) -> torch.Tensor:
        orbit, weight = lifter.orbit(image)
        return group_pool(orbit, weight, normalize=inner.normalized)[None]

    return Method(f"c{order}:{inner.name}", fn, inner.stride, inner.dim, inner.normalized, inner.kind,
                  dict(inner.info, rotation_group=f"C{order} (orbit pooled, {order} passes)"))


def build_method(spec: str, device: str | torch.device = "cpu") -> Method:
    """A Method from a specification.

    "NAME=PATH" or "PATH" (a model file: .safetensors, .pt or .onnx), a baseline ("rootsift",
    "rootsift:2", "rgb", "lab", "pretrained:effnet_lite0"), or "random:<arch>[:D]" (an architecture at random
    initialisation, D = 16 by default; the Dense Object Nets reference at its default dimension is
    "random:don_resnet34:3"). Any of them behind "c<N>:" (N = 4, 8, 12, 16) is lifted to the rotation group C_N
    and pooled over it (rotation-invariant, N times the cost): "c8:default=models/default/model.safetensors".
    """
    spec = spec.strip()
    lifted = re.fullmatch(r"c(\d+):(.+)", spec)
    if lifted and not Path(spec).exists():
        return lifted_method(build_method(lifted.group(2), device), int(lifted.group(1)))
    if spec.startswith("random:"):
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise MethodError(f"expected random:<arch>[:D], got {spec!r}")
        try:
            dim = int(parts[2]) if len(parts) == 3 else 16
        except ValueError:
            raise MethodError(f"descriptor dimension must be an integer in {spec!r}") from None
        if dim < 1:
            raise MethodError(f"descriptor dimension must be >= 1 in {spec!r}")
        return random_method(parts[1], dim, device)
    if spec.partition(":")[0] in BASELINES:
        return baseline_method(spec, device)
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return model_method(path, name, device)
    if not Path(spec).exists():
        raise MethodError(f"{spec!r} is neither a model file nor a method name (baselines: "
                          f"{', '.join(BASELINES)}; random:<arch>[:D] with arch in "
                          f"{', '.join(ARCHITECTURES)})")
    return model_method(spec, None, device)


__all__ = ["BASELINES", "RANDOM_SEED", "Method", "MethodError", "build_method", "baseline_method", "pretrained_method",
           "model_method", "onnx_method", "random_method", "lifted_method"]
