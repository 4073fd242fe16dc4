"""ONNX export with self-describing metadata, and the parity check against PyTorch.

The exported graph takes ``image``: float32 (B, 3, H, W) RGB in [0, 1] (dynamic B, H, W; the
mean/std normalisation is inside the graph) and returns ``descriptors``: (B, D, ceil(H / s),
ceil(W / s)) with s the ``stride`` in the metadata (float32, or float16 for an fp16 export). The
input stays float32 for every precision so that preprocessing is identical for every backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import to_dict
from ..fileio import atomic_write
from ..models import DescriptorNet, ModelConfig, build_model, load_model, read_metadata, trained_steps

ONNX_FORMAT = "dense_descriptor_ros.onnx"
ONNX_FORMAT_VERSION = "1"
INPUT_NAME = "image"
OUTPUT_NAME = "descriptors"
# fp32 parity threshold of the issue; fp16 is reported, not asserted (its error scales with |d|).
FP32_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ModelInfo:
    """Identity and output contract of a model, shared by the .safetensors model and its ONNX export."""

    # Architecture name (ModelConfig.name).
    name: str
    # Training progress the weights come from ("step-1200"), or "unknown".
    version: str
    # sha256 (16 hex) of the weights: equal for a model file and every export of it; keypoint files
    # record it so that descriptors from a different model are refused.
    model_id: str
    # Hash of the training config that produced the weights, or "unknown".
    train_config_hash: str
    # Descriptor dimension D.
    descriptor_dim: int
    # Whether descriptors are L2-normalised.
    normalize: bool
    # Stride of the map the network (or graph) outputs: the native stride, or 1 if upsampled inside.
    stride: int
    # Per-channel mean/std applied inside the network to RGB in [0, 1].
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # Weight precision of the graph: "fp32" or "fp16" (torch models are "fp32" on disk).
    precision: str = "fp32"


def model_fingerprint(model: nn.Module) -> str:
    """sha256 (16 hex) over the state dict (names, dtypes, shapes, bytes) in fp32."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu()
        if a.is_floating_point():
            a = a.float()
        h.update(f"{name}:{a.dtype}:{tuple(a.shape)};".encode())
        h.update(a.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def read_model_file(path: str | Path) -> tuple[DescriptorNet, dict[str, str]]:
    """Load a model file (.safetensors or training .pt) and its version metadata.

    Returns the model (CPU, eval) and a dict with "version" and "train_config_hash" ("unknown" when
    the file does not say)."""
    path = Path(path)
    model = load_model(path)
    meta: dict = {}
    if path.suffix == ".pt":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        meta = {k: ckpt[k] for k in ("step", "version", "train_config_hash") if k in ckpt}
        if "train_config_hash" not in meta and isinstance(ckpt.get("config"), dict):
            blob = json.dumps(ckpt["config"], sort_keys=True, default=str).encode()
            meta["train_config_hash"] = hashlib.sha256(blob).hexdigest()[:16]
    else:
        meta = read_metadata(path)
    steps = trained_steps(path)
    version = str(meta.get("version") or (f"step-{steps}" if steps is not None else "unknown"))
    return model, {"version": version, "train_config_hash": str(meta.get("train_config_hash", "unknown"))}


def model_info(model: DescriptorNet, version: str = "unknown", train_config_hash: str = "unknown",
               upsample: bool = False, precision: str = "fp32") -> ModelInfo:
    """ModelInfo of a torch model whose output is at its native stride (or 1 with `upsample`)."""
    cfg = model.config
    return ModelInfo(name=cfg.name, version=version, model_id=model_fingerprint(model),
                     train_config_hash=train_config_hash, descriptor_dim=cfg.descriptor_dim,
                     normalize=cfg.normalize, stride=1 if upsample else model.stride,
                     mean=tuple(cfg.mean), std=tuple(cfg.std), precision=precision)


def with_upsample(model: DescriptorNet, upsample: bool) -> DescriptorNet:
    """`model` if its config.upsample already is `upsample`, else a copy (same weights, eval) with it."""
    if model.config.upsample == upsample:
        return model
    out = build_model(dataclasses.replace(model.config, upsample=upsample))
    out.load_state_dict(model.state_dict())
    return out.to(next(model.parameters()).device).eval()


def to_fp16(m, input_name: str = INPUT_NAME):
    """fp16 weights and output behind a float32 input (an onnx.ModelProto, converted in place).

    The graph is traced in fp32 (BatchNorm folded in fp32) and converted afterwards: tracing in half
    precision on a CPU runs grouped convolutions through PyTorch's slow per-group path (4.5 s for a
    tiny lite model at 64x96, growing with the input). Float initializers and constants become
    float16, except Resize's roi/scales (float32 by the ONNX spec); positive constants below fp16's
    range (F.normalize's eps) become its smallest subnormal instead of 0. A Cast after the input keeps
    the input float32, so preprocessing stays identical for every precision. Returns `m`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def half(t):
        a = numpy_helper.to_array(t)
        h = a.astype(np.float16)
        h[(a > 0) & (h == 0)] = np.float16(2.0**-24)  # smallest subnormal
        return numpy_helper.from_array(h, t.name)

    g = m.graph
    keep_fp32 = {name for n in g.node if n.op_type == "Resize" for name in n.input[1:3] if name}
    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep_fp32:
            g.initializer[i].CopyFrom(half(init))
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] not in keep_fp32:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(half(a.t))
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT and n.output[0] not in keep_fp32:
                    a.i = TensorProto.FLOAT16
    cast_out = f"{input_name}_fp16"
    for n in g.node:
        for k, name in enumerate(n.input):
            if name == input_name:
                n.input[k] = cast_out
    g.node.insert(0, helper.make_node("Cast", [input_name], [cast_out], to=TensorProto.FLOAT16,
                                      name="input_to_fp16"))
    for o in g.output:
        o.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]  # traced fp32 types; ONNX Runtime infers them again
    onnx.checker.check_model(m)
    return m


def info_to_metadata(info: ModelInfo, config: ModelConfig) -> dict[str, str]:
    """ONNX metadata_props (all strings)."""
    return {
        "format": ONNX_FORMAT, "format_version": ONNX_FORMAT_VERSION,
        "model_name": info.name, "model_version": info.version, "model_id": info.model_id,
        "train_config_hash": info.train_config_hash, "descriptor_dim": str(info.descriptor_dim),
        "normalize": json.dumps(info.normalize), "stride": str(info.stride),
        "input_mean": json.dumps(list(info.mean)), "input_std": json.dumps(list(info.std)),
        "precision": info.precision, "model_config": json.dumps(to_dict(config)),
        "input": f"{INPUT_NAME}: float32 (B, 3, H, W) RGB in [0, 1]; mean/std applied inside",
        "output": f"{OUTPUT_NAME}: (B, D, ceil(H/stride), ceil(W/stride))",
    }


def metadata_to_info(meta: dict[str, str], source: str = "model") -> ModelInfo:
    """Inverse of `info_to_metadata`; raises ValueError if the file was not made by `export_onnx`."""
    if meta.get("format") != ONNX_FORMAT:
        raise ValueError(f"{source} has no dense_descriptor_ros metadata (export it with "
                         "`dense-descriptor export`)")
    try:
        return ModelInfo(name=meta["model_name"], version=meta["model_version"], model_id=meta["model_id"],
                         train_config_hash=meta["train_config_hash"],
                         descriptor_dim=int(meta["descriptor_dim"]), normalize=json.loads(meta["normalize"]),
                         stride=int(meta["stride"]), mean=tuple(json.loads(meta["input_mean"])),
                         std=tuple(json.loads(meta["input_std"])), precision=meta["precision"])
    except (KeyError, ValueError) as e:
        raise ValueError(f"{source}: incomplete dense_descriptor_ros metadata ({e})") from e


def read_onnx_info(path: str | Path) -> ModelInfo:
    """ModelInfo stored in an exported ONNX file."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return metadata_to_info({p.key: p.value for p in m.metadata_props}, str(path))


def export_onnx(model: DescriptorNet, out: str | Path, *, fp16: bool = False, upsample: bool = False,
                opset: int = 17, trace_size: tuple[int, int] = (240, 320), version: str = "unknown",
                train_config_hash: str = "unknown") -> ModelInfo:
    """Export `model` to ONNX (legacy TorchScript exporter: < 1 s, vs 11-29 s for dynamo) with
    dynamic batch, height and width, and write the metadata. Returns the ModelInfo written.

    Args:
        fp16: fp16 weights and output (the input stays float32; see `to_fp16`).
        upsample: bilinear upsampling to the input size inside the graph (stride 1); default: the
            native-stride map, 16x fewer values to move, which the runtime can upsample if asked.
        trace_size: (H, W) of the tracing input; `check_parity` verifies other sizes.
    """
    import onnx

    net = with_upsample(model.cpu().eval(), upsample)
    info = model_info(net, version, train_config_hash, upsample, "fp16" if fp16 else "fp32")
    x = torch.rand(1, 3, *trace_size)
    dims = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            # TracerWarning on the input-shape check and the legacy-exporter deprecation notice.
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), tmp, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: dims,
                                            OUTPUT_NAME: {0: "batch", 2: "map_height", 3: "map_width"}})
        m = onnx.load(tmp)
        if fp16:
            to_fp16(m)
        onnx.helper.set_model_props(m, info_to_metadata(info, net.config))
        m.doc_string = f"dense_descriptor_ros {info.name} ({info.version}), D={info.descriptor_dim}"
        onnx.checker.check_model(m)
        onnx.save(m, tmp)

    with torch.no_grad():
        atomic_write(out, write)
    return info


