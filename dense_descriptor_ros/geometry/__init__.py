"""Camera geometry: pinhole projection, poses and RGB-D reprojection (ground-truth correspondences)."""

from .camera import (
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
from .lifting import depth_to_meters, lift_correspondences, lift_points
from .reprojection import (
           SENSOR_ABS_TOL,
           SENSOR_REL_TOL,
           SYNTHETIC_ABS_TOL,
           interpolate_depth,
           reproject,
           reproject_points,
)

__all__ = ["backproject", "backproject_depth", "invert_pose", "look_at", "pixel_grid", "project",
           "scale_intrinsics", "transform_points", "view_angle_deg", "SENSOR_ABS_TOL", "SENSOR_REL_TOL",
           "SYNTHETIC_ABS_TOL", "interpolate_depth", "reproject", "reproject_points", "depth_to_meters",
           "lift_correspondences", "lift_points"]
