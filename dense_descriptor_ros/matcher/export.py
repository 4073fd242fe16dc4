"""ONNX export of the matcher's inference graph (`MatcherNet.match`) and its parity check against PyTorch.

The graph takes ``desc_a``, ``desc_b``: float32 (B, D, h, w) descriptor maps of one descriptor model at its native
stride (dynamic B, h, w; h and w even) and, for a matcher whose fine level reads the images (image_channels > 0),
``image_a``, ``image_b``: float32 (B, 3, s h, s w) RGB in [0, 1] (s = image_stride). It returns, for each of A's
N = (h / 2) (w / 2) coarse cells (row-major): ``confidence`` (B, N) float32, ``mutual`` (B, N) bool, ``position_b``
(B, N, 2) fine-map (column, row) in B and ``spread`` (B, N) float32 (see MatcherNet.match). The matcher file's
identity (descriptor model id and stride) and network config are written into the ONNX metadata, so the runtime
checks an ONNX matcher like a .safetensors one.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import from_dict, to_dict
from ..fileio import atomic_write
from .config import MatcherConfig
from .io import MATCHER_FORMAT, MATCHER_FORMAT_VERSION, MatcherInfo
from .model import MatcherNet

INPUTS = ("desc_a", "desc_b")
IMAGE_INPUTS = ("image_a", "image_b")
OUTPUTS = ("confidence", "mutual", "position_b", "spread")


class _MatchGraph(nn.Module):
    def __init__(self, net: MatcherNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor):
        return self.net.match(*inputs)


def input_names(net_config: MatcherConfig) -> tuple[str, ...]:
    return INPUTS + (IMAGE_INPUTS if net_config.image_channels else ())


def _inputs(net: MatcherNet, size: tuple[int, int], g: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Random unit-norm maps of (h, w) cells (and images of the size they tile)."""
    d, s = net.config.descriptor_dim, net.config.image_stride
    maps = tuple(nn.functional.normalize(torch.randn(1, d, *size, generator=g), dim=1) for _ in range(2))
    if not net.config.image_channels:
        return maps
    return maps + tuple(torch.rand(1, 3, size[0] * s, size[1] * s, generator=g) for _ in range(2))


def export_matcher_onnx(net: MatcherNet, info: MatcherInfo, out: str | Path, opset: int = 17,
                        trace_size: tuple[int, int] = (60, 80)) -> None:
    """Export `net.match` with dynamic batch and map size (legacy TorchScript exporter) and the matcher metadata.

    Args:
        trace_size: (h, w) of the tracing maps (even); `check_matcher_parity` runs others.
    """
    import onnx

    net = net.cpu().eval()
    x = _inputs(net, trace_size)
    names = input_names(net.config)
    dims = {0: "batch", 2: "map_height", 3: "map_width"}
    image_dims = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on shape arithmetic, the legacy-exporter notice
            torch.onnx.export(_MatchGraph(net), x, tmp, dynamo=False, opset_version=opset, input_names=list(names),
                              output_names=list(OUTPUTS), do_constant_folding=True,
                              dynamic_axes={"desc_a": dims, "desc_b": dims, "image_a": image_dims,
                                            "image_b": image_dims, "confidence": {0: "batch", 1: "cells"},
                                            "mutual": {0: "batch", 1: "cells"},
                                            "position_b": {0: "batch", 1: "cells"},
                                            "spread": {0: "batch", 1: "cells"}})
        m = onnx.load(tmp)
        onnx.helper.set_model_props(m, {
            "format": MATCHER_FORMAT, "format_version": MATCHER_FORMAT_VERSION,
            "matcher_config": json.dumps(to_dict(net.config)), "descriptor_model_id": info.descriptor_model_id,
            "descriptor_stride": str(info.descriptor_stride), "version": info.version})
        m.doc_string = f"dense_descriptor_ros matcher ({info.version}) for descriptor model {info.descriptor_model_id}"
        onnx.checker.check_model(m)
        onnx.save(m, tmp)

    with torch.no_grad():
        atomic_write(out, write)


def read_onnx_matcher(path: str | Path) -> tuple[MatcherInfo, MatcherConfig]:
    """The identity and network config an exported matcher carries in its metadata."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    if meta.get("format") != MATCHER_FORMAT:
        raise ValueError(f"{path} is not a matcher ONNX file (format {meta.get('format')!r})")
    info = MatcherInfo(meta["descriptor_model_id"], int(meta["descriptor_stride"]), meta.get("version", "unknown"))
    return info, from_dict(MatcherConfig, json.loads(meta["matcher_config"]))


def check_matcher_parity(net: MatcherNet, onnx_path: str | Path,
                         sizes: tuple[tuple[int, int], ...] = ((60, 80), (46, 64)), seed: int = 0) -> dict[str, float]:
    """Max abs difference of confidence and position between PyTorch and ONNX Runtime (CPU) on random unit-norm
    maps of every (h, w) in `sizes`, and the share of cells whose best match or mutual flag differs.

    Returns {"HxW/confidence": ..., "HxW/position": ..., "HxW/disagree": ...}; a shape mismatch raises ValueError.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    names = input_names(net.config)
    out: dict[str, float] = {}
    for h, w in sizes:
        x = _inputs(net, (h, w), g)
        res = sess.run(list(OUTPUTS), {n: t.numpy() for n, t in zip(names, x, strict=True)})
        with torch.no_grad():
            ref = [t.numpy() for t in net.cpu().eval().match(*x)]
        for name, x, y in zip(OUTPUTS, res, ref, strict=True):
            if x.shape != y.shape:
                raise ValueError(f"ONNX {name} {x.shape} != PyTorch {y.shape} at {h}x{w}: dynamic shapes are broken")
        # random maps have near-ties: a cell whose best match flips between backends counts as a disagreement
        # and its position (another window) is left out of the difference
        dpos = np.abs(res[2] - ref[2]).max(-1)
        same = (res[1] == ref[1]) & (dpos < 1e-2)
        out[f"{h}x{w}/confidence"] = float(np.abs(res[0] - ref[0]).max())
        out[f"{h}x{w}/position"] = float(dpos[same].max()) if same.any() else float("nan")
        out[f"{h}x{w}/disagree"] = float(1.0 - same.mean())
    return out


__all__ = ["export_matcher_onnx", "check_matcher_parity", "read_onnx_matcher", "input_names", "INPUTS",
           "IMAGE_INPUTS", "OUTPUTS"]