def check_parity(model: DescriptorNet, onnx_path: str | Path,
                 sizes: tuple[tuple[int, int], ...] = ((240, 320), (181, 253)), batch: int = 2,
                 seed: int = 0) -> dict[str, float]:
    """Max abs difference between the fp32 PyTorch model and the ONNX graph on ONNX Runtime CPU.

    Runs random uint8-like images at every (H, W) in `sizes` (pick ones other than the traced size,
    including one not divisible by the stride, so that dynamic shapes are really exercised) with
    batch `batch`. Returns {"HxW": max_abs_diff}; a shape mismatch raises ValueError.
    """
    import onnxruntime as ort

    info = read_onnx_info(onnx_path)
    net = with_upsample(model.cpu().eval(), info.stride == 1)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    for h, w in sizes:
        x = (rng.integers(0, 256, (batch, 3, h, w)).astype(np.float32) / 255.0).astype(np.float32)
        y_onnx = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0].astype(np.float32)
        with torch.no_grad():
            y_ref = net(torch.from_numpy(x)).numpy()
        if y_onnx.shape != y_ref.shape:
            raise ValueError(f"ONNX output {y_onnx.shape} != PyTorch {y_ref.shape} at {h}x{w}: "
                             "dynamic shapes are broken")
        out[f"{h}x{w}"] = float(np.abs(y_onnx - y_ref).max())
    return out
