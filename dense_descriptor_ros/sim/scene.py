"""Scene construction in pybullet: the room, objects dropped on a table and settled by physics, lighting
and the camera views on a hemisphere around the objects.

A scene is a pure function of its numpy Generator: every random choice is drawn from it in a fixed
order, each scene runs in a fresh pybullet connection, and physics is stepped a fixed, data-dependent
(hence reproducible) number of times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet as pb
import pybullet_data

from .camera import look_at
from .categories import CATEGORIES, ShapeModel
from .library import InstanceRef, category_id, ensure_surface_texture, part_texture_file
from .mesh import quad
from .textures import Appearance, random_color

#: category id of pybullet_data clutter
DISTRACTOR = "distractor"
DISTRACTOR_ID = len(CATEGORIES) + 1
#: pybullet_data models used as clutter, besides random_urdfs/NNN/NNN.urdf
DISTRACTOR_MODELS = ("duck_vhacd.urdf", "teddy_vhacd.urdf", "objects/mug.urdf", "toys/cube.obj",
                     "toys/cylinder.obj", "toys/prism.obj")
N_SURFACE_TEXTURES = 64


def part_ids() -> dict[tuple[str, str], int]:
    """Global part id (1-based, 0 = none) of every (category, part), in category then part order."""
    out: dict[tuple[str, str], int] = {}
    for cat in CATEGORIES.values():
        for part in cat.parts:
            out[(cat.name, part)] = len(out) + 1
    return out


@dataclass
class Lighting:
    """TinyRenderer light parameters of a scene."""

    direction: list[float]
    color: list[float]
    distance: float
    ambient: float
    diffuse: float
    specular: float


@dataclass
class SceneObject:
    """An object in a scene (a library instance or a distractor) and its pybullet body.

    T_world_object is the pose of the object frame (for library instances, the category's canonical
    frame before scaling); T_object_com the fixed offset of pybullet's base inertial frame.
    """

    instance_id: int
    category: str
    key: str
    body: int
    link_parts: list[int]  # global part id of link -1, 0, 1, ...
    T_object_com: np.ndarray
    params: dict[str, float] = field(default_factory=dict)
    canonical_scale: np.ndarray | None = None
    keypoints: dict[str, np.ndarray] = field(default_factory=dict)
    keypoint_parts: dict[str, str] = field(default_factory=dict)
    source: dict[str, float | str] = field(default_factory=dict)
    T_world_object: np.ndarray = field(default_factory=lambda: np.eye(4))

    @property
    def category_id(self) -> int:
        return DISTRACTOR_ID if self.category == DISTRACTOR else category_id(self.category)


def _pose(position: np.ndarray, quat: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = np.asarray(pb.getMatrixFromQuaternion(quat)).reshape(3, 3)
    T[:3, 3] = position
    return T


def random_orientation(rng: np.random.Generator, upright_prob: float) -> list[float]:
    """A quaternion (x, y, z, w): upright with random yaw and a slight tilt, or uniformly random."""
    if rng.uniform() < upright_prob:
        tilt = rng.normal(0.0, 0.05, 2)
        return list(pb.getQuaternionFromEuler([tilt[0], tilt[1], rng.uniform(-math.pi, math.pi)]))
    q = rng.standard_normal(4)
    return (q / np.linalg.norm(q)).tolist()


def _quad_shape(cid: int, corner: list[float], du: list[float], dv: list[float], rgba: list[float],
                tile: float = 0.3) -> int:
    """A visual-only rectangle corner + a du + b dv, seen from the side of its normal du x dv (TinyRenderer
    culls back faces), tessellated into tiles of about
    `tile` metres: TinyRenderer drops a whole triangle when a vertex is behind the camera, so large
    surfaces must be made of small triangles. The texture spans the whole rectangle."""
    cells = max(1, math.ceil(max(np.linalg.norm(du), np.linalg.norm(dv)) / tile))
    m = quad(np.asarray(corner, float), np.asarray(du, float), np.asarray(dv, float), cells)
    return pb.createVisualShape(pb.GEOM_MESH, vertices=m.vertices.tolist(), indices=m.faces.ravel().tolist(),
                                uvs=m.uvs.tolist(), normals=m.normals.tolist(), rgbaColor=rgba,
                                physicsClientId=cid)


def sample_room(rng: np.random.Generator) -> dict:
    """Random table size, textures (indices into the cached room textures) and table-leg colour."""
    return {"table_half_extents": [float(rng.uniform(0.45, 0.7)), float(rng.uniform(0.35, 0.5))],
            "table_texture": int(rng.integers(N_SURFACE_TEXTURES)),
            "floor_texture": int(rng.integers(N_SURFACE_TEXTURES)),
            "wall_texture": int(rng.integers(N_SURFACE_TEXTURES)),
            "leg_color": random_color(rng, val=(0.1, 0.7)).tolist()}


def build_room(cid: int, room: dict, cache: Path, seed: int, appearance: str = "cartoon") -> None:
    """Table (top surface at z = 0, collides), legs, floor (collides) and four walls, with the room
    textures of `appearance`.

    Create it after the objects: TinyRenderer draws bodies in creation order and rejects hidden pixels
    before shading, so drawing near surfaces first makes a view about 1.5x faster.
    """
    hx, hy = room["table_half_extents"]
    white = [1.0, 1.0, 1.0, 1.0]
    top = _quad_shape(cid, [-hx, -hy, 0.0], [2 * hx, 0, 0], [0, 2 * hy, 0], white, tile=0.15)
    # the table collides as a box but is drawn as its top face (a body without a visual shape would be
    # drawn with its collision shape)
    box = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[hx, hy, 0.02], collisionFramePosition=[0, 0, -0.02],
                                  physicsClientId=cid)
    top_body = pb.createMultiBody(0, box, top, [0, 0, 0], physicsClientId=cid)
    edge = [*(0.8 * np.asarray(room["leg_color"])).tolist(), 1.0]
    sides = [([-hx, -hy, -0.04], [2 * hx, 0, 0], [0, 0, 0.04]), ([hx, hy, -0.04], [-2 * hx, 0, 0], [0, 0, 0.04]),
             ([hx, -hy, -0.04], [0, 2 * hy, 0], [0, 0, 0.04]), ([-hx, hy, -0.04], [0, -2 * hy, 0], [0, 0, 0.04])]
    for c, u, v in sides:
        pb.createMultiBody(0, -1, _quad_shape(cid, c, u, v, edge), [0, 0, 0], physicsClientId=cid)
    leg = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[0.025, 0.025, 0.36], rgbaColor=[*room["leg_color"], 1.0],
                               physicsClientId=cid)
    for sx in (-1, 1):
        for sy in (-1, 1):
            pb.createMultiBody(0, -1, leg, [sx * (hx - 0.05), sy * (hy - 0.05), -0.4], physicsClientId=cid)
    fz, r, wh = -0.77, 1.8, 3.0
    floor = pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cid),
                               _quad_shape(cid, [-r, -r, 0], [2 * r, 0, 0], [0, 2 * r, 0], white), [0, 0, fz],
                               physicsClientId=cid)
    walls = [pb.createMultiBody(0, -1, _quad_shape(cid, c, u, v, white), [0, 0, 0], physicsClientId=cid)
             for c, u, v in (([-r, -r, fz], [0, 2 * r, 0], [0, 0, wh]), ([r, -r, fz], [0, 0, wh], [0, 2 * r, 0]),
                             ([-r, -r, fz], [0, 0, wh], [2 * r, 0, 0]), ([-r, r, fz], [2 * r, 0, 0], [0, 0, wh]))]
    textures: dict[str, int] = {}
    for body, kind in [(top_body, "table"), (floor, "floor")] + [(w, "wall") for w in walls]:
        if kind not in textures:
            path = ensure_surface_texture(cache, seed, kind, room[f"{kind}_texture"], appearance)
            textures[kind] = pb.loadTexture(str(path), physicsClientId=cid)
        pb.changeVisualShape(body, -1, textureUniqueId=textures[kind], physicsClientId=cid)


def random_lighting(rng: np.random.Generator) -> Lighting:
    """The cartoon look's light: from above (25-85 degrees), slightly tinted."""
    az, el = rng.uniform(-math.pi, math.pi), math.radians(rng.uniform(25, 85))
    tint = 1.0 - rng.uniform(0, 0.25, 3)
    return Lighting([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)],
                    (tint / tint.max()).tolist(), float(rng.uniform(2.0, 5.0)), float(rng.uniform(0.35, 0.7)),
                    float(rng.uniform(0.35, 0.8)), float(rng.uniform(0.0, 0.5)))


