"""Pinhole camera helpers: hand-computed projections, pose inversion, look-at, resized intrinsics."""

from __future__ import annotations

import math

import pytest
import torch

from dense_descriptor_ros.geometry.camera import (
    backproject,
    backproject_depth,
    invert_pose,
    look_at,
    pixel_grid,
    project,
    scale_intrinsics,
    transform_points,
    view_angle_deg,
)

K = torch.tensor([[500.0, 0.0, 40.0], [0.0, 400.0, 30.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def rot_z(deg: float) -> torch.Tensor:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def test_project_hand_computed():
    uv, z = project(torch.tensor([[0.1, -0.2, 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64), K)
    # u = fx x / z + cx = 500 * 0.05 + 40, v = 400 * -0.1 + 30
    torch.testing.assert_close(uv, torch.tensor([[65.0, -10.0], [40.0, 30.0]], dtype=torch.float64))
    torch.testing.assert_close(z, torch.tensor([2.0, 1.0], dtype=torch.float64))


def test_backproject_inverts_project():
    p = torch.tensor([[0.3, -0.1, 1.7], [-0.4, 0.25, 0.6]], dtype=torch.float64)
    uv, z = project(p, K)
    torch.testing.assert_close(backproject(uv, z, K), p)


def test_backproject_depth_grid():
    depth = torch.full((3, 4), 2.0, dtype=torch.float64)
    pts = backproject_depth(depth, K)
    assert pts.shape == (3, 4, 3)
    # pixel (x=3, y=2): ((3 - 40) * 2 / 500, (2 - 30) * 2 / 400, 2)
    torch.testing.assert_close(pts[2, 3], torch.tensor([-37 * 2 / 500, -28 * 2 / 400, 2.0], dtype=torch.float64))
    torch.testing.assert_close(pixel_grid(3, 4)[2, 3], torch.tensor([3.0, 2.0]))


def test_invert_pose_and_transform():
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = rot_z(30)
    T[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(invert_pose(T) @ T, torch.eye(4, dtype=torch.float64))
    # rotate (1, 0, 0) by 30 degrees about z, then translate
    out = transform_points(T, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[1 + math.sqrt(3) / 2, 2.5, 3.0]], dtype=torch.float64))


def test_look_at_opencv_axes():
    # camera 1 m above the origin looking down, world +y shows up in the image ("up" = +y)
    T = look_at(torch.tensor([0.0, 0.0, 1.0]), torch.zeros(3), up=torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(T[:3, 2], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))  # forward
    torch.testing.assert_close(T[:3, 1], torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))  # image down
    # right-handed: x = y x z = (-y) x (-z) = +x, as on a map seen from above with north up
    torch.testing.assert_close(T[:3, 0], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))  # image right
    uv, z = project(transform_points(invert_pose(T), torch.zeros(1, 3, dtype=torch.float64)), K)
    torch.testing.assert_close(uv, K[:2, 2][None])
    with pytest.raises(ValueError):
        look_at(torch.tensor([0.0, 0.0, 1.0]), torch.zeros(3))  # up parallel to the view direction


def test_scale_intrinsics_matches_resized_pixel_centres():
    # a 2x downscale: pixel centre x maps to (x + 0.5) / 2 - 0.5
    K2 = scale_intrinsics(K, 0.5, 0.5)
    p = torch.tensor([[0.13, -0.07, 1.3]], dtype=torch.float64)
    uv, _ = project(p, K)
    uv2, _ = project(p, K2)
    torch.testing.assert_close(uv2, (uv + 0.5) * 0.5 - 0.5)
    torch.testing.assert_close(K2[0, 2], torch.tensor(19.75, dtype=torch.float64))


def test_view_angle():
    a = torch.eye(4, dtype=torch.float64)
    b = torch.eye(4, dtype=torch.float64)
    b[:3, :3] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    assert view_angle_deg(a, a) == pytest.approx(0.0, abs=1e-6)
    assert view_angle_deg(a, b) == pytest.approx(90.0)


def test_shape_checks():
    with pytest.raises(ValueError):
        project(torch.zeros(5, 2), K)
    with pytest.raises(ValueError):
        invert_pose(torch.eye(3))
