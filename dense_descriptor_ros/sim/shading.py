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


def _rays(K: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W, 3) float32 camera-frame ray through each pixel with z = 1."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([(xs - np.float32(K[0, 2])) / np.float32(K[0, 0]), (ys - np.float32(K[1, 2])) / np.float32(K[1, 1]),
                     np.ones((h, w), np.float32)], -1)


def depth_normals(depth: np.ndarray, K: np.ndarray, instance: np.ndarray, smooth_px: float = 1.5
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals facing the camera and a validity mask from rendered depth.

    Normals are cross products of central differences of the back-projected points, invalid where a
    neighbour lies on another instance or across a depth jump, then averaged over a Gaussian window.

    Shape:
        depth: (H, W) metres; K: (3, 3); instance: (H, W) uint8 -> normals (H, W, 3) float32, valid (H, W).
    """
    h, w = depth.shape
    z = depth.astype(np.float32)
    P = _rays(K, h, w) * z[..., None]
    dx = cv2.Sobel(P, cv2.CV_32F, 1, 0, ksize=1)  # central differences, all three channels at once
    dy = cv2.Sobel(P, cv2.CV_32F, 0, 1, ksize=1)
    n = np.cross(dx, dy)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    same = cv2.dilate(instance, cross) == cv2.erode(instance, cross)
    jump = np.abs(dx[..., 2]) + np.abs(dy[..., 2]) > 0.05 * z
    valid = (z > 0) & same & ~jump
    n *= valid[..., None] / np.maximum(np.sqrt(np.einsum("hwc,hwc->hw", n, n)), 1e-12)[..., None]
    if smooth_px > 0:
        n = cv2.GaussianBlur(n, (0, 0), smooth_px)
    norm = np.sqrt(np.einsum("hwc,hwc->hw", n, n))
    valid &= norm > 1e-3
    n /= np.maximum(norm, 1e-6)[..., None]
    n *= np.where(np.einsum("hwc,hwc->hw", n, P) > 0, -1.0, 1.0).astype(np.float32)[..., None]  # face the camera
    return n, valid


def add_highlights(rgb: np.ndarray, depth: np.ndarray, instance: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                   light_direction: np.ndarray, light_color: np.ndarray, materials: dict[int, Material]) -> np.ndarray:
    """RGB with white Blinn-Phong highlights of strength gloss * max(n.h, 0)^shininess on every instance
    id that `materials` names (0 = the room).

    Shape:
        rgb: (H, W, 3) uint8; depth: (H, W) metres; instance: (H, W) uint8 -> (H, W, 3) uint8.
    """
    if not materials:
        return rgb
    h, w = depth.shape
    n, valid = depth_normals(depth, K, instance)
    table = np.zeros((256, 2), np.float32)
    for iid, m in materials.items():
        table[iid] = (m.gloss, m.shininess)
    l_cam = (T_world_camera[:3, :3].T @ (np.asarray(light_direction, np.float64)
                                         / np.linalg.norm(light_direction))).astype(np.float32)  # towards the light
    view = -_rays(K, h, w)
    half = view / np.sqrt(np.einsum("hwc,hwc->hw", view, view))[..., None] + l_cam
    half /= np.maximum(np.sqrt(np.einsum("hwc,hwc->hw", half, half)), 1e-9)[..., None]
    ndh = np.clip(np.einsum("hwc,hwc->hw", n, half), 0, 1)
    lit = valid & (n @ l_cam > 0)
    spec = np.where(lit, table[instance, 0] * np.power(ndh, table[instance, 1]), 0.0).astype(np.float32)
    out = rgb.astype(np.float32) + (255.0 * spec)[..., None] * np.asarray(light_color, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
