"""Training checkpoints: everything needed to rebuild and continue the run, loadable with weights_only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_write


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Atomically write `state` (tensors, dicts, lists, numbers and strings only)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable checkpoint: {e}") from e
    for key in ("model", "optimizer", "step", "train_config"):
        if key not in ckpt:
            raise ValueError(f"{path} is not a dense_descriptor_ros training checkpoint (no {key!r})")
    return ckpt


def run_device(setting: str) -> torch.device:
    """The device of a one-process run from its config's "auto" / "cpu" / "cuda" (cuda without CUDA is an error)."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but CUDA is not available")
    return torch.device("cuda" if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()) else "cpu")


def resume_checkpoint(resume: str | Path | None, kind: str, cfg: Any, parts: tuple[str, ...]) -> dict[str, Any] | None:
    """The checkpoint to continue a run from (None without `resume`), checked to be of this `kind` of run and to
    have the same config sections `parts` as `cfg` (only the length of a run may change on resume).

    Raises:
        ValueError: another kind of checkpoint, or a differing section (named).
    """
    if resume is None:
        return None
    from ..config import from_dict, to_dict

    ckpt = load_checkpoint(resume)
    if ckpt.get("kind") != kind:
        raise ValueError(f"--resume {resume}: not a {kind} checkpoint")
    saved = from_dict(type(cfg), ckpt["train_config"])
    for part in parts:
        if to_dict(getattr(saved, part)) != to_dict(getattr(cfg, part)):
            raise ValueError(f"--resume: config section {part!r} differs from the checkpoint's; resume with "
                             "the run's own config (config.yaml in its directory)")
    return ckpt

