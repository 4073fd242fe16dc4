"""Dense RGB-D reprojection against analytic scenes: exact disparities, occlusion, thin walls, holes."""

from __future__ import annotations

import math

import pytest
import torch

from dense_descriptor_ros.geometry.camera import invert_pose, look_at, pixel_grid, project, transform_points
from dense_descriptor_ros.geometry.reprojection import interpolate_depth, reproject, reproject_points

H, W = 60, 80
K = torch.tensor([[70.0, 0.0, 40.0], [0.0, 70.0, 29.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def ray_depth(T_wc: torch.Tensor, planes: list[tuple], h: int = H, w: int = W) -> torch.Tensor:
    """Analytic depth map of planes n . X = d (optionally limited to a box [lo, hi] in world
    coordinates): per pixel the nearest positive hit, 0 where nothing is hit."""
    uv = pixel_grid(h, w, dtype=torch.float64)
    d_cam = torch.stack([(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1],
                         torch.ones(h, w, dtype=torch.float64)], -1)
    d_w = d_cam @ T_wc[:3, :3].T
    o = T_wc[:3, 3]
    best = torch.full((h, w), math.inf, dtype=torch.float64)
    for n, d, lo, hi in planes:
        n = torch.tensor(n, dtype=torch.float64)
        z = (d - n @ o) / (d_w @ n)  # depth along the optical axis (d_cam has unit z)
        p = o + z[..., None] * d_w
        ok = z > 1e-6
        if lo is not None:
            ok &= ((p >= torch.tensor(lo) - 1e-12) & (p <= torch.tensor(hi) + 1e-12)).all(-1)
        best = torch.where(ok & (z < best), z, best)
    return torch.where(torch.isfinite(best), best, torch.zeros_like(best))


def pose(eye, target, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    return look_at(torch.tensor(eye, dtype=torch.float64), torch.tensor(target, dtype=torch.float64),
                   torch.tensor(up, dtype=torch.float64))


def test_stereo_plane_has_exact_disparity():
    # fronto-parallel plane at z = 2 in camera A; B is A shifted 0.1 m to the right
    depth = torch.full((H, W), 2.0, dtype=torch.float64)
    T_a = torch.eye(4, dtype=torch.float64)
    T_b = T_a.clone()
    T_b[0, 3] = 0.1
    uv, valid = reproject(depth, K, T_a, depth, K, T_b)
    grid = pixel_grid(H, W, dtype=torch.float64)
    expected = grid - torch.tensor([70.0 * 0.1 / 2.0, 0.0], dtype=torch.float64)  # fx * b / z = 3.5 px
    inside = expected[..., 0] >= 0
    assert torch.equal(valid, inside)
    torch.testing.assert_close(uv[valid], expected[valid], atol=1e-9, rtol=0)
    assert (uv[~valid] == -1).all()


def test_identity_view_maps_every_pixel_to_itself():
    T = pose((0.3, -0.2, 1.0), (0.0, 0.0, 0.0))
    depth = ray_depth(T, [((0.0, 0.0, 1.0), 0.0, None, None)])
    uv, valid = reproject(depth, K, T, depth, K, T)
    assert valid.all()
    torch.testing.assert_close(uv, pixel_grid(H, W, dtype=torch.float64), atol=1e-9, rtol=0)


SCENE = [((0.0, 0.0, 1.0), 0.0, None, None),  # table z = 0
         ((0.0, 0.0, 1.0), 0.3, (-0.1, -0.1, 0.29), (0.1, 0.1, 0.31))]  # a 20 cm square 30 cm above it


def test_occluded_points_are_rejected_and_visible_ones_exact():
    T_a = pose((0.0, 0.01, 1.5), (0.0, 0.0, 0.0))
    T_b = pose((0.9, 0.0, 1.0), (0.0, 0.0, 0.0))
    d_a, d_b = ray_depth(T_a, SCENE), ray_depth(T_b, SCENE)
    uv, valid = reproject(d_a, K, T_a, d_b, K, T_b)
    # analytic truth: the 3D point of every A pixel, its projection in B, and whether the segment
    # from B's centre to it crosses the square (occluded)
    grid = pixel_grid(H, W, dtype=torch.float64)
    from dense_descriptor_ros.geometry.camera import backproject

    p_w = transform_points(T_a, backproject(grid, d_a, K))
    uv_true, z_true = project(transform_points(invert_pose(T_b), p_w), K)
    o = T_b[:3, 3]
    s = (0.3 - o[2]) / (p_w[..., 2] - o[2])  # where the segment crosses the square's plane
    hit = o + s[..., None] * (p_w - o)
    on_table = p_w[..., 2].abs() < 1e-6
    crossing = (s > 0) & (s < 1 - 1e-9)
    inside_margin = (hit[..., :2].abs() < 0.1 - 0.01).all(-1)
    outside_margin = (hit[..., :2].abs() > 0.1 + 0.01).any(-1)
    in_frame = (uv_true[..., 0] >= 1) & (uv_true[..., 0] <= W - 2) & (uv_true[..., 1] >= 1) & (uv_true[..., 1] <= H - 2)
    occluded = on_table & crossing & inside_margin
    visible = on_table & (~crossing | outside_margin) & in_frame
    assert occluded.sum() > 50 and visible.sum() > 500  # the scene exercises both cases
    assert not valid[occluded].any()
    assert valid[visible].float().mean() > 0.99
    torch.testing.assert_close(uv[valid & visible], uv_true[valid & visible], atol=1e-6, rtol=0)


@pytest.mark.parametrize(("abs_tol", "leaks"), [(0.001, False), (0.005, True)])
def test_thin_wall_leaks_only_with_a_loose_tolerance(abs_tol, leaks):
    # a 3 mm thick wall between x = 0 and x = 0.003; A sees its +x face, B its -x face
    wall = [((1.0, 0.0, 0.0), 0.003, None, None), ((1.0, 0.0, 0.0), 0.0, None, None)]
    T_a = pose((1.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    T_b = pose((-1.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    d_a = ray_depth(T_a, wall[:1])  # the +x face, as A sees it
    d_b = ray_depth(T_b, wall[1:])  # the -x face, as B sees it
    _, valid = reproject(d_a, K, T_a, d_b, K, T_b, abs_tol=abs_tol)
    assert valid.float().mean() > 0.5 if leaks else not valid.any()


def test_invalid_depth_behind_and_relative_tolerance():
    T = pose((0.0, 0.0, 1.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    depth = ray_depth(T, SCENE[:1])
    d_a = depth.clone()
    d_a[0, 0], d_a[0, 1], d_a[0, 2] = 0.0, math.nan, math.inf
    uv, valid = reproject(d_a, K, T, depth, K, T)
    assert not valid[0, :3].any() and valid[1:].all()
    # a hole in B's depth next to a projection invalidates it (4 neighbours needed)
    d_b = depth.clone()
    d_b[10, 20] = 0.0
    uv_a = torch.tensor([[20.5, 10.5], [30.5, 30.5]], dtype=torch.float64)
    z_a, _ = interpolate_depth(depth, uv_a)
    _, ok = reproject_points(uv_a, z_a, K, T, d_b, K, T)
    assert ok.tolist() == [False, True]
    # B behind A, looking away: nothing is in front of B
    T_away = pose((0.0, 0.0, 1.5), (0.0, 0.0, 3.0), up=(0.0, 1.0, 0.0))
    _, valid = reproject(depth, K, T, depth, K, T_away)
    assert not valid.any()
    # B's depth 1 cm too far (0.5 % at 2 m): rejected at 1 mm, accepted with 1 % relative tolerance
    T2 = pose((0.0, 0.0, 2.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    d2 = ray_depth(T2, SCENE[:1])
    assert not reproject(d2, K, T2, d2 * 1.005, K, T2)[1].any()
    assert reproject(d2, K, T2, d2 * 1.005, K, T2, abs_tol=0.001, rel_tol=0.01)[1].all()


def test_interpolation_is_exact_on_planes_in_inverse_depth():
    T = pose((0.4, -0.3, 0.8), (0.0, 0.1, 0.0))
    depth = ray_depth(T, SCENE[:1])
    uv = torch.tensor([[10.25, 20.75], [33.5, 5.5], [70.9, 50.1]], dtype=torch.float64)
    z, ok = interpolate_depth(depth, uv)
    # analytic depth at those sub-pixel positions: the ray through uv hits the plane z = 0
    d_cam = torch.stack([(uv[:, 0] - K[0, 2]) / K[0, 0], (uv[:, 1] - K[1, 2]) / K[1, 1], torch.ones(3,
                         dtype=torch.float64)], -1)
    z_true = -T[2, 3] / (d_cam @ T[2, :3])
    assert ok.all()
    torch.testing.assert_close(z, z_true, atol=1e-12, rtol=1e-12)
    # a pixel centre needs only its own pixel; outside the image is invalid
    holes = depth.clone()
    holes[6, 34] = math.nan
    z, ok = interpolate_depth(holes, torch.tensor([[33.0, 5.0], [33.5, 5.5], [-0.1, 3.0], [79.0, 59.0]]))
    assert ok.tolist() == [True, False, False, True]
    assert z[0] == pytest.approx(float(depth[5, 33]))


def test_dtype_and_shape_checks():
    depth = torch.full((H, W), 2.0, dtype=torch.float32)
    uv, valid = reproject(depth, K.float(), torch.eye(4), depth, K.float(), torch.eye(4))
    assert uv.dtype == torch.float32 and uv.shape == (H, W, 2) and valid.dtype == torch.bool
    with pytest.raises(ValueError):
        reproject(depth[None], K, torch.eye(4), depth, K, torch.eye(4))
    with pytest.raises(ValueError):
        reproject(depth, K, torch.eye(3), depth, K, torch.eye(4))