def realistic_lighting(rng: np.random.Generator) -> Lighting:
    """The realistic look's light: any azimuth, 15-88 degrees elevation, 2700-7500 K, dim to bright."""
    from .appearance import realistic_lighting_params

    return Lighting(**realistic_lighting_params(rng))


def _com_offset(cid: int, body: int) -> np.ndarray:
    info = pb.getDynamicsInfo(body, -1, physicsClientId=cid)
    return _pose(np.asarray(info[3]), np.asarray(info[4]))


def add_instance(cid: int, ref: InstanceRef, model: tuple[Path, ShapeModel, Appearance, dict[str, float]],
                 instance_id: int, position: np.ndarray, quat: list[float],
                 parts_table: dict[tuple[str, str], int]) -> SceneObject:
    """Create a library instance (`model` from library.ensure_instance) as a multibody with one link per
    part (so the segmentation mask names the part) and fixed joints; the collision hulls sit on the parts
    that have them."""
    folder, shape, look, params = model
    vis, col = [], []
    for part in shape.parts:
        rgba = [1.0, 1.0, 1.0, 1.0] if part.textured else [*look.colors[part.name], 1.0]
        vis.append(pb.createVisualShape(pb.GEOM_MESH, fileName=str(folder / f"{part.name}.obj"), rgbaColor=rgba,
                                        physicsClientId=cid))
        col.append(pb.createCollisionShape(pb.GEOM_MESH, vertices=part.hull.tolist(), physicsClientId=cid)
                   if part.hull is not None else -1)
    n = len(shape.parts) - 1
    body = pb.createMultiBody(
        baseMass=shape.mass, baseCollisionShapeIndex=col[0], baseVisualShapeIndex=vis[0],
        basePosition=position.tolist(), baseOrientation=quat, baseInertialFramePosition=shape.center_of_mass.tolist(),
        linkMasses=[0.02 if c >= 0 else 0.001 for c in col[1:]], linkCollisionShapeIndices=col[1:],
        linkVisualShapeIndices=vis[1:], linkPositions=[[0, 0, 0]] * n, linkOrientations=[[0, 0, 0, 1]] * n,
        linkInertialFramePositions=[[0, 0, 0]] * n, linkInertialFrameOrientations=[[0, 0, 0, 1]] * n,
        linkParentIndices=[0] * n, linkJointTypes=[pb.JOINT_FIXED] * n, linkJointAxis=[[0, 0, 1]] * n,
        physicsClientId=cid)
    tex = pb.loadTexture(str(folder / "texture.png"), physicsClientId=cid)
    for link, part in enumerate(shape.parts):
        if part.textured:
            pb.changeVisualShape(body, link - 1, textureUniqueId=tex, physicsClientId=cid)
        elif part.name in look.part_textures:  # the realistic look: every part textured
            own = pb.loadTexture(str(folder / part_texture_file(part.name)), physicsClientId=cid)
            pb.changeVisualShape(body, link - 1, textureUniqueId=own, rgbaColor=[1.0, 1.0, 1.0, 1.0],
                                 physicsClientId=cid)
    _damp(cid, body)
    return SceneObject(instance_id, ref.category, ref.key, body, [parts_table[(ref.category, p.name)]
                                                                 for p in shape.parts],
                       _com_offset(cid, body), params, shape.canonical_scale, shape.keypoints, shape.keypoint_parts)


