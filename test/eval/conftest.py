"""Shared fixtures of the evaluation tests: a tiny synthetic dataset and a tiny image folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

#: 2 scenes x 3 views at 160x120 with 5 category objects each (10 objects over 5 categories: at least one
#: category has two different instances, which the cross-instance set needs). About 2 s.
TINY_SIM = dict(scenes=2, views=3, width=160, height=120, objects_min=5, objects_max=5, distractors_max=1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="session")
def sim_root(tmp_path_factory) -> Path:
    from dense_descriptor_ros.sim.generator import GenerateConfig, generate

    root = tmp_path_factory.getbasetemp() / "eval_sim_tiny"
    if not (root / "scenes" / "scene_000001" / "scene.json").is_file():
        generate(GenerateConfig(**TINY_SIM), root, workers=1, progress=False)
    return root


def smooth_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """RGB uint8 with structure at several scales (bilinear noise) and no flat regions."""
    img = np.zeros((h, w, 3), np.float32)
    for s in (3, 6, 12, 24):
        small = rng.random((h // s + 2, w // s + 2, 3)).astype(np.float32)
        img += cv2.resize(small, (w + 2 * s, h + 2 * s), interpolation=cv2.INTER_CUBIC)[s:s + h, s:s + w] / 4
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """Two readable textured images and one corrupt file."""
    d = tmp_path_factory.mktemp("eval_photos")
    rng = np.random.default_rng(3)
    for i in range(2):
        cv2.imwrite(str(d / f"photo{i}.png"), smooth_texture(rng, 150, 200))
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return d
