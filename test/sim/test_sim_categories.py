"""Procedural categories: enough distinct instances, parts and keypoints on the surface, a shared
canonical frame, and a disjoint instance split."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.sim.categories import CATEGORIES
from dense_descriptor_ros.sim.library import InstanceRef, build_instance, instance_split

from .simdata import point_triangle_distance
from .test_sim_mesh import winding_agrees

N_INSTANCES = 50


@pytest.mark.parametrize("name", list(CATEGORIES))
def test_fifty_distinct_instances(name):
    params = [build_instance(0, InstanceRef(name, i))[0] for i in range(N_INSTANCES)]
    keys = {tuple(round(v, 9) for v in p.values()) for p in params}
    assert len(keys) == N_INSTANCES
    # a different object seed gives other shapes; the same seed the same ones
    assert build_instance(1, InstanceRef(name, 0))[0] != params[0] == build_instance(0, InstanceRef(name, 0))[0]


@pytest.mark.parametrize("name", list(CATEGORIES))
def test_parts_keypoints_and_canonical_frame(name):
    cat = CATEGORIES[name]
    for i in range(0, N_INSTANCES, 7):
        _, shape, look = build_instance(0, InstanceRef(name, i))
        assert [p.name for p in shape.parts] == list(cat.parts)
        assert list(shape.keypoints) == list(cat.keypoints)
        assert shape.parts[0].hull is not None  # the base link collides
        assert look.texture.shape == (128, 128, 3) and set(look.colors) == set(cat.parts)
        size = np.ptp(np.concatenate([p.mesh.vertices for p in shape.parts]), axis=0)
        assert (size > 0.02).all() and (size < 0.35).all()
        for part in shape.parts:
            assert winding_agrees(part.mesh), part.name
        parts = {p.name: p.mesh for p in shape.parts}
        for kp, xyz in shape.keypoints.items():
            mesh = parts[shape.keypoint_parts[kp]]
            d = point_triangle_distance(xyz[None], mesh.vertices[mesh.faces]).min()
            assert d < 2e-6, f"{name}_{i} {kp} is {d * 1000:.3f} mm off its part"
        canon = {k: v / shape.canonical_scale for k, v in shape.keypoints.items()}
        if "bottom_center" in canon:
            np.testing.assert_allclose(canon["bottom_center"], 0.0, atol=1e-9)
        for kp, c in canon.items():  # the body spans about [-1, 1]^2 x [0, 1]
            assert -1.0 - 1e-6 <= c[2] <= 1.0 + 1e-6
            if kp.endswith("front") or "_front_" in kp:
                assert c[0] < -0.2, kp
            if kp.endswith("back") or "_back_" in kp:
                assert c[0] > 0.2, kp


def test_mug_keypoints_follow_the_shape_parameters():
    for i in range(5):
        params, shape, _ = build_instance(0, InstanceRef("mug", i))
        c = {k: v / shape.canonical_scale for k, v in shape.keypoints.items()}
        assert c["rim_front"][2] == pytest.approx(1.0) and c["rim_back"][2] == pytest.approx(1.0)
        assert c["handle_outer"][0] > 1.0  # outside the body, on the handle side (+x)
        assert c["handle_top"][2] > c["handle_bottom"][2]
        reach = (shape.keypoints["handle_outer"][0] - shape.canonical_scale[0])
        assert reach == pytest.approx(params["handle_reach"] + params["handle_radius"], abs=0.01)


def test_instance_split_is_disjoint_and_complete():
    for name in CATEGORIES:
        s = instance_split(0, name, 60)
        sets = [set(s[k]) for k in ("train", "val", "test")]
        assert [len(x) for x in sets] == [48, 6, 6]
        assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert set().union(*sets) == set(range(60))
        assert s == instance_split(0, name, 60) and s != instance_split(1, name, 60)
