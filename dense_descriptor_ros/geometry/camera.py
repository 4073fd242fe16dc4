"""Pinhole camera maths: projection, back-projection and rigid poses (torch, device-agnostic).

Conventions used across the package:
    * pixels are (x, y) = (column, row) with pixel centres at integers;
    * K is the 3x3 intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]];
    * a camera pose is T_world_camera (4x4): it maps camera coordinates to world coordinates, with
      OpenCV camera axes (x right, y down, z forward, along the optical axis);
    * depth is the z coordinate in the camera frame in metres (not the ray length).
"""

from __future__ import annotations

import math

import torch

from ..checks import check_shape


def pixel_grid(h: int, w: int, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(h, w, 2) grid of pixel centres (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply a (4, 4) rigid transform to (..., 3) points."""
    check_shape(T, (4, 4), "T")
    T = T.to(points)
    return points @ T[:3, :3].transpose(0, 1) + T[:3, 3]


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Inverse of a (4, 4) rigid transform (R, t) -> (R^T, -R^T t), exact for rotations."""
    check_shape(T, (4, 4), "T")
    R, t = T[:3, :3], T[:3, 3]
    out = torch.eye(4, dtype=T.dtype, device=T.device)
    out[:3, :3] = R.transpose(0, 1)
    out[:3, 3] = -(R.transpose(0, 1) @ t)
    return out


def project(points_cam: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points to pixels.

    Shape:
        points_cam: (..., 3); K: (3, 3). Returns uv (..., 2) and z (...). Points with z <= 0 get
        non-finite or meaningless uv: callers must test z > 0.
    """
    check_shape(points_cam, (*points_cam.shape[:-1], 3), "points_cam")
    check_shape(K, (3, 3), "K")
    K = K.to(points_cam)
    z = points_cam[..., 2]
    x = points_cam[..., 0] / z
    y = points_cam[..., 1] / z
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    return torch.stack([u, v], dim=-1), z


def backproject(uv: torch.Tensor, z: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels (..., 2) with depth z (...) -> camera-frame points (..., 3) (inverse of `project`)."""
    check_shape(uv, (*z.shape, 2), "uv")
    check_shape(K, (3, 3), "K")
    K = K.to(uv)
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return torch.stack([x * z, y * z, z], dim=-1)


def backproject_depth(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(H, W) depth map in metres -> (H, W, 3) camera-frame points at every pixel centre."""
    check_shape(depth, ("H", "W"), "depth")
    h, w = depth.shape
    return backproject(pixel_grid(h, w, depth.device, depth.dtype), depth, K)


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Intrinsics of the same camera after resizing the image by (sx, sy).

    With pixel centres at integers a resize maps x -> (x + 0.5) * sx - 0.5, so the principal point
    moves by (s - 1) / 2 besides scaling.
    """
    check_shape(K, (3, 3), "K")
    S = torch.tensor([[sx, 0.0, 0.5 * (sx - 1.0)], [0.0, sy, 0.5 * (sy - 1.0)], [0.0, 0.0, 1.0]],
                     dtype=K.dtype, device=K.device)
    return S @ K


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """T_world_camera (OpenCV axes) of a camera at `eye` whose optical axis points at `target`.

    `up` (world, default +z) appears upwards in the image; it must not be parallel to the view direction.
    """
    eye, target = eye.to(torch.float64), target.to(torch.float64)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) if up is None else up.to(torch.float64)
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up.to(z.device))
    if x.norm() < 1e-9:
        raise ValueError("look_at: up is parallel to the viewing direction")
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    T = torch.eye(4, dtype=torch.float64, device=eye.device)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def view_angle_deg(T_a: torch.Tensor, T_b: torch.Tensor) -> float:
    """Angle in degrees between the optical axes of two camera poses T_world_camera."""
    check_shape(T_a, (4, 4), "T_a")
    check_shape(T_b, (4, 4), "T_b")
    c = float((T_a[:3, 2].double() @ T_b[:3, 2].double()).clamp(-1.0, 1.0))
    return math.degrees(math.acos(c))
