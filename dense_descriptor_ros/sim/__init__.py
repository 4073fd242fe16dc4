"""Synthetic multi-view RGB-D scenes with exact ground truth (pybullet's CPU renderer).

Procedural object categories with parts, canonical coordinates and named keypoints (`categories`),
scenes settled by physics and scanned by a hemisphere of cameras (`scene`, `render`), a versioned
on-disk format (`format`, docs/sim_format.md) and the `sim generate` command (`generator`, `cli`).
Ground-truth correspondence functions (torch) live in `dense_descriptor_ros.sim.ground_truth`; the
loader in `dense_descriptor_ros.data.synthetic`. Two looks: `appearance` (realistic: photo textures,
labels, materials, light; with `shading` and `sensor`) and `textures` (cartoon). This package does not
import torch itself (generator workers start fast); the realistic look reads the training photo list
from `dense_descriptor_ros.data.sample_images`, whose package imports torch (about 2 s, once per worker
process). It imports pybullet only when the generator is used (the loader and the trainer read datasets
without it).
"""

import importlib
from typing import Any

from .categories import CATEGORIES, Category, Part, ShapeModel
from .format import FORMAT_VERSION, read_view, write_view
from .library import InstanceRef, build_instance, instance_split

_GENERATOR = ("GenerateConfig", "GenerateError", "GenerateReport", "generate", "generate_scene", "scene_split")


def __getattr__(name: str) -> Any:
    if name in _GENERATOR:
        return getattr(importlib.import_module(f"{__name__}.generator"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CATEGORIES", "Category", "Part", "ShapeModel", "FORMAT_VERSION", "read_view", "write_view",
           "GenerateConfig", "GenerateError", "GenerateReport", "generate", "generate_scene", "scene_split",
           "InstanceRef", "build_instance", "instance_split"]
