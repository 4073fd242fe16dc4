"""Ground truth of the rendered data, checked numerically: cross-view reprojection (cycle error, label
agreement), canonical coordinates on the object meshes, keypoints against the renderer, and the
cross-instance / keypoint correspondence functions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pybullet as pb
import pytest
import torch

from dense_descriptor_ros.data.synthetic import SyntheticDataset, SyntheticView
from dense_descriptor_ros.geometry.camera import invert_pose, project, transform_points
from dense_descriptor_ros.geometry.reprojection import interpolate_depth
from dense_descriptor_ros.sim.camera import intrinsics, look_at
from dense_descriptor_ros.sim.categories import CATEGORIES
from dense_descriptor_ros.sim.ground_truth import (
    cross_instance,
    cross_view,
    cycle_error,
    keypoint_matches,
    label_agreement,
)
from dense_descriptor_ros.sim.library import InstanceRef, build_instance, ensure_instance
from dense_descriptor_ros.sim.render import RenderSettings, label_images, project_keypoints, render
from dense_descriptor_ros.sim.scene import Lighting, add_instance, part_ids

from .simdata import point_triangle_distance, tiny_dataset


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    """Many small tensor ops: one thread (OpenMP hand-offs make them ~100x slower on a loaded machine)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SyntheticDataset:
    return SyntheticDataset(tiny_dataset(tmp_path_factory))


def all_pairs(data: SyntheticDataset):
    for scene in data.scenes:
        views = [data.view(scene, v) for v in range(data.num_views(scene))]
        yield from itertools.permutations(views, 2)


def test_cross_view_cycle_error_and_label_agreement(data):
    errors, stats = [], []
    for a, b in all_pairs(data):
        uv, valid = cross_view(a, b)
        assert valid.float().mean() > 0.1
        e = cycle_error(a, b, uv, valid)
        errors.append(e[torch.isfinite(e)])
        foot = label_agreement(a, b, uv, valid)
        near = label_agreement(a, b, uv, valid, footprint=False)
        stats.append([foot["instance"], foot["part"], near["instance"], near["part"], valid.sum()])
    e = torch.cat(errors)
    assert e.median() < 0.01  # pixels, A -> B -> A
    s = torch.tensor(stats, dtype=torch.float64)
    w = s[:, 4] / s[:, 4].sum()
    inst, part, inst_near, part_near = (w[:, None] * s[:, :4]).sum(0).tolist()
    assert inst >= 0.999 and part >= 0.999
    assert inst_near >= 0.999 and part_near >= 0.99


def test_canonical_coordinates_lie_on_the_labelled_part(data):
    g = torch.Generator().manual_seed(0)
    dists = []
    for scene in data.scenes:
        objects = data.scene(scene)["objects"]
        for v in range(data.num_views(scene)):
            view = data.view(scene, v)
            for o in objects:
                if o["category"] == "distractor":
                    continue
                cat, idx = o["key"].rsplit("_", 1)
                shape = build_instance(0, InstanceRef(cat, int(idx)))[1]
                meshes = {p.name: p.mesh for p in shape.parts}
                ys, xs = torch.nonzero((view.instance == o["instance_id"]) & view.coords_valid, as_tuple=True)
                for k in torch.randperm(ys.numel(), generator=g)[:40].tolist():
                    p_obj = view.coords[ys[k], xs[k]].double().numpy() * np.array(o["canonical_scale"])
                    mesh = meshes[data.parts[int(view.part[ys[k], xs[k]])]["name"]]
                    dists.append(point_triangle_distance(p_obj[None], mesh.vertices[mesh.faces]).min())
    dists = np.array(dists)
    assert dists.size > 300
    assert np.quantile(dists, 0.999) < 5e-5  # 50 um: the pixel's 3D point is on its part's mesh


def test_canonical_coordinates_give_the_cross_view_matches(data):
    """Nearest canonical coordinates on the same instance in another view reproduce the geometric
    match up to B's pixel sampling (compared in the metric object frame)."""
    near = []
    for a, b in list(all_pairs(data))[:4]:
        uv, valid = cross_view(a, b, same_instance=True)
        for inst in range(1, len(a.objects) + 1):
            o = a.objects[inst - 1]
            if o["category"] == "distractor":
                continue
            pts = torch.nonzero(valid & (a.instance == inst) & a.coords_valid)[:, [1, 0]][:300]
            if pts.shape[0] < 20:
                continue
            uv_c, dist, ok = cross_instance(a, inst, b, inst, pts)
            assert ok.float().mean() > 0.95
            scale = torch.tensor(o["canonical_scale"])
            p_a = a.coords[pts[:, 1], pts[:, 0]] * scale
            q = uv_c[ok].long()
            p_b = b.coords[q[:, 1], q[:, 0]] * scale
            footprint = a.depth[pts[:, 1], pts[:, 0]][ok] / a.K[0, 0]
            near.append((p_a[ok] - p_b).norm(dim=-1) <= 3 * footprint)
    assert torch.cat(near).float().mean() > 0.95


