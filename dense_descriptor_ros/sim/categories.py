"""Procedural object categories: shape parameters, part meshes, canonical frame and named keypoints.

Every category builds an instance from a dict of shape parameters. The object frame has its origin at
the centre of the bottom, z up; handles, spouts and "back" sides point to +x, "front" is -x, "left" +y.
Canonical object coordinates (shared by the category) are the object frame scaled per axis by the
instance's `canonical_scale` (for bodies of revolution (R, R, H) with R the largest body radius and H
the height; for boxes (Lx/2, Ly/2, Lz)), so the body of every instance spans about [-1, 1]^2 x [0, 1]
and a point keeps its meaning (rim, bottom, handle) across instances of different sizes.

Keypoints are placed from the shape parameters on the rendered surface (on mesh vertices or on flat
faces), so they project exactly onto the pixels the renderer draws for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .mesh import Mesh, concat, disc, quad, quantize, revolve, sweep_tube

#: Angular resolution of bodies of revolution (a multiple of 4, so 0, 90, 180, 270 degrees are vertices).
SEGMENTS = 48
#: Profile samples per wall (odd, so the middle height is a vertex).
PROFILE = 17


@dataclass
class Part:
    """One semantic part, rendered as its own pybullet link.

    Attributes:
        name: part name, unique within the category.
        mesh: visual mesh in the object frame.
        hull: (K, 3) points whose convex hull collides, or None for a visual-only part.
        textured: True if the part shows the instance texture, False for a solid colour.
    """

    name: str
    mesh: Mesh
    hull: np.ndarray | None
    textured: bool


@dataclass
class ShapeModel:
    """The geometry of one instance.

    Attributes:
        category: category name.
        parts: parts in the category's fixed order; parts[0] is the multibody's base link.
        keypoints: name -> (3,) object-frame position on the surface.
        keypoint_parts: name -> the part the keypoint lies on.
        canonical_scale: (3,) per-axis scale: canonical = object coordinates / canonical_scale.
        center_of_mass: (3,) in the object frame.
        mass: kilograms.
    """

    category: str
    parts: list[Part]
    keypoints: dict[str, np.ndarray]
    keypoint_parts: dict[str, str]
    canonical_scale: np.ndarray
    center_of_mass: np.ndarray
    mass: float


@dataclass(frozen=True)
class Category:
    """A procedural category: its parts and keypoints (fixed order) and how to make instances."""

    name: str
    parts: tuple[str, ...]
    keypoints: tuple[str, ...]
    sample: Callable[[np.random.Generator], dict[str, float]]
    build: Callable[[dict[str, float]], ShapeModel]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _ring(r: float, z: float, theta: float) -> np.ndarray:
    return np.array([r * np.cos(theta), r * np.sin(theta), z])


def _hull(r: np.ndarray, z: np.ndarray, n: int = 16) -> np.ndarray:
    """Points of a coarse surface of revolution, for a convex collision hull."""
    idx = np.unique(np.linspace(0, len(r) - 1, 6).round().astype(int))
    th = 2 * np.pi * np.arange(n) / n
    return np.concatenate([np.stack([r[i] * np.cos(th), r[i] * np.sin(th), np.full(n, z[i])], 1) for i in idx])


def _finish(category: str, parts: list[Part], keypoints: dict[str, tuple[np.ndarray, str]],
            scale: np.ndarray, com: np.ndarray, mass: float) -> ShapeModel:
    for p in parts:
        p.mesh = quantize(p.mesh)
    kp = {k: np.round(np.asarray(v[0], np.float64), 6) for k, v in keypoints.items()}
    # sizes rounded like the OBJ vertices, so that e.g. a rim keypoint has canonical z = 1 exactly
    return ShapeModel(category, parts, kp, {k: v[1] for k, v in keypoints.items()},
                      np.round(np.asarray(scale, np.float64), 6), np.round(np.asarray(com, np.float64), 6), mass)


# ----------------------------------------------------------------------------------------------- mug
def sample_mug(rng: np.random.Generator) -> dict[str, float]:
    rb = _u(rng, 0.032, 0.05)
    return {"radius_bottom": rb, "radius_top": rb * _u(rng, 0.9, 1.25), "height": _u(rng, 0.07, 0.125),
            "bulge": _u(rng, 0.0, 0.08), "wall": _u(rng, 0.003, 0.007), "base": _u(rng, 0.005, 0.012),
            "handle_top": _u(rng, 0.68, 0.88), "handle_bottom": _u(rng, 0.15, 0.38),
            "handle_reach": _u(rng, 0.018, 0.04), "handle_radius": _u(rng, 0.004, 0.0075)}


def build_mug(p: dict[str, float]) -> ShapeModel:
    h, t, tb = p["height"], p["wall"], p["base"]
    s = np.linspace(0, 1, PROFILE)

    def r_out(u: np.ndarray) -> np.ndarray:
        return p["radius_bottom"] + (p["radius_top"] - p["radius_bottom"]) * u + \
            p["bulge"] * p["radius_bottom"] * np.sin(np.pi * u)

    z, r = h * s, r_out(s)
    body = revolve(r, z, SEGMENTS)
    zi = tb + (h - tb) * s
    ri = r_out(zi / h) - t
    interior = concat([revolve(ri, zi, SEGMENTS, flip=True), disc(0.0, ri[0], tb, SEGMENTS, up=True, rings=4)])
    r_top = float(r[-1])
    rim = disc(r_top - t, r_top, h, SEGMENTS, up=True)
    base = disc(0.0, float(r[0]), 0.0, SEGMENTS, up=False, rings=4)
    # handle: a half ellipse in the xz plane from the upper to the lower attachment, ends sunk into the wall
    rt = p["handle_radius"]
    zt, zb = p["handle_top"] * h, p["handle_bottom"] * h
    n_path = 25
    phi = np.linspace(np.pi / 2, -np.pi / 2, n_path)
    a = (1 - np.sin(phi)) / 2
    x_wall = (1 - a) * r_out(np.array(zt / h)) + a * r_out(np.array(zb / h)) - 0.3 * rt
    path = np.stack([x_wall + p["handle_reach"] * np.cos(phi), np.zeros(n_path),
                     (zt + zb) / 2 + (zt - zb) / 2 * np.sin(phi)], 1)
    tan = np.gradient(path, axis=0)
    nrm = np.stack([-tan[:, 2], np.zeros(n_path), tan[:, 0]], 1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    handle = sweep_tube(path, nrm, rt, 16)
    parts = [Part("body", body, _hull(r, z), True), Part("handle", handle, handle.vertices[::3].copy(), False),
             Part("rim", rim, None, False), Part("interior", interior, None, False), Part("base", base, None, False)]
    mid = PROFILE // 2
    kps = {"handle_top": (path[3] + rt * nrm[3], "handle"), "handle_bottom": (path[-4] + rt * nrm[-4], "handle"),
           "handle_outer": (path[n_path // 2] + rt * nrm[n_path // 2], "handle"),
           "rim_front": (_ring(r_top - t / 2, h, np.pi), "rim"), "rim_back": (_ring(r_top - t / 2, h, 0.0), "rim"),
           "body_front": (_ring(r[mid], z[mid], np.pi), "body"), "bottom_center": (np.zeros(3), "base"),
           "inside_bottom": (np.array([0.0, 0.0, tb]), "interior")}
    big_r = float(r.max())
    return _finish("mug", parts, kps, np.array([big_r, big_r, h]), np.array([0.1 * big_r, 0.0, 0.4 * h]), 0.3)


# ---------------------------------------------------------------------------------------------- bowl
def sample_bowl(rng: np.random.Generator) -> dict[str, float]:
    big_r = _u(rng, 0.06, 0.105)
    return {"radius_top": big_r, "height": _u(rng, 0.035, 0.075), "radius_foot": big_r * _u(rng, 0.35, 0.6),
            "foot_height": _u(rng, 0.003, 0.01), "roundness": _u(rng, 1.3, 2.6), "wall": _u(rng, 0.003, 0.007)}


def build_bowl(p: dict[str, float]) -> ShapeModel:
    h, t, fh, rf, big_r = p["height"], p["wall"], p["foot_height"], p["radius_foot"], p["radius_top"]
    s = np.linspace(0, 1, PROFILE)

    def r_out(u: np.ndarray) -> np.ndarray:
        return rf + (big_r - rf) * (1 - np.clip(1 - u, 0.0, 1.0) ** p["roundness"])

    z = fh + (h - fh) * s
    r = r_out(s)
    body = revolve(r, z, SEGMENTS)
    foot = revolve(np.array([rf, rf]), np.array([0.0, fh]), SEGMENTS)
    base = disc(0.0, rf, 0.0, SEGMENTS, up=False, rings=4)
    zf = fh + t
    zi = zf + (h - zf) * s
    ri = r_out((zi - fh) / (h - fh)) - t
    interior = concat([revolve(ri, zi, SEGMENTS, flip=True), disc(0.0, ri[0], zf, SEGMENTS, up=True, rings=4)])
    rim = disc(big_r - t, big_r, h, SEGMENTS, up=True)
    hull = _hull(np.concatenate([[rf], r]), np.concatenate([[0.0], z]))
    parts = [Part("body", body, hull, True), Part("foot", foot, None, False), Part("rim", rim, None, False),
             Part("interior", interior, None, False), Part("base", base, None, False)]
    mid, rm = PROFILE // 2, big_r - t / 2
    kps = {"rim_front": (_ring(rm, h, np.pi), "rim"), "rim_back": (_ring(rm, h, 0.0), "rim"),
           "rim_left": (_ring(rm, h, np.pi / 2), "rim"), "rim_right": (_ring(rm, h, -np.pi / 2), "rim"),
           "body_front": (_ring(r[mid], z[mid], np.pi), "body"), "bottom_center": (np.zeros(3), "base"),
           "inside_bottom": (np.array([0.0, 0.0, zf]), "interior")}
    return _finish("bowl", parts, kps, np.array([big_r, big_r, h]), np.array([0.0, 0.0, 0.35 * h]), 0.25)


# -------------------------------------------------------------------------------------------- bottle
def sample_bottle(rng: np.random.Generator) -> dict[str, float]:
    rb = _u(rng, 0.025, 0.043)
    rn = max(0.009, rb * _u(rng, 0.3, 0.5))
    return {"radius_body": rb, "taper": _u(rng, 0.88, 1.05), "height": _u(rng, 0.16, 0.29),
            "body_fraction": _u(rng, 0.45, 0.65), "shoulder_fraction": _u(rng, 0.1, 0.2), "radius_neck": rn,
            "radius_cap": rn * _u(rng, 1.05, 1.25), "cap_height": _u(rng, 0.012, 0.025)}


def build_bottle(p: dict[str, float]) -> ShapeModel:
    h, rb, rn, rc, hc = p["height"], p["radius_body"], p["radius_neck"], p["radius_cap"], p["cap_height"]
    r_shoulder = rb * p["taper"]
    z1 = p["body_fraction"] * h
    z2 = min(z1 + p["shoulder_fraction"] * h, h - hc - 0.015)
    z3 = h - hc
    s = np.linspace(0, 1, PROFILE)
    zb, rbody = z1 * s, rb + (r_shoulder - rb) * s
    zs = z1 + (z2 - z1) * s
    rs = rn + (r_shoulder - rn) * (1 + np.cos(np.pi * s)) / 2
    zn, rneck = np.array([z2, z3]), np.array([rn, rn])
    cap = concat([revolve(np.array([rc, rc]), np.array([z3, h]), SEGMENTS), disc(0.0, rc, h, SEGMENTS, True, 3),
                  disc(rn, rc, z3, SEGMENTS, up=False)])
    hull = _hull(np.concatenate([rbody, rs[1:], [rn, rc, rc]]), np.concatenate([zb, zs[1:], [z3, z3, h]]))
    parts = [Part("body", revolve(rbody, zb, SEGMENTS, v_range=(0.0, 1.0)), hull, True),
             Part("shoulder", revolve(rs, zs, SEGMENTS), None, False),
             Part("neck", revolve(rneck, zn, SEGMENTS), None, False), Part("cap", cap, None, False),
             Part("base", disc(0.0, rb, 0.0, SEGMENTS, up=False, rings=4), None, False)]
    mid = PROFILE // 2
    kps = {"cap_top": (np.array([0.0, 0.0, h]), "cap"), "cap_front": (_ring(rc, (z3 + h) / 2, np.pi), "cap"),
           "neck_front": (_ring(rn, (z2 + z3) / 2, np.pi), "neck"), "shoulder_front": (_ring(rs[mid], zs[mid], np.pi),
                                                                                 "shoulder"),
           "body_front": (_ring(rbody[mid], zb[mid], np.pi), "body"),
           "body_back": (_ring(rbody[mid], zb[mid], 0.0), "body"), "bottom_center": (np.zeros(3), "base")}
    big_r = max(rb, r_shoulder)
    return _finish("bottle", parts, kps, np.array([big_r, big_r, h]), np.array([0.0, 0.0, 0.4 * h]), 0.4)


# ----------------------------------------------------------------------------------------------- can
def sample_can(rng: np.random.Generator) -> dict[str, float]:
    return {"radius": _u(rng, 0.028, 0.045), "height": _u(rng, 0.07, 0.16), "top_ratio": _u(rng, 0.8, 0.94),
            "chamfer": _u(rng, 0.006, 0.015), "lid_depth": _u(rng, 0.003, 0.008), "rim_width": _u(rng, 0.002, 0.004)}


def build_can(p: dict[str, float]) -> ShapeModel:
    h, r, d = p["height"], p["radius"], p["lid_depth"]
    rtop = r * p["top_ratio"]
    ch = p["chamfer"]
    # straight wall, then a smooth neck-in to the top radius over the chamfer height
    sc = np.linspace(0, 1, 9)
    z = np.concatenate([[0.0, h - ch], h - ch + ch * sc[1:]])  # a straight wall needs no inner samples
    rad = np.concatenate([[r, r], rtop + (r - rtop) * (1 + np.cos(np.pi * sc[1:])) / 2])
    rlid = rtop - p["rim_width"]
    lid = concat([disc(0.0, rlid, h - d, SEGMENTS, up=True, rings=4),
                  revolve(np.array([rlid, rlid]), np.array([h - d, h]), SEGMENTS, flip=True)])
    parts = [Part("body", revolve(rad, z, SEGMENTS), _hull(rad, z), True),
             Part("rim", disc(rlid, rtop, h, SEGMENTS, up=True), None, False), Part("lid", lid, None, False),
             Part("base", disc(0.0, r, 0.0, SEGMENTS, up=False, rings=4), None, False)]
    kps = {"top_center": (np.array([0.0, 0.0, h - d]), "lid"), "bottom_center": (np.zeros(3), "base"),
           "rim_front": (_ring((rlid + rtop) / 2, h, np.pi), "rim"), "rim_back": (_ring((rlid + rtop) / 2, h, 0.0),
                                                                                 "rim"),
           "body_front": (_ring(r, (h - ch) / 2, np.pi), "body"), "body_back": (_ring(r, (h - ch) / 2, 0.0), "body")}
    return _finish("can", parts, kps, np.array([r, r, h]), np.array([0.0, 0.0, 0.5 * h]), 0.35)


# ----------------------------------------------------------------------------------------------- box
def sample_box(rng: np.random.Generator) -> dict[str, float]:
    return {"length_x": _u(rng, 0.05, 0.15), "length_y": _u(rng, 0.04, 0.12), "length_z": _u(rng, 0.03, 0.19)}


def build_box(p: dict[str, float]) -> ShapeModel:
    hx, hy, lz = p["length_x"] / 2, p["length_y"] / 2, p["length_z"]
    ex, ey, ez = np.array([2 * hx, 0, 0]), np.array([0, 2 * hy, 0]), np.array([0, 0, lz])
    c000 = np.array([-hx, -hy, 0.0])
    faces = {
        "top": quad(c000 + ez, ex, ey), "bottom": quad(c000, ey, ex),
        "front": quad(c000, ez, ey),
        "back": quad(c000 + ex, ey, ez), "left": quad(c000 + ey, ez, ex), "right": quad(c000, ex, ez),
    }
    corners = np.array([[sx * hx, sy * hy, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, lz)])
    order = ("bottom", "top", "front", "back", "left", "right")
    parts = [Part(n, faces[n], corners if n == "bottom" else None, n != "bottom") for n in order]
    kps: dict[str, tuple[np.ndarray, str]] = {}
    for zn, z in (("top", lz), ("bottom", 0.0)):
        for xn, sx in (("front", -1), ("back", 1)):
            for yn, sy in (("left", 1), ("right", -1)):
                kps[f"{zn}_{xn}_{yn}"] = (np.array([sx * hx, sy * hy, z]), zn)
    kps["top_center"] = (np.array([0.0, 0.0, lz]), "top")
    return _finish("box", parts, kps, np.array([hx, hy, lz]), np.array([0.0, 0.0, lz / 2]), 0.3)


CATEGORIES: dict[str, Category] = {
    "mug": Category("mug", ("body", "handle", "rim", "interior", "base"),
                    ("handle_top", "handle_bottom", "handle_outer", "rim_front", "rim_back", "body_front",
                     "bottom_center", "inside_bottom"), sample_mug, build_mug),
    "bowl": Category("bowl", ("body", "foot", "rim", "interior", "base"),
                     ("rim_front", "rim_back", "rim_left", "rim_right", "body_front", "bottom_center",
                      "inside_bottom"), sample_bowl, build_bowl),
    "bottle": Category("bottle", ("body", "shoulder", "neck", "cap", "base"),
                       ("cap_top", "cap_front", "neck_front", "shoulder_front", "body_front", "body_back",
                        "bottom_center"), sample_bottle, build_bottle),
    "can": Category("can", ("body", "rim", "lid", "base"),
                    ("top_center", "bottom_center", "rim_front", "rim_back", "body_front", "body_back"),
                    sample_can, build_can),
    "box": Category("box", ("bottom", "top", "front", "back", "left", "right"),
                    tuple(f"{zn}_{xn}_{yn}" for zn in ("top", "bottom") for xn in ("front", "back")
                          for yn in ("left", "right")) + ("top_center",), sample_box, build_box),
}
