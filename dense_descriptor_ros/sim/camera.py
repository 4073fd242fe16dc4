"""pybullet camera conventions <-> pinhole intrinsics K and T_world_camera (numpy, measured).

pybullet takes OpenGL-style view and projection matrices (column-major 16-float lists). For its CPU
renderer (TinyRenderer) we measured, against analytic ray/plane intersections, that the image of a
symmetric frustum has fx = P[0,0] W/2, fy = P[1,1] H/2 and principal point (W/2, H/2 - 1) in our
pixel-centre convention (depth agrees with exact intersections to ~1 um); metric depth is
z = far near / (far - (far - near) zbuf). The OpenGL camera looks along -z with y up; OpenCV axes are
x right, y down, z forward, hence the diag(1, -1, -1) flips below.
"""

from __future__ import annotations

import math

import numpy as np

_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def projection_matrix(width: int, height: int, fov_y_deg: float, near: float, far: float) -> list[float]:
    """OpenGL projection of a symmetric frustum (what pybullet.computeProjectionMatrixFOV returns)."""
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2)
    P = np.zeros((4, 4))
    P[0, 0], P[1, 1] = f * height / width, f
    P[2, 2], P[2, 3] = (near + far) / (near - far), 2 * near * far / (near - far)
    P[3, 2] = -1.0
    return P.T.ravel().tolist()


def intrinsics(width: int, height: int, fov_y_deg: float) -> np.ndarray:
    """K (3, 3) of TinyRenderer images rendered with `projection_matrix` (pixel centres at integers)."""
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0 - 1.0], [0.0, 0.0, 1.0]])


def view_matrix(T_world_camera: np.ndarray) -> list[float]:
    """OpenGL view matrix (column-major list) of an OpenCV-axes camera pose."""
    return (_FLIP @ np.linalg.inv(T_world_camera)).T.ravel().tolist()


def camera_pose(view: list[float] | np.ndarray) -> np.ndarray:
    """T_world_camera (OpenCV axes) from an OpenGL view matrix (column-major list)."""
    return np.linalg.inv(_FLIP @ np.asarray(view, np.float64).reshape(4, 4).T)


def zbuffer_to_depth(zbuf: np.ndarray, near: float, far: float) -> np.ndarray:
    """TinyRenderer z-buffer in [0, 1] -> float32 metric depth, 0 where nothing was drawn."""
    zb = np.asarray(zbuf, np.float64)
    z = far * near / (far - (far - near) * zb)
    return np.where(zb < 1.0, z, 0.0).astype(np.float32)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0]),  # noqa: B008
            roll_deg: float = 0.0) -> np.ndarray:
    """T_world_camera (OpenCV axes) at `eye` looking at `target`, `up` pointing up in the image, then
    rolled about the optical axis by `roll_deg`."""
    z = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: up is parallel to the viewing direction")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    x, y = c * x + s * y, -s * x + c * y
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def project(points_world: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) world points -> pixels (N, 2) (x, y) and depth z (N,)."""
    T_cw = np.linalg.inv(T_world_camera)
    pc = points_world @ T_cw[:3, :3].T + T_cw[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * pc[:, 0] / z + K[0, 2]
        v = K[1, 1] * pc[:, 1] / z + K[1, 2]
    return np.stack([u, v], 1), z


def backproject_depth(depth: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) world points at the pixel centres (float64)."""
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    z = depth.astype(np.float64)
    pc = np.stack([(xs - K[0, 2]) / K[0, 0] * z, (ys - K[1, 2]) / K[1, 1] * z, z], -1)
    return pc @ T_world_camera[:3, :3].T + T_world_camera[:3, 3]
