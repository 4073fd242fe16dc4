"""Triangle meshes for procedural objects: surfaces of revolution, discs, swept tubes, boxes, OBJ output.

All meshes carry per-vertex normals and texture coordinates (pybullet's TinyRenderer shades with the
normals and samples textures with the UVs). Faces are counter-clockwise seen from the side the normals
point to. Everything is plain numpy and deterministic: the same parameters give byte-identical OBJ text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Mesh:
    """An indexed triangle mesh in the object frame (metres).

    Shape:
        vertices: (V, 3) float64; normals: (V, 3) unit; uvs: (V, 2) in [0, 1]; faces: (F, 3) int64.
    """

    vertices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        v = self.vertices.shape[0]
        if self.vertices.shape != (v, 3) or self.normals.shape != (v, 3) or self.uvs.shape != (v, 2):
            raise ValueError("Mesh: vertices, normals and uvs must be (V, 3), (V, 3) and (V, 2)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"Mesh: faces must be (F, 3), got {self.faces.shape}")


def concat(meshes: list[Mesh]) -> Mesh:
    """One mesh holding all the given meshes."""
    offsets = np.cumsum([0] + [m.vertices.shape[0] for m in meshes[:-1]])
    return Mesh(np.concatenate([m.vertices for m in meshes]), np.concatenate([m.normals for m in meshes]),
                np.concatenate([m.uvs for m in meshes]),
                np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)]))


def _grid_faces(rows: int, cols: int, flip: bool) -> np.ndarray:
    """Two triangles per cell of a (rows x cols) vertex grid, index = row * cols + col. Unflipped, the
    triangles face (column direction) x (row direction)."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (r * cols + c).ravel()
    b, d = a + 1, a + cols
    e = d + 1
    tri = np.concatenate([np.stack([a, b, e], 1), np.stack([a, e, d], 1)])
    return tri[:, ::-1].copy() if flip else tri


def revolve(r: np.ndarray, z: np.ndarray, segments: int, flip: bool = False,
            v_range: tuple[float, float] = (0.0, 1.0)) -> Mesh:
    """Surface of revolution of the profile (r_i, z_i) about the z axis.

    The normal at a profile point is the profile tangent (dr, dz) turned to (dz, -dr), which points
    outwards for a profile that climbs the outside of a body; `flip` reverses normals and winding (inner
    walls, top discs drawn outwards). u = angle / 2 pi (the seam at angle 0, on +x, is duplicated for the
    texture), v = arc length along the profile mapped to `v_range`.
    """
    r, z = np.asarray(r, np.float64), np.asarray(z, np.float64)
    n = r.shape[0]
    dr, dz = np.gradient(r), np.gradient(z)
    nr, nz = dz, -dr
    length = np.hypot(nr, nz)
    nr, nz = nr / length, nz / length
    if flip:
        nr, nz = -nr, -nz
    theta = 2.0 * np.pi * np.arange(segments + 1) / segments
    theta[-1] = 0.0  # the seam repeats angle 0 exactly, so both copies share coordinates
    c, s = np.cos(theta), np.sin(theta)
    verts = np.stack([r[:, None] * c, r[:, None] * s, np.broadcast_to(z[:, None], (n, segments + 1))], -1)
    norms = np.stack([nr[:, None] * c, nr[:, None] * s, np.broadcast_to(nz[:, None], (n, segments + 1))], -1)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(r), np.diff(z)))])
    v = v_range[0] + (v_range[1] - v_range[0]) * arc / max(arc[-1], 1e-12)
    u = np.arange(segments + 1) / segments
    uvs = np.stack([np.broadcast_to(u[None], (n, segments + 1)), np.broadcast_to(v[:, None], (n, segments + 1))],
                   -1)
    return Mesh(verts.reshape(-1, 3), norms.reshape(-1, 3), uvs.reshape(-1, 2),
                _grid_faces(n, segments + 1, flip))


