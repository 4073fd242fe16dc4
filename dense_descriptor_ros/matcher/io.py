"""Matcher files: the weights (.safetensors) with the matcher's config and the identity of the descriptor model whose
maps it reads (its model id and stride), so that the runtime refuses the maps of another model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file

from ..config import from_dict, to_dict
from ..fileio import atomic_write
from ..models import read_metadata
from .config import MatcherConfig
from .model import MatcherNet

MATCHER_FORMAT = "dense_descriptor_ros.matcher"
MATCHER_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class MatcherInfo:
    """What a matcher file says about itself."""

    # ModelInfo.model_id of the descriptor model it was trained on (its maps are the only valid input).
    descriptor_model_id: str
    # Native stride of that model's maps (input pixels per fine cell); coarse cells are 2 x this.
    descriptor_stride: int
    # Training steps behind the weights ("unknown" if not recorded).
    version: str = "unknown"


def save_matcher(net: MatcherNet, info: MatcherInfo, path: str | Path, extra: dict[str, str] | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {"format": MATCHER_FORMAT, "format_version": MATCHER_FORMAT_VERSION,
            "matcher_config": json.dumps(to_dict(net.config)), "descriptor_model_id": info.descriptor_model_id,
            "descriptor_stride": str(info.descriptor_stride), "version": info.version, **(extra or {})}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


def load_matcher(path: str | Path) -> tuple[MatcherNet, MatcherInfo]:
    """The matcher (CPU, eval mode) and its MatcherInfo.

    Raises:
        FileNotFoundError: no such file. ValueError: not a matcher file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"matcher file {path} does not exist")
    try:
        meta = read_metadata(path)
    except Exception as e:  # not a safetensors file
        raise ValueError(f"{path} is not a matcher file ({e})") from None
    if meta.get("format") != MATCHER_FORMAT:
        raise ValueError(f"{path} is not a matcher file (format {meta.get('format')!r}; train one with "
                         "`dense-descriptor matcher train`)")
    net = MatcherNet(from_dict(MatcherConfig, json.loads(meta["matcher_config"])))
    net.load_state_dict(load_file(str(path)))
    info = MatcherInfo(meta["descriptor_model_id"], int(meta["descriptor_stride"]), meta.get("version", "unknown"))
    return net.eval(), info


def matcher_info_of(path: str | Path) -> MatcherInfo:
    """The MatcherInfo of a .safetensors matcher file without building the network."""
    meta = read_metadata(path)
    if meta.get("format") != MATCHER_FORMAT:
        raise ValueError(f"{path} is not a matcher file (format {meta.get('format')!r})")
    return MatcherInfo(meta["descriptor_model_id"], int(meta["descriptor_stride"]), meta.get("version", "unknown"))


def matcher_config_of(path: str | Path) -> MatcherConfig:
    """The network config of a .safetensors matcher file without building the network."""
    meta = read_metadata(path)
    if meta.get("format") != MATCHER_FORMAT:
        raise ValueError(f"{path} is not a matcher file (format {meta.get('format')!r})")
    return from_dict(MatcherConfig, json.loads(meta["matcher_config"]))


__all__ = ["MATCHER_FORMAT", "MatcherInfo", "save_matcher", "load_matcher", "matcher_info_of", "matcher_config_of"]
