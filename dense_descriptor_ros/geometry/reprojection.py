"""Dense ground-truth correspondences between two RGB-D views with known intrinsics and poses.

A pixel of view A is back-projected with its depth, moved into view B and projected. It is a valid
correspondence only if B actually sees that 3D point: the projected depth must agree with B's depth
map (interpolated at the sub-pixel position) within ``abs_tol + rel_tol * z``. This occlusion test
is what keeps points hidden behind other surfaces, or leaking through thin walls, out of the matches.

Tolerances:
    * synthetic (rendered) depth: ``abs_tol=0.001`` (1 mm), ``rel_tol=0``. Rendered depth is exact to
      about a micrometre; a looser tolerance (5 mm) lets points on the far side of a mug wall leak
      through the near side.
    * real sensors (structured light, stereo, ToF): ``abs_tol=0.01..0.02`` and ``rel_tol=0.01``
      (noise grows with distance; below that, noise marks true matches as occluded).

Depth is interpolated bilinearly in inverse depth 1/z: for a planar surface 1/z is an affine function
of the pixel coordinates, so the interpolation is exact inside a planar patch, and a mix of a near and
a far surface at a depth edge produces a depth that matches neither (so edge pixels are rejected).
"""

from __future__ import annotations

import torch

from ..checks import check_shape
from .camera import backproject, invert_pose, pixel_grid, project, transform_points

#: Occlusion tolerance for rendered depth (metres).
SYNTHETIC_ABS_TOL = 0.001
#: Occlusion tolerances for real depth sensors (metres, fraction of depth).
SENSOR_ABS_TOL = 0.015
SENSOR_REL_TOL = 0.01


def _depth_ok(d: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(d) & (d > 0)


def interpolate_depth(depth: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth at sub-pixel positions, bilinear in inverse depth.

    A position is valid when it lies inside [0, W-1] x [0, H-1] (1e-6 px slack) and every neighbour with a
    non-zero bilinear weight has a valid (finite, > 0) depth; a query at an exact pixel centre needs
    only that pixel.

    Shape:
        depth: (H, W) metres (0 or NaN = no measurement); uv: (..., 2) pixel (x, y).
        Returns z (...) (0 where invalid) and valid (...) bool.
    """
    check_shape(depth, ("H", "W"), "depth")
    check_shape(uv, (*uv.shape[:-1], 2), "uv")
    h, w = depth.shape
    eps = 1e-6  # round-off at the border pixels (a projection at -1e-14 is pixel 0)
    inside = (uv[..., 0] >= -eps) & (uv[..., 0] <= w - 1 + eps) & (uv[..., 1] >= -eps) & (uv[..., 1] <= h - 1 + eps)
    x, y = uv[..., 0].clamp(0, w - 1), uv[..., 1].clamp(0, h - 1)
    x0 = x.floor().clamp(0, max(w - 2, 0))
    y0 = y.floor().clamp(0, max(h - 2, 0))
    fx, fy = (x - x0).clamp(0, 1), (y - y0).clamp(0, 1)
    fx = torch.where(inside, fx, torch.zeros_like(fx))
    fy = torch.where(inside, fy, torch.zeros_like(fy))
    xi, yi = x0.long(), y0.long()
    x1, y1 = (xi + 1).clamp(max=w - 1), (yi + 1).clamp(max=h - 1)
    inv = torch.zeros_like(x)
    valid = inside.clone()
    for yy, xx, wt in ((yi, xi, (1 - fx) * (1 - fy)), (yi, x1, fx * (1 - fy)),
                       (y1, xi, (1 - fx) * fy), (y1, x1, fx * fy)):
        d = depth[yy, xx].to(x.dtype)
        ok = _depth_ok(d)
        valid &= ok | (wt == 0)
        inv = inv + torch.where(ok, wt / torch.where(ok, d, torch.ones_like(d)), torch.zeros_like(d))
    z = torch.where(valid, 1.0 / torch.where(valid, inv, torch.ones_like(inv)), torch.zeros_like(inv))
    return z, valid


def reproject_points(uv_a: torch.Tensor, z_a: torch.Tensor, K_a: torch.Tensor, T_world_cam_a: torch.Tensor,
                     depth_b: torch.Tensor, K_b: torch.Tensor, T_world_cam_b: torch.Tensor,
                     abs_tol: float = SYNTHETIC_ABS_TOL, rel_tol: float = 0.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Move pixels of A with known depth into B and test them against B's depth map.

    Shape:
        uv_a: (..., 2) pixel (x, y) in A; z_a: (...) depth in metres (invalid if 0, NaN or inf);
        K_a, K_b: (3, 3); T_world_cam_a, T_world_cam_b: (4, 4) OpenCV-axes camera poses;
        depth_b: (Hb, Wb). Returns uv_b (..., 2) (-1 where invalid) and valid (...) bool.
    """
    check_shape(z_a, uv_a.shape[:-1], "z_a")
    check_shape(T_world_cam_a, (4, 4), "T_world_cam_a")
    check_shape(T_world_cam_b, (4, 4), "T_world_cam_b")
    dtype = torch.promote_types(uv_a.dtype, torch.float32)
    uv_a, z_a = uv_a.to(dtype), z_a.to(dtype)
    ok_a = _depth_ok(z_a)
    z_safe = torch.where(ok_a, z_a, torch.ones_like(z_a))
    # compose poses in float64: the relative pose is what the precision depends on
    T_ba = (invert_pose(T_world_cam_b.to(torch.float64)) @ T_world_cam_a.to(torch.float64)).to(dtype)
    p_b = transform_points(T_ba.to(uv_a.device), backproject(uv_a, z_safe, K_a.to(uv_a.device)))
    uv_b, z_b = project(p_b, K_b.to(uv_a.device))
    front = ok_a & (z_b > 1e-9)
    uv_b = torch.where(front[..., None], uv_b, torch.full_like(uv_b, -1.0))
    z_seen, ok_b = interpolate_depth(depth_b.to(uv_a.device), uv_b)
    valid = front & ok_b & ((z_b - z_seen).abs() <= abs_tol + rel_tol * z_b)
    return torch.where(valid[..., None], uv_b, torch.full_like(uv_b, -1.0)), valid


def reproject(depth_a: torch.Tensor, K_a: torch.Tensor, T_world_cam_a: torch.Tensor,
              depth_b: torch.Tensor, K_b: torch.Tensor, T_world_cam_b: torch.Tensor,
              abs_tol: float = SYNTHETIC_ABS_TOL, rel_tol: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense A -> B correspondence map for every pixel of A (see the module docstring).

    Shape:
        depth_a: (H, W) metres; depth_b: (Hb, Wb); K_a, K_b: (3, 3); T_world_cam_*: (4, 4).
        Returns uv_b (H, W, 2) float pixel (x, y) in B, -1 where invalid, and valid (H, W) bool.
        Invalid: no depth in A (0, NaN, inf), behind B, outside B's image, no depth in B around the
        projection, or occluded in B (depth disagreement beyond the tolerance).
    """
    check_shape(depth_a, ("H", "W"), "depth_a")
    check_shape(depth_b, ("Hb", "Wb"), "depth_b")
    check_shape(K_a, (3, 3), "K_a")
    check_shape(K_b, (3, 3), "K_b")
    h, w = depth_a.shape
    dtype = torch.promote_types(depth_a.dtype, torch.float32)
    uv_a = pixel_grid(h, w, depth_a.device, dtype)
    return reproject_points(uv_a, depth_a.to(dtype), K_a, T_world_cam_a, depth_b, K_b, T_world_cam_b,
                            abs_tol=abs_tol, rel_tol=rel_tol)
