"""Saving and loading models as safetensors (weights + config in the metadata), never via pickle."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..config import from_dict, to_dict
from ..fileio import atomic_write
from .config import ModelConfig
from .descriptor_net import DescriptorNet, build_model

FORMAT_VERSION = "1"
ENCODER_FORMAT = "dense_descriptor_ros.encoder"
#: ModelConfig fields that shape an encoder (the rest shape the decoder and head, or say where weights come from)
ENCODER_FIELDS = ("name", "width_mult", "expansion")


def save_model(model: DescriptorNet, path: str | Path, extra: dict[str, str] | None = None) -> None:
    """Write weights and config to a .safetensors file (atomically).

    `extra` adds string metadata (e.g. training config hash, step)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "dense_descriptor_ros.model", "format_version": FORMAT_VERSION,
            "model_config": json.dumps(to_dict(model.config))}
    meta.update(extra or {})
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def save_encoder(encoder_state: dict[str, torch.Tensor], config: ModelConfig, path: str | Path,
                 extra: dict[str, str] | None = None) -> None:
    """Write an encoder's weights alone (e.g. from `dense-descriptor pretrain`) to a .safetensors file, keys as in
    DescriptorNet ("encoder."-prefixed), so that `train init_from=` starts a descriptor network's encoder from them
    with a fresh decoder and head."""
    state = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in encoder_state.items()}
    meta = {"format": ENCODER_FORMAT, "format_version": FORMAT_VERSION, "model_config": json.dumps(to_dict(config))}
    meta.update(extra or {})
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def is_encoder_file(path: str | Path) -> bool:
    """True for an encoder-only file written by save_encoder."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        return read_metadata(path).get("format") == ENCODER_FORMAT
    except Exception:  # not a safetensors file: the model loaders name the problem
        return False


def load_encoder_state(path: str | Path, model: ModelConfig) -> dict[str, torch.Tensor]:
    """The "encoder."-prefixed weights of an encoder file, checked to fit the encoder `model` builds.

    Raises:
        ValueError: not an encoder file, or an encoder of another shape (the differing fields are named).
    """
    meta = read_metadata(path)
    if meta.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{path} is not an encoder file (format {meta.get('format')!r})")
    saved = json.loads(meta["model_config"])
    diff = [f"{k}: {saved.get(k)!r} in the file, {getattr(model, k)!r} configured" for k in ENCODER_FIELDS
            if saved.get(k) != to_dict(model)[k]]
    if diff:
        raise ValueError(f"init_from {path}: the encoder differs from model ({', '.join(diff)})")
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())


def read_metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def trained_steps(path: str | Path) -> int | None:
    """Optimisation steps behind a model file, counting the stages it was initialised from (`init_from`):
    metadata "steps_total" (older files: "step", the last stage only) of a .safetensors file, or
    init_steps + step of a training checkpoint .pt; None when the file does not say."""
    path = Path(path)
    if path.suffix == ".pt":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "step" not in ckpt:
            return None
        return int(ckpt.get("init_steps", 0)) + int(ckpt["step"])
    meta = read_metadata(path)
    value = meta.get("steps_total", meta.get("step"))
    return int(value) if value is not None else None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> DescriptorNet:
    """Load a model saved by `save_model` (or a training checkpoint .pt) in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".pt":
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
            raise ValueError(f"{path} is not a dense_descriptor_ros checkpoint")
        config = from_dict(ModelConfig, ckpt["model_config"])
        state = ckpt["model"]
    else:
        try:
            meta = read_metadata(path)
            with safe_open(str(path), framework="pt") as f:
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"{path} is not a readable safetensors model: {e}") from e
        if meta.get("format") != "dense_descriptor_ros.model":
            raise ValueError(f"{path} has no dense_descriptor_ros model metadata")
        config = from_dict(ModelConfig, json.loads(meta["model_config"]))
    model = build_model(config, load_pretrained=False)  # the file's weights replace any pretrained ones
    model.load_state_dict(state)
    return model.to(device).eval()