def disc(r_inner: float, r_outer: float, z: float, segments: int, up: bool, rings: int = 2) -> Mesh:
    """Flat annulus (a full disc when r_inner = 0) at height z, normal +z if `up` else -z."""
    r = np.linspace(r_inner, r_outer, rings)
    m = revolve(r, np.full_like(r, z), segments, flip=up)
    m.normals[:] = (0.0, 0.0, 1.0 if up else -1.0)
    return m


def sweep_tube(path: np.ndarray, normals: np.ndarray, radius: float, ring: int) -> Mesh:
    """Tube of circular cross-section swept along a polyline (open ends).

    Shape:
        path: (P, 3) centreline; normals: (P, 3) unit vectors perpendicular to the path giving the
        angle-0 direction of each ring (so ring vertex 0 lies at path + radius * normal).
    """
    path, normals = np.asarray(path, np.float64), np.asarray(normals, np.float64)
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    binormal = np.cross(tangent, normals)
    psi = 2.0 * np.pi * np.arange(ring + 1) / ring
    psi[-1] = 0.0
    c, s = np.cos(psi)[None, :, None], np.sin(psi)[None, :, None]
    dirs = c * normals[:, None] + s * binormal[:, None]  # (P, ring+1, 3)
    verts = path[:, None] + radius * dirs
    p = path.shape[0]
    u = np.broadcast_to((np.arange(p) / (p - 1))[:, None], (p, ring + 1))
    v = np.broadcast_to((np.arange(ring + 1) / ring)[None], (p, ring + 1))
    # rows follow the path, columns go round the ring: (ring direction) x tangent = the outward normal
    return Mesh(verts.reshape(-1, 3), dirs.reshape(-1, 3), np.stack([u, v], -1).reshape(-1, 2),
                _grid_faces(p, ring + 1, flip=False))


def quad(origin: np.ndarray, du: np.ndarray, dv: np.ndarray, cells: int = 4) -> Mesh:
    """Planar rectangle origin + a du + b dv (a, b in [0, 1]), normal du x dv, split into cells^2 quads
    (small triangles keep the renderer's texture interpolation close to perspective-correct)."""
    a, b = np.meshgrid(np.linspace(0, 1, cells + 1), np.linspace(0, 1, cells + 1), indexing="ij")
    verts = origin + a.reshape(-1, 1) * du + b.reshape(-1, 1) * dv
    n = np.cross(du, dv)
    n = n / np.linalg.norm(n)
    # grid rows follow du, columns dv: dv x du = -n, hence the flip
    return Mesh(verts, np.tile(n, (verts.shape[0], 1)), np.stack([a.ravel(), b.ravel()], 1),
                _grid_faces(cells + 1, cells + 1, flip=True))


def _rows(prefix: str, values: np.ndarray, fmt: str) -> str:
    """One text line per row, formatted in a single C-level % operation (fast for large meshes)."""
    rows, cols = values.shape
    return ((prefix + (" " + fmt) * cols + "\n") * rows) % tuple(values.ravel().tolist())


def to_obj(mesh: Mesh) -> str:
    """Wavefront OBJ text with v/vt/vn and faces (1-based), fixed 6-decimal formatting (deterministic)."""
    idx = np.repeat(mesh.faces + 1, 3, axis=1)  # v/vt/vn share the index
    faces = ((("f" + " %d/%d/%d" * 3) + "\n") * idx.shape[0]) % tuple(idx.ravel().tolist())
    return ("# dense_descriptor_ros procedural mesh\n" + _rows("v", mesh.vertices, "%.6f")
            + _rows("vt", mesh.uvs, "%.6f") + _rows("vn", mesh.normals, "%.6f") + faces)


def quantize(mesh: Mesh) -> Mesh:
    """The mesh as pybullet will see it after reading `to_obj` text (6 decimals), so geometry derived
    from it (keypoints, hulls) is consistent with what is rendered."""
    return Mesh(np.round(mesh.vertices, 6), mesh.normals, mesh.uvs, mesh.faces)
