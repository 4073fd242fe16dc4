"""pybullet camera conventions, checked against the renderer: intrinsics (principal point at
(W/2, H/2 - 1)), metric depth from the z-buffer and OpenCV camera poses."""

from __future__ import annotations

import numpy as np
import pybullet as pb
import pytest

from dense_descriptor_ros.sim.camera import (
    camera_pose,
    intrinsics,
    look_at,
    projection_matrix,
    view_matrix,
    zbuffer_to_depth,
)


@pytest.fixture
def client():
    cid = pb.connect(pb.DIRECT)
    yield cid
    pb.disconnect(physicsClientId=cid)


@pytest.mark.parametrize(("w", "h"), [(160, 120), (320, 240)])
def test_rendered_depth_matches_ray_plane_intersections(client, w, h):
    # a large tilted slab: its top face is the plane n . x = 0.01
    quat = pb.getQuaternionFromEuler([0.3, 0.5, 0.2])
    shape = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[1, 1, 0.01], physicsClientId=client)
    pb.createMultiBody(0, -1, shape, [0, 0, 0], quat, physicsClientId=client)
    n = np.asarray(pb.getMatrixFromQuaternion(quat)).reshape(3, 3)[:, 2]
    T = look_at(np.array([0.2, 0.3, 1.0]), np.zeros(3), roll_deg=7.0)
    near, far, fov = 0.05, 5.0, 45.0
    _, _, _, zbuf, _ = pb.getCameraImage(w, h, view_matrix(T), projection_matrix(w, h, fov, near, far),
                                         renderer=pb.ER_TINY_RENDERER, physicsClientId=client)
    depth = zbuffer_to_depth(np.asarray(zbuf).reshape(h, w), near, far)
    K = intrinsics(w, h, fov)
    assert K[0, 2] == w / 2 and K[1, 2] == h / 2 - 1
    ys, xs = np.mgrid[0:h, 0:w]
    d_cam = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones((h, w))], -1)
    d_w = d_cam @ T[:3, :3].T
    z_true = (0.01 - T[:3, 3] @ n) / (d_w @ n)
    on = (depth > 0) & (np.abs(depth - z_true) < 0.05)
    assert on.mean() > 0.9
    err = np.abs(depth - z_true)[on]
    assert np.median(err) < 1e-5  # ~1 um; a half-pixel principal-point error costs ~1 mm here
    # the alternative convention (W/2 - 0.5, H/2 - 0.5) is measurably worse
    d_alt = np.stack([(xs - (w / 2 - 0.5)) / K[0, 0], (ys - (h / 2 - 0.5)) / K[1, 1], np.ones((h, w))], -1)
    z_alt = (0.01 - T[:3, 3] @ n) / ((d_alt @ T[:3, :3].T) @ n)
    assert np.median(np.abs(depth - z_alt)[on]) > 50 * np.median(err)


def test_pose_round_trip_and_background():
    T = look_at(np.array([0.5, -0.4, 0.7]), np.array([0.0, 0.1, 0.0]), roll_deg=-12.0)
    np.testing.assert_allclose(camera_pose(view_matrix(T)), T, atol=1e-12)
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(T[:3, :3]), 1.0)
    # pybullet's own look-at gives the same camera (OpenGL axes = OpenCV axes with y, z flipped)
    v = pb.computeViewMatrix([0.5, -0.4, 0.7], [0.0, 0.1, 0.0], [0, 0, 1])
    np.testing.assert_allclose(camera_pose(v), look_at(np.array([0.5, -0.4, 0.7]), np.array([0.0, 0.1, 0.0])),
                               atol=1e-6)
    proj = pb.computeProjectionMatrixFOV(45.0, 4 / 3, 0.05, 5.0)
    np.testing.assert_allclose(projection_matrix(320, 240, 45.0, 0.05, 5.0), proj, rtol=1e-6, atol=1e-7)
    zb = np.array([[0.0, 1.0]], np.float32)
    np.testing.assert_allclose(zbuffer_to_depth(zb, 0.05, 5.0), [[0.05, 0.0]], rtol=1e-6)  # 1 = nothing drawn
