"""Procedural meshes: consistent winding and normals, exact surfaces, deterministic OBJ text."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.sim.mesh import Mesh, concat, disc, quad, revolve, sweep_tube, to_obj


def face_normals(m: Mesh) -> tuple[np.ndarray, np.ndarray]:
    v = m.vertices[m.faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    return n, np.linalg.norm(n, axis=1)


def winding_agrees(m: Mesh) -> bool:
    """Every non-degenerate face is counter-clockwise around its vertex normals (TinyRenderer culls
    back faces, so a wrongly wound face would be invisible)."""
    n, area = face_normals(m)
    ok = area > 1e-12
    return bool(((n[ok] * m.normals[m.faces].mean(1)[ok]).sum(1) > 0).all())


def test_cylinder_by_revolution():
    m = revolve(np.array([0.05, 0.05]), np.array([0.0, 0.1]), 8)
    assert m.vertices.shape == (2 * 9, 3) and m.faces.shape == (2 * 8, 3)
    np.testing.assert_allclose(np.hypot(m.vertices[:, 0], m.vertices[:, 1]), 0.05)
    np.testing.assert_allclose(m.normals[:, 2], 0.0, atol=1e-12)  # outward radial normals
    np.testing.assert_allclose((m.normals[:, :2] * m.vertices[:, :2]).sum(1), 0.05, atol=1e-12)
    assert winding_agrees(m)
    flipped = revolve(np.array([0.05, 0.05]), np.array([0.0, 0.1]), 8, flip=True)
    np.testing.assert_allclose(flipped.normals, -m.normals)
    assert winding_agrees(flipped)
    # the texture seam is duplicated: u spans [0, 1] and the seam vertices coincide
    assert m.uvs[:, 0].min() == 0 and m.uvs[:, 0].max() == 1
    np.testing.assert_allclose(m.vertices[0], m.vertices[8])


@pytest.mark.parametrize("up", [True, False])
def test_disc_faces_up_or_down(up):
    m = disc(0.01, 0.04, 0.2, 12, up=up)
    n, _ = face_normals(m)
    assert (np.sign(n[:, 2]) == (1 if up else -1)).all()
    np.testing.assert_allclose(m.vertices[:, 2], 0.2)
    assert winding_agrees(m)


def test_tube_and_quad_orientation():
    t = np.linspace(0, np.pi, 9)
    path = np.stack([np.cos(t), np.zeros(9), np.sin(t)], 1)
    tube = sweep_tube(path, path.copy(), 0.1, 8)  # normals pointing away from the arc's centre
    np.testing.assert_allclose(tube.vertices[::9], path * 1.1, atol=1e-12)  # ring vertex 0 = path + r n
    assert winding_agrees(tube)
    q = quad(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 2.0, 0]), cells=3)
    n, area = face_normals(q)
    assert (n[:, 2] > 0).all() and area.sum() / 2 == pytest.approx(2.0)


def test_obj_text_is_deterministic_and_complete():
    m = concat([disc(0.0, 0.03, 0.0, 6, up=False), revolve(np.array([0.03, 0.02]), np.array([0.0, 0.05]), 6)])
    text = to_obj(m)
    assert text == to_obj(m)
    lines = text.splitlines()
    assert sum(line.startswith("v ") for line in lines) == m.vertices.shape[0]
    assert sum(line.startswith("vt ") for line in lines) == m.vertices.shape[0]
    assert sum(line.startswith("f ") for line in lines) == m.faces.shape[0]
    assert max(int(line.split()[3].split("/")[0]) for line in lines if line.startswith("f ")) <= m.vertices.shape[0]


def test_mesh_validates_shapes():
    with pytest.raises(ValueError):
        Mesh(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((2, 2)), np.zeros((1, 3), int))
