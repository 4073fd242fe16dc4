"""Per-object glossy highlights added to a rendered view (the realistic look).

TinyRenderer applies one specular coefficient to the whole image, tinted by the texture colour, and
ignores per-object specular colours (measured: `changeVisualShape(specularColor=...)` leaves the image
unchanged). So highlights are added after rendering, Blinn-Phong style, from the exact rendered depth:
surface normals from the back-projected depth (smoothed within each instance), the scene's light
direction and colour, and each instance's material (gloss, shininess). Only the RGB changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from .textures import Material


def depth_normals(depth: np.ndarray, K: np.ndarray, instance: np.ndarray, smooth_px: float = 1.5
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame points, unit normals facing the camera and a validity mask from rendered depth.

    Normals are cross products of central differences, set invalid where a neighbour lies on another
    instance or across a depth jump, then averaged over a Gaussian window inside the valid region.

    Shape:
        depth: (H, W) metres; K: (3, 3); instance: (H, W) -> points (H, W, 3), normals (H, W, 3), valid (H, W).
    """
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    z = depth.astype(np.float32)
    P = np.stack([(xs - K[0, 2]) / K[0, 0] * z, (ys - K[1, 2]) / K[1, 1] * z, z], -1)
    dx = np.zeros_like(P)
    dy = np.zeros_like(P)
    dx[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dy[1:-1] = P[2:] - P[:-2]
    n = np.cross(dx, dy)
    valid = z > 0
    same = np.zeros((h, w), bool)
    same[1:-1, 1:-1] = ((instance[1:-1, 2:] == instance[1:-1, :-2]) & (instance[2:, 1:-1] == instance[:-2, 1:-1])
                        & (instance[1:-1, 2:] == instance[1:-1, 1:-1]) & (instance[2:, 1:-1] == instance[1:-1, 1:-1]))
    zz = np.where(valid, z, 1.0)
    jump = np.zeros((h, w), bool)
    step = np.abs(zz[1:-1, 2:] - zz[1:-1, :-2]) + np.abs(zz[2:, 1:-1] - zz[:-2, 1:-1])
    jump[1:-1, 1:-1] = step > 0.05 * zz[1:-1, 1:-1]
    valid &= same & ~jump
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(valid[..., None] & (norm > 0), n / np.maximum(norm, 1e-12), 0.0).astype(np.float32)
    if smooth_px > 0:
        n = cv2.GaussianBlur(n, (0, 0), smooth_px)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    valid &= norm[..., 0] > 1e-3
    n = n / np.maximum(norm, 1e-6)
    flip = (n * P).sum(-1) > 0  # face the camera
    n[flip] *= -1
    return P, n, valid


def add_highlights(rgb: np.ndarray, depth: np.ndarray, instance: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                   light_direction: np.ndarray, light_color: np.ndarray, materials: dict[int, Material]) -> np.ndarray:
    """RGB with white Blinn-Phong highlights of strength gloss * max(n.h, 0)^shininess on every instance
    id that `materials` names (0 = the room).

    Shape:
        rgb: (H, W, 3) uint8; depth: (H, W) metres; instance: (H, W) uint8 -> (H, W, 3) uint8.
    """
    if not materials:
        return rgb
    P, n, valid = depth_normals(depth, K, instance)
    table = np.zeros((256, 2), np.float32)
    for iid, m in materials.items():
        table[iid] = (m.gloss, m.shininess)
    gloss, shin = table[instance, 0], table[instance, 1]
    l_cam = T_world_camera[:3, :3].T @ (np.asarray(light_direction, np.float64)
                                        / np.linalg.norm(light_direction))  # towards the light
    v = -P / np.maximum(np.linalg.norm(P, axis=-1, keepdims=True), 1e-9)
    hv = v + l_cam.astype(np.float32)
    hv /= np.maximum(np.linalg.norm(hv, axis=-1, keepdims=True), 1e-9)
    ndh = np.clip((n * hv).sum(-1), 0, 1)
    lit = (n @ l_cam.astype(np.float32)) > 0
    spec = np.where(valid & lit & (gloss > 0), gloss * np.power(ndh, shin), 0.0).astype(np.float32)
    out = rgb.astype(np.float32) + 255.0 * spec[..., None] * np.asarray(light_color, np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