def _damp(cid: int, body: int) -> None:
    """Friction and damping that let round objects come to rest within about a second."""
    pb.changeDynamics(body, -1, lateralFriction=0.8, rollingFriction=0.001, spinningFriction=0.001,
                      linearDamping=0.1, angularDamping=0.3, physicsClientId=cid)


def choose_distractor(rng: np.random.Generator) -> dict[str, float | str]:
    if rng.uniform() < 0.6:
        i = int(rng.integers(1000))
        model = f"random_urdfs/{i:03d}/{i:03d}.urdf"
    else:
        model = DISTRACTOR_MODELS[int(rng.integers(len(DISTRACTOR_MODELS)))]
    return {"model": model, "scale": float(rng.uniform(0.7, 1.3)),
            "color": random_color(rng).tolist() if rng.uniform() < 0.8 else None}


def add_distractor(cid: int, source: dict, instance_id: int, position: np.ndarray, quat: list[float]) -> SceneObject:
    """A pybullet_data model (URDF, or a toy OBJ centred on its vertex centroid) as clutter."""
    path = Path(pybullet_data.getDataPath()) / str(source["model"])
    s = float(source["scale"])
    if path.suffix == ".urdf":
        body = pb.loadURDF(str(path), position.tolist(), quat, globalScaling=s, physicsClientId=cid)
    else:
        verts = np.array([[float(t) for t in line.split()[1:4]] for line in path.read_text().splitlines()
                          if line.startswith("v ")])
        centre = (-(verts.min(0) + verts.max(0)) / 2 * s).tolist()
        vis = pb.createVisualShape(pb.GEOM_MESH, fileName=str(path), meshScale=[s] * 3, visualFramePosition=centre,
                                   physicsClientId=cid)
        col = pb.createCollisionShape(pb.GEOM_MESH, fileName=str(path), meshScale=[s] * 3,
                                      collisionFramePosition=centre, physicsClientId=cid)
        body = pb.createMultiBody(0.1, col, vis, position.tolist(), quat, physicsClientId=cid)
    if source["color"] is not None:
        for link in range(-1, pb.getNumJoints(body, physicsClientId=cid)):
            pb.changeVisualShape(body, link, rgbaColor=[*source["color"], 1.0], physicsClientId=cid)
    _damp(cid, body)
    links = [0] * (1 + pb.getNumJoints(body, physicsClientId=cid))
    return SceneObject(instance_id, DISTRACTOR, str(source["model"]), body, links, _com_offset(cid, body),
                       source=source)


