"""A tiny synthetic dataset with train and test scenes (scene 9 is a test scene: held-out instances)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: 10 scenes x 2 views at 160x120: train scenes 0-6, test scene 9. About 4 s.
TINY = dict(scenes=10, views=2, width=160, height=120, seed=0, objects_min=3, objects_max=4, distractors_max=0,
            instances_per_category=10, settle_steps=240)


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory) -> Path:
    from dense_descriptor_ros.sim.generator import GenerateConfig, generate

    root = tmp_path_factory.getbasetemp() / "probe_sim_tiny"
    generate(GenerateConfig(**TINY), root, workers=1, progress=False)
    return root
