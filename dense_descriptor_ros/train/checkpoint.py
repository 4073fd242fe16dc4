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