def test_stored_keypoints_project_onto_the_rendered_surface(data):
    """Stored projections agree with geometry.camera, and for visible keypoints the rendered pixel
    closest in 3D (7 x 7 search) sits at the projection and shows the keypoint's part."""
    at_projection, part_ok, total, interior = 0, 0, 0, 0
    for scene in data.scenes:
        objects = data.scene(scene)["objects"]
        for v in range(data.num_views(scene)):
            view = data.view(scene, v)
            for kp in view.keypoints:
                o = objects[kp["instance_id"] - 1]
                T_wo = torch.tensor(o["T_world_object"], dtype=torch.float64)
                p_w = transform_points(T_wo, torch.tensor(o["keypoints_object"][kp["name"]], dtype=torch.float64))
                torch.testing.assert_close(p_w, torch.tensor(kp["world"], dtype=torch.float64), atol=1e-9, rtol=0)
                uv, z = project(transform_points(invert_pose(view.T_world_camera), p_w), view.K)
                torch.testing.assert_close(uv, torch.tensor(kp["uv"], dtype=torch.float64), atol=1e-6, rtol=0)
                if not kp["visible"]:
                    continue
                x, y = round(kp["uv"][0]), round(kp["uv"][1])
                ys, xs = torch.meshgrid(torch.arange(y - 3, y + 4), torch.arange(x - 3, x + 4), indexing="ij")
                ys, xs = ys.clamp(0, 239), xs.clamp(0, 319)
                d = view.depth[ys, xs].double()
                pc = torch.stack([(xs - view.K[0, 2]) / view.K[0, 0] * d, (ys - view.K[1, 2]) / view.K[1, 1] * d, d],
                                 -1)
                dist = (transform_points(view.T_world_camera, pc) - p_w).norm(dim=-1)
                iy, ix = divmod(int(dist.argmin()), 7)
                total += 1
                at_projection += abs(iy - 3) <= 1 and abs(ix - 3) <= 1 and float(dist.min()) < 3 * float(z) / 290
                # keypoints on part boundaries (box corners, thin rims) may show a neighbouring part
                if not (kp["name"].startswith("rim") or kp["name"].count("_") == 2):
                    interior += 1
                    part_ok += data.parts[int(view.part[ys[iy, ix], xs[iy, ix]])]["name"] == kp["part"]
    assert total > 20 and at_projection / total > 0.9
    assert part_ok / interior > 0.9


@pytest.mark.parametrize("category", list(CATEGORIES))
def test_keypoints_against_a_controlled_render(category, tmp_path):
    """One instance alone, a camera 25 cm off each keypoint's surface: the renderer must draw the
    keypoint's part at its projection, at the keypoint's depth."""
    cid = pb.connect(pb.DIRECT)
    try:
        ref = InstanceRef(category, 3)
        model = ensure_instance(Path(tmp_path), 0, ref)
        obj = add_instance(cid, ref, model, 1, np.array([0.0, 0.0, 0.1]), [0, 0, 0, 1], part_ids())
        obj.T_world_object = np.eye(4)
        obj.T_world_object[2, 3] = 0.1
        settings = RenderSettings(320, 240, 45.0, 0.05, 5.0, False)
        light = Lighting([0.3, 0.2, 1.0], [1, 1, 1], 3.0, 0.6, 0.5, 0.1)
        K = intrinsics(320, 240, 45.0)
        centre = np.array([0.0, 0.0, 0.1 + 0.5 * model[1].canonical_scale[2]])
        for name, p_obj in model[1].keypoints.items():
            p = p_obj + np.array([0.0, 0.0, 0.1])
            corner = category == "box" and name.count("_") == 2
            if corner:
                out = p - centre
            elif name in ("inside_bottom", "top_center", "cap_top") or name.startswith("rim"):
                out = np.array([0.15, 0.1, 1.0])  # from above
            elif name == "bottom_center":
                out = np.array([0.15, 0.1, -1.0])  # from below
            elif name.startswith("handle"):  # away from the middle of the handle's arc
                out = p_obj - model[1].parts[1].mesh.vertices.mean(0)
            else:  # on the side: radially outwards
                out = np.array([p_obj[0], p_obj[1], 0.2 * np.hypot(p_obj[0], p_obj[1])])
            out = out / np.linalg.norm(out)
            up = np.array([0.0, 1.0, 0.0]) if abs(out[2]) > 0.9 else np.array([0.0, 0.0, 1.0])
            T = look_at(p + 0.25 * out, p + np.array([0.01, -0.008, 0.006]), up=up)  # keypoint off-centre
            rgb, depth, seg = render(cid, settings, T, light)
            inst, _, part = label_images(seg, [obj])
            kp = next(k for k in project_keypoints(depth, inst, K, T, [obj]) if k["name"] == name)
            assert kp["visible"], name
            assert np.hypot(kp["uv"][0] - K[0, 2], kp["uv"][1] - K[1, 2]) > 3  # off-centre: K is exercised
            if corner:  # on an edge: no depth to interpolate, but visible (rendered point nearby)
                continue
            z, ok = interpolate_depth(torch.from_numpy(depth).double(), torch.tensor(kp["uv"], dtype=torch.float64))
            x, y = round(kp["uv"][0]), round(kp["uv"][1])
            assert ok and abs(float(z) - kp["z"]) < 1e-3, name
            assert int(part[y, x]) == part_ids()[(category, model[1].keypoint_parts[name])], name
    finally:
        pb.disconnect(physicsClientId=cid)


