"""Finding and checking model and keypoint files: the shipped defaults and user-given paths."""

from __future__ import annotations

import os
from pathlib import Path

from .export import ModelInfo, model_info, read_model_file, read_onnx_info

PACKAGE = "dense_descriptor_ros"
DEFAULT_MODEL_DIR = "default"  # models/<this>/ holds the shipped model (see models/README.md)
MODEL_FILES = {"onnx": "model.onnx", "torch": "model.safetensors"}
DEFAULT_KEYPOINTS = "mug_keypoints.json"
#: the linear part probe fitted on the shipped model (labels output; `dense-descriptor probe`)
DEFAULT_PART_PROBE = "part_probe.safetensors"
#: the learned matcher trained on the shipped model (correspondence_method matcher; `dense-descriptor matcher`)
MATCHER_FILES = {"onnx": "matcher.onnx", "torch": "matcher.safetensors"}


class ModelFileError(ValueError):
    """A model or keypoint file that is missing or unreadable (the message names it and says why)."""


def models_dir() -> Path:
    """The shipped `models/` folder: the source checkout's (editable install, tests), else the ROS
    package's share directory (colcon install), else $DENSE_DESCRIPTOR_MODELS."""
    env = os.environ.get("DENSE_DESCRIPTOR_MODELS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "models"
    if repo.is_dir():
        return repo
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE)) / "models"
    except Exception:  # not installed with colcon: say where we looked
        return repo


def default_model_path(backend: str) -> Path:
    """The shipped model for a backend ("onnx" or "torch")."""
    if backend not in MODEL_FILES:
        raise ValueError(f"backend must be one of {sorted(MODEL_FILES)}, got {backend!r}")
    return models_dir() / DEFAULT_MODEL_DIR / MODEL_FILES[backend]


def default_matcher_path(backend: str) -> Path:
    """The shipped matcher for a backend ("onnx" or "torch")."""
    if backend not in MATCHER_FILES:
        raise ValueError(f"backend must be one of {sorted(MATCHER_FILES)}, got {backend!r}")
    return models_dir() / DEFAULT_MODEL_DIR / MATCHER_FILES[backend]


def default_keypoints_path() -> Path:
    """The shipped mug keypoint file that goes with the shipped model."""
    return models_dir() / DEFAULT_MODEL_DIR / DEFAULT_KEYPOINTS


def default_part_probe_path() -> Path:
    """The shipped part probe (`dense-descriptor probe`) that goes with the shipped model."""
    return models_dir() / DEFAULT_MODEL_DIR / DEFAULT_PART_PROBE


def _check_is_file(path: Path) -> None:
    if path.is_dir():
        raise ModelFileError(f"model file {path} is a directory, not a model file")
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")


def resolve_model_path(path: str, backend: str) -> Path:
    """`path` ("" = the shipped default for `backend`), checked against the backend's file types."""
    p = Path(path).expanduser() if path else default_model_path(backend)
    want = (".onnx",) if backend == "onnx" else (".safetensors", ".pt")
    if p.suffix not in want:
        raise ModelFileError(f"backend {backend} needs a {' or '.join(want)} model file, got {p}"
                             + (" (export it with `dense-descriptor export`)" if backend == "onnx" else ""))
    _check_is_file(p)
    return p


def probe_model(path: str | Path) -> ModelInfo:
    """ModelInfo of a model file without keeping it loaded; ModelFileError if it cannot be read."""
    path = Path(path)
    _check_is_file(path)
    try:
        if path.suffix == ".onnx":
            return read_onnx_info(path)
        model, meta = read_model_file(path)
        return model_info(model, meta["version"], meta["train_config_hash"])
    except ModelFileError:
        raise
    except Exception as e:  # onnx / safetensors / torch raise many types for a corrupt file
        raise ModelFileError(f"model file {path} is not a readable dense_descriptor_ros model: "
                             f"{type(e).__name__}: {e}") from e
