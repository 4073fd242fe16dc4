"""A tiny generated dataset shared by the sim and data tests (generated once per test session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dense_descriptor_ros.sim.generator import GenerateConfig, generate

#: 2 scenes x 3 views at 320x240: about 2 s to generate
TINY = GenerateConfig(scenes=2, views=3, width=320, height=240, objects_min=4, objects_max=5, distractors_max=2)


def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "sim_tiny"
    if not (root / "scenes" / "scene_000001" / "scene.json").is_file():
        generate(TINY, root, workers=1, progress=False)
    return root


def point_triangle_distance(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Exact distances (N, T) from points (N, 3) to triangles (T, 3, 3)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    n = np.cross(b - a, c - a)
    area2 = np.linalg.norm(n, axis=1)
    n = n / np.maximum(area2, 1e-300)[:, None]
    d_plane = np.einsum("ntk,tk->nt", p[:, None] - a[None], n)
    q = p[:, None] - d_plane[..., None] * n[None]  # projection on each triangle's plane

    def inside(q: np.ndarray) -> np.ndarray:
        s1 = np.einsum("ntk,tk->nt", np.cross(b - a, q - a), n)
        s2 = np.einsum("ntk,tk->nt", np.cross(c - b, q - b), n)
        s3 = np.einsum("ntk,tk->nt", np.cross(a - c, q - c), n)
        return (s1 >= 0) & (s2 >= 0) & (s3 >= 0)

    def seg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        e = v - u
        t = np.clip(np.einsum("ntk,tk->nt", p[:, None] - u[None], e) / np.maximum((e * e).sum(1), 1e-300), 0, 1)
        return np.linalg.norm(p[:, None] - (u[None] + t[..., None] * e[None]), axis=-1)

    edge = np.minimum(np.minimum(seg(a, b), seg(b, c)), seg(c, a))
    return np.where(inside(q) & (area2 > 1e-18), np.abs(d_plane), edge)