def fake_view(coords: torch.Tensor, instance: torch.Tensor, objects: list[dict], keypoints=()) -> SyntheticView:
    h, w = instance.shape
    z = torch.zeros(h, w)
    return SyntheticView("s", 0, torch.zeros(h, w, 3, dtype=torch.uint8), z, instance, instance, instance, coords,
                         torch.isfinite(coords).all(-1), torch.eye(3, dtype=torch.float64),
                         torch.eye(4, dtype=torch.float64), list(keypoints), objects)


def test_cross_instance_nearest_canonical_coordinate_with_threshold():
    mug = {"category": "mug", "canonical_scale": [0.04, 0.04, 0.1]}
    # A: a 1 x 3 strip of one mug; B: the "same" points shifted by one pixel, on another mug
    ca = torch.tensor([[[0.0, 0.0, 0.1], [0.5, 0.0, 0.5], [0.9, 0.0, 0.9]]])
    cb = torch.full((1, 4, 3), float("nan"))
    cb[0, 1:] = ca[0] + torch.tensor([0.0, 0.0, 0.02])
    cb[0, 3, 2] += 0.2  # the third point has no counterpart within the threshold
    a = fake_view(ca, torch.tensor([[1, 1, 1]], dtype=torch.uint8), [mug])
    b = fake_view(cb, torch.tensor([[0, 2, 2, 2]], dtype=torch.uint8), [mug, mug])
    uv, dist, ok = cross_instance(a, 1, b, 2, torch.tensor([[0, 0], [1, 0], [2, 0]]), max_distance=0.05)
    assert ok.tolist() == [True, True, False]
    torch.testing.assert_close(uv[:2], torch.tensor([[1.0, 0.0], [2.0, 0.0]]))
    torch.testing.assert_close(dist[:2], torch.tensor([0.02, 0.02], dtype=torch.float64))
    assert (uv[2] == -1).all()
    dense_uv, _, dense_ok = cross_instance(a, 1, b, 2, max_distance=0.05)
    assert dense_uv.shape == (1, 3, 2) and dense_ok.tolist() == [[True, True, False]]
    bowl = {"category": "bowl", "canonical_scale": [0.08, 0.08, 0.05]}
    with pytest.raises(ValueError, match="one category"):
        cross_instance(a, 1, fake_view(cb, b.instance, [bowl, bowl]), 2)


def test_keypoint_matches_by_name():
    mug = {"category": "mug", "canonical_scale": [0.04, 0.04, 0.1]}
    kps_a = [{"instance_id": 1, "name": "rim_front", "uv": [3.0, 4.0], "visible": True},
             {"instance_id": 1, "name": "handle_top", "uv": [5.0, 6.0], "visible": True},
             {"instance_id": 1, "name": "bottom_center", "uv": [1.0, 1.0], "visible": False}]
    kps_b = [{"instance_id": 2, "name": "handle_top", "uv": [7.0, 8.0], "visible": True},
             {"instance_id": 2, "name": "bottom_center", "uv": [2.0, 2.0], "visible": True},
             {"instance_id": 1, "name": "rim_front", "uv": [9.0, 9.0], "visible": True}]
    c = torch.zeros(2, 2, 3)
    a = fake_view(c, torch.ones(2, 2, dtype=torch.uint8), [mug], kps_a)
    b = fake_view(c, torch.ones(2, 2, dtype=torch.uint8), [{"category": "distractor"}, mug], kps_b)
    names, uv_a, uv_b = keypoint_matches(a, 1, b, 2)
    assert names == ["handle_top"]
    torch.testing.assert_close(uv_a, torch.tensor([[5.0, 6.0]]))
    torch.testing.assert_close(uv_b, torch.tensor([[7.0, 8.0]]))
    with pytest.raises(ValueError):
        keypoint_matches(a, 1, b, 1)  # a distractor has no keypoints
