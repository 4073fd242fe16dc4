"""Datasets that produce training pairs.

Names are imported on first use: `data.sample_images` needs no torch, so the simulator's generator
workers read the training photo list from it without the ~2-3 s torch import of the rest.
"""

import importlib
from typing import Any

_EXPORTS = {"PairBatch": "base", "PairDataset": "base", "PairItem": "base", "collate_pairs": "base",
            "ImageFolderPairs": "image_folder", "list_images": "image_folder", "load_rgb": "image_folder",
            "HELDOUT_IMAGES": "sample_images", "REAL_HELDOUT": "sample_images", "TRAIN_IMAGES": "sample_images",
            "resolve_image_dir": "sample_images", "write_sample_images": "sample_images"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PairBatch", "PairDataset", "PairItem", "collate_pairs", "ImageFolderPairs", "list_images",
           "load_rgb", "HELDOUT_IMAGES", "REAL_HELDOUT", "TRAIN_IMAGES", "resolve_image_dir",
           "write_sample_images"]
