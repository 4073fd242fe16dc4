"""Object masks from depth alone (geometry/depth_clusters.py, issue #18): on an analytic tabletop, on real renders
of the simulator against its instance masks, and feeding the mask-guided sampling of bag training pairs."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.geometry.depth_clusters import (
    DepthClusterConfig,
    backproject,
    depth_clusters,
    fit_plane_ransac,
    mask_iou,
)

from ..sim.simdata import tiny_dataset

K = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
H, W = 240, 320


def tabletop(boxes, tilt_deg=35.0, table_half=0.45, wall_y=2.0):
    """Depth (H, W) and box ids (H, W) of a camera 0.7 m above a 0.9 m square table (z = 0), looking down
    `tilt_deg` (the top rows see the wall above the table's height); axis-aligned boxes (cx, cy, half_x, half_y,
    height) stand on it; a wall at y = wall_y rises from the floor (z = -0.75) behind it. Ray casting, exact."""
    tilt = np.radians(tilt_deg)
    # camera axes in the world: x right, y down-the-image, z forward (OpenCV)
    cx_ = np.array([1.0, 0, 0])
    cz_ = np.array([0, np.cos(tilt), -np.sin(tilt)])
    cy_ = np.cross(cz_, cx_)
    origin = np.array([0.0, -0.55, 0.7])
    u, v = np.meshgrid(np.arange(W) + 0.0, np.arange(H) + 0.0)
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    d = d_cam @ np.stack([cx_, cy_, cz_])  # world directions, z-component of d_cam = 1 -> t is camera depth
    best = np.full((H, W), np.inf)
    ids = np.zeros((H, W), np.int32)

    def hit_plane(axis, value, lo, hi, ident):
        nonlocal best
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - origin[axis]) / d[..., axis]
        t = np.where(np.isfinite(t), t, -1.0)
        p = origin + t[..., None] * d
        ok = (t > 0) & (t < best)
        for ax in range(3):
            if ax != axis:
                ok &= (p[..., ax] >= lo[ax] - 1e-9) & (p[..., ax] <= hi[ax] + 1e-9)
        best = np.where(ok, t, best)
        ids[ok] = ident

    hit_plane(2, 0.0, (-table_half, -table_half, 0), (table_half, table_half, 0), 0)  # table top
    hit_plane(2, -0.75, (-5, -5, 0), (5, wall_y, 0), 0)  # floor
    hit_plane(1, wall_y, (-5, 0, -0.75), (5, 0, 3), 0)  # wall
    for i, (bx, by, hx, hy, hz) in enumerate(boxes, start=1):
        lo, hi = (bx - hx, by - hy, 0.0), (bx + hx, by + hy, hz)
        for axis in range(3):
            for value in (lo[axis], hi[axis]):
                hit_plane(axis, value, lo, hi, i)
    depth = np.where(np.isfinite(best), best, 0.0).astype(np.float32)
    return depth, ids


BOXES = [(-0.15, 0.0, 0.05, 0.04, 0.12), (0.18, 0.1, 0.06, 0.06, 0.05), (0.0, 0.25, 0.03, 0.03, 0.2)]


def test_objects_on_an_analytic_tabletop_and_not_the_wall_behind():
    depth, ids = tabletop(BOXES)
    res = depth_clusters(depth, K)
    assert res.plane is not None and res.plane[3] > 0  # the camera on the positive side
    up = np.array([0, -np.cos(np.radians(35)), -np.sin(np.radians(35))])  # world up in camera coordinates
    assert res.plane[:3] @ up > 0.999  # the normal points up, towards the camera
    assert res.count == 3
    assert mask_iou(res.mask, ids > 0) > 0.9
    for i in (1, 2, 3):  # every box is one cluster of its own
        labels = np.unique(res.labels[ids == i])
        main = np.bincount(res.labels[ids == i]).argmax()
        assert main > 0 and (res.labels[ids == i] == main).mean() > 0.9, (i, labels)
    # the wall above the plane's extension (beyond the table edge) is background
    wall = (ids == 0) & (depth > 1.0) & (backproject(depth, K) @ res.plane[:3] + res.plane[3] > 0.05)
    assert wall.sum() > 1000 and not res.mask[wall].any()


def test_touching_boxes_at_different_depths_are_cut_apart():
    depth, ids = tabletop([(-0.05, 0.0, 0.05, 0.04, 0.15), (0.0, 0.2, 0.12, 0.04, 0.3)])
    res = depth_clusters(depth, K)
    assert res.count == 2
    a, b = (np.bincount(res.labels[ids == i]).argmax() for i in (1, 2))
    assert a != b and a > 0 and b > 0


def test_no_table_no_mask():
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.3, 3.0, (H, W)).astype(np.float32)
    res = depth_clusters(noise, K)
    assert res.count == 0 and not res.mask.any() and res.plane_fraction < 0.15
    empty = depth_clusters(np.zeros((H, W), np.float32), K)
    assert empty.plane is None and empty.count == 0
    nan = depth_clusters(np.full((H, W), np.nan, np.float32), K)
    assert nan.count == 0
    with pytest.raises(ValueError, match="expected depth"):
        depth_clusters(np.zeros((H, W, 1)), K)
    with pytest.raises(ValueError, match="expected depth"):
        depth_clusters(np.zeros((H, W)), np.eye(2))


def test_ransac_finds_the_dominant_plane_among_outliers():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-1, 1, (800, 2))
    plane_pts = np.c_[xy, 2.0 + 0.3 * xy[:, 0] + rng.normal(0, 0.002, 800)]
    outliers = rng.uniform(-1, 3, (300, 3))
    plane, inl = fit_plane_ransac(np.r_[plane_pts, outliers], 0.01, 100, np.random.default_rng(0))
    n = np.array([-0.3, 0.0, 1.0]) / np.linalg.norm([-0.3, 0.0, 1.0])
    assert abs(abs(plane[:3] @ n) - 1) < 1e-3 and plane[3] > 0
    assert inl[:800].mean() > 0.97 and inl[800:].mean() < 0.1
    assert fit_plane_ransac(np.zeros((2, 3)), 0.01, 10, np.random.default_rng(0))[0] is None


def test_masks_of_real_renders_match_the_simulators(tmp_path_factory):
    from dense_descriptor_ros.sim.dataset import SyntheticDataset

    ds = SyntheticDataset(tiny_dataset(tmp_path_factory))
    ious = []
    for scene in ds.scenes:
        for v in range(ds.num_views(scene)):
            view = ds.view(scene, v)
            res = depth_clusters(view.depth.numpy(), view.K.numpy())
            ious.append(mask_iou(res.mask, view.instance.numpy() > 0))
    assert np.mean(ious) > 0.85 and min(ious) > 0.6, ious
    # a stricter height threshold misses the flat parts of the objects: the default is not arbitrary
    view = ds.view(ds.scenes[0], 0)
    high = depth_clusters(view.depth.numpy(), view.K.numpy(), DepthClusterConfig(min_height=0.08))
    assert mask_iou(high.mask, view.instance.numpy() > 0) < ious[0]


def test_masks_survive_sensor_noise_and_fill_the_silhouettes_it_loses(tmp_path_factory):
    """Through the simulated sensor (sim/noise.py: quantised disparity, dropouts along silhouettes and on dark
    surfaces) the masks hold; growing the clusters into the lost silhouettes (rim_fill) is what keeps them."""
    from dense_descriptor_ros.sim.dataset import SyntheticDataset
    from dense_descriptor_ros.sim.noise import apply_depth_noise

    ds = SyntheticDataset(tiny_dataset(tmp_path_factory))
    ious = {3: [], 0: []}
    for n, scene in enumerate(ds.scenes):
        for v in range(ds.num_views(scene)):
            view = ds.view(scene, v)
            noisy = apply_depth_noise(view.depth.numpy(), view.rgb.numpy(), float(view.K[0, 0]),
                                      np.random.default_rng(10 * n + v))
            assert (noisy == 0).any()
            for fill in ious:
                res = depth_clusters(noisy, view.K.numpy(), DepthClusterConfig(rim_fill=fill))
                ious[fill].append(mask_iou(res.mask, view.instance.numpy() > 0))
    assert np.mean(ious[3]) > 0.72, ious
    assert np.mean(ious[3]) > np.mean(ious[0]) + 0.05
