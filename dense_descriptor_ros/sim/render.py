"""Rendering one view with pybullet's CPU renderer and turning the raw buffers into labelled data:
metric depth, instance / category / part masks, canonical object coordinates and projected keypoints.

Canonical coordinates are exact by construction: each pixel's depth is back-projected to the world,
moved into the frame of the object the segmentation mask names, and scaled by the instance's canonical
scale; parts come from the link index in the segmentation mask (one link per part).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as pb

from .camera import project as project_points
from .camera import projection_matrix, view_matrix, zbuffer_to_depth
from .scene import Lighting, SceneObject

#: keypoint visibility: distance (metres, and pixel footprints) between a keypoint and the rendered surface
KEYPOINT_MIN_TOL = 0.003
KEYPOINT_FOOTPRINTS = 2.0
_LINK_SLOTS = 64


@dataclass
class RenderSettings:
    """Image size, field of view and clipping planes of the rendered views."""

    width: int
    height: int
    fov_y_deg: float
    near: float
    far: float
    shadows: bool


def render(cid: int, s: RenderSettings, T_world_camera: np.ndarray, light: Lighting
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB (H, W, 3) uint8, depth (H, W) float32 metres (0 = nothing), raw segmentation (H, W) int32."""
    proj = projection_matrix(s.width, s.height, s.fov_y_deg, s.near, s.far)
    _, _, rgba, zbuf, seg = pb.getCameraImage(
        s.width, s.height, view_matrix(T_world_camera), proj,
        lightDirection=light.direction, lightColor=light.color, lightDistance=light.distance,
        shadow=int(s.shadows), lightAmbientCoeff=light.ambient, lightDiffuseCoeff=light.diffuse,
        lightSpecularCoeff=light.specular, renderer=pb.ER_TINY_RENDERER,
        flags=pb.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX, physicsClientId=cid)
    rgba = np.asarray(rgba, np.uint8).reshape(s.height, s.width, 4)
    depth = zbuffer_to_depth(np.asarray(zbuf, np.float32).reshape(s.height, s.width), s.near, s.far)
    return np.ascontiguousarray(rgba[..., :3]), depth, np.asarray(seg, np.int32).reshape(s.height, s.width)


def label_images(seg: np.ndarray, objects: list[SceneObject]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance, category and part masks (H, W) uint8 from pybullet's (object uid, link) segmentation."""
    max_uid = max([o.body for o in objects] + [0])
    nothing = (max_uid + 1) * _LINK_SLOTS  # the last table row: room, background, unknown links
    table = np.zeros((nothing + 1, 3), np.uint8)
    for o in objects:
        for slot, part in enumerate(o.link_parts):  # slot = link index + 1
            table[o.body * _LINK_SLOTS + slot] = (o.instance_id, o.category_id, part)
    uid = seg & 0xFFFFFF
    slot = (seg >> 24) & 0xFF
    key = np.where((seg >= 0) & (uid <= max_uid) & (slot < _LINK_SLOTS), uid * _LINK_SLOTS + slot, nothing)
    lab = table[key]
    return lab[..., 0], lab[..., 1], lab[..., 2]


def canonical_coordinates(depth: np.ndarray, instance: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                          objects: list[SceneObject]) -> np.ndarray:
    """(H, W, 3) float32 canonical object coordinates, NaN off category objects."""
    h, w = depth.shape
    n = max([o.instance_id for o in objects] + [0]) + 1
    T_oc = np.full((n, 4, 4), np.nan)  # camera -> object frame, pre-divided by the canonical scale
    for o in objects:
        if o.canonical_scale is not None:
            T_oc[o.instance_id] = np.diag([*(1.0 / o.canonical_scale), 1.0]) @ np.linalg.inv(o.T_world_object) \
                @ T_world_camera
    has = ~np.isnan(T_oc[:, 0, 0])
    ys, xs = np.nonzero(has[instance] & (depth > 0))
    out = np.full((h, w, 3), np.nan, np.float32)
    if ys.size:
        z = depth[ys, xs].astype(np.float64)
        pc = np.stack([(xs - K[0, 2]) / K[0, 0] * z, (ys - K[1, 2]) / K[1, 1] * z, z], 1)
        T = T_oc[instance[ys, xs]]
        out[ys, xs] = np.einsum("pij,pj->pi", T[:, :3, :3], pc) + T[:, :3, 3]
    return out


def project_keypoints(depth: np.ndarray, instance: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                      objects: list[SceneObject]) -> list[dict]:
    """Every category object's named keypoints in this view: pixel (x, y), depth z, in_image, visible.

    visible: the keypoint projects into the image in front of the camera, and one of the 3 x 3 pixels
    around its projection shows the same object at a rendered 3D point within
    max(KEYPOINT_MIN_TOL, KEYPOINT_FOOTPRINTS * z / fx) of it (so keypoints hidden behind other
    surfaces, on the far side of their own object or seen edge-on are not visible).
    """
    h, w = depth.shape
    out = []
    for o in objects:
        if not o.keypoints:
            continue
        names = list(o.keypoints)
        pts_w = np.array([o.keypoints[k] for k in names]) @ o.T_world_object[:3, :3].T + o.T_world_object[:3, 3]
        uv, z = project_points(pts_w, K, T_world_camera)
        for name, p, q, zz in zip(names, pts_w, uv, z, strict=True):
            inside = bool(zz > 0 and -0.5 <= q[0] < w - 0.5 and -0.5 <= q[1] < h - 0.5)
            visible = False
            if inside:
                x, y = int(round(q[0])), int(round(q[1]))
                y0, y1, x0, x1 = max(y - 1, 0), min(y + 2, h), max(x - 1, 0), min(x + 2, w)
                d = depth[y0:y1, x0:x1].astype(np.float64)
                ys, xs = np.mgrid[y0:y1, x0:x1]
                pc = np.stack([(xs - K[0, 2]) / K[0, 0] * d, (ys - K[1, 2]) / K[1, 1] * d, d], -1)
                pw = pc @ T_world_camera[:3, :3].T + T_world_camera[:3, 3]
                near = np.linalg.norm(pw - p, axis=-1) <= max(KEYPOINT_MIN_TOL, KEYPOINT_FOOTPRINTS * zz / K[0, 0])
                visible = bool((near & (d > 0) & (instance[y0:y1, x0:x1] == o.instance_id)).any())
            out.append({"instance_id": o.instance_id, "name": name, "part": o.keypoint_parts[name],
                        "uv": [float(q[0]), float(q[1])], "z": float(zz), "world": p.tolist(), "in_image": inside,
                        "visible": visible})
    return out