def texture_body(cid: int, body: int, texture: Path) -> None:
    """Draw every link of `body` with the image file `texture` (white base colour)."""
    tex = pb.loadTexture(str(texture), physicsClientId=cid)
    for link in range(-1, pb.getNumJoints(body, physicsClientId=cid)):
        pb.changeVisualShape(body, link, textureUniqueId=tex, rgbaColor=[1.0, 1.0, 1.0, 1.0], physicsClientId=cid)


def drop_positions(rng: np.random.Generator, radii: list[float], spread: float = 0.17) -> np.ndarray:
    """Non-overlapping (in xy) drop positions in a disc of radius `spread`, stacked in height."""
    out: list[np.ndarray] = []
    for k, r in enumerate(radii):
        for _ in range(100):
            rad, ang = spread * math.sqrt(rng.uniform()), rng.uniform(-math.pi, math.pi)
            xy = np.array([rad * math.cos(ang), rad * math.sin(ang)])
            if all(np.linalg.norm(xy - o[:2]) > r + ro for o, ro in zip(out, radii, strict=False)):
                break
        out.append(np.array([xy[0], xy[1], r + 0.02 + 0.04 * k]))
    return np.array(out)


def settle(cid: int, bodies: list[int], max_steps: int, check_every: int = 24) -> int:
    """Step physics until every body rests (or max_steps); returns the number of steps taken."""
    for step in range(1, max_steps + 1):
        pb.stepSimulation(physicsClientId=cid)
        if step % check_every == 0:
            vel = [pb.getBaseVelocity(b, physicsClientId=cid) for b in bodies]
            if all(np.linalg.norm(v) < 0.01 and np.linalg.norm(w) < 0.1 for v, w in vel):
                return step
    return max_steps


def read_pose(cid: int, obj: SceneObject) -> np.ndarray:
    """T_world_object from pybullet's base (inertial-frame) pose."""
    pos, orn = pb.getBasePositionAndOrientation(obj.body, physicsClientId=cid)
    return _pose(np.asarray(pos), np.asarray(orn)) @ np.linalg.inv(obj.T_object_com)


def hemisphere_cameras(rng: np.random.Generator, target: np.ndarray, views: int,
                       distance: tuple[float, float], elevation_deg: tuple[float, float]) -> list[np.ndarray]:
    """T_world_camera of `views` cameras spread in azimuth around `target` (stratified, like a robot arm
    scanning the table), at random elevation, distance, a small roll and a jittered look-at point."""
    az0 = rng.uniform(-math.pi, math.pi)
    poses = []
    for k in range(views):
        az = az0 + 2 * math.pi * (k + rng.uniform(-0.4, 0.4)) / views
        el = math.radians(rng.uniform(*elevation_deg))
        d = rng.uniform(*distance)
        look = target + np.array([*rng.normal(0.0, 0.02, 2), 0.0])
        eye = look + d * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        poses.append(look_at(eye, look, roll_deg=float(rng.normal(0.0, 5.0))))
    return poses
