"""A rendered RGB-D camera sequence: a camera moving on a smooth arc around a mug on a table.

The scene is built from the same pieces as `sim generate` (library instances, pybullet clutter, the
room, physics settling, TinyRenderer, keypoint projection with visibility): a mug of the chosen
instance pool stands upright in the centre, 1-3 other objects stand behind and beside it (never
between the camera arc and the mug, so the mug is visible in every frame), and the camera looks at
the mug's centre while it moves along the arc. Everything is a pure function of the config.

Rendering costs ~50 ms per 320x240 frame on a CPU, so a live camera (`sim camera`, the node in
`camera_node`) renders a sequence once, caches it on disk (`cached_sequence`, one compressed .npz per
config hash) and publishes the cached frames at the frame rate. No rclpy here.

Conventions: camera poses T_world_camera are OpenCV optical frames (x right, y down, z forward);
pixel centres are at integer coordinates; depth is z along the optical axis in metres, 0 = no surface.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..config import config_hash, from_dict, to_dict
from ..geometry.poses import pose_to_position_quaternion  # re-exported: it lived here first
from .camera import intrinsics, look_at
from .categories import CATEGORIES

__all__ = ["SEQUENCE_FORMAT_VERSION", "MUG_INSTANCE_ID", "SequenceConfig", "Sequence", "KeypointTruth",
           "render_sequence", "save_sequence", "load_sequence", "sequence_cache_path", "cached_sequence",
           "keypoint_truth", "relative_pose", "ground_truth_dict", "pose_to_position_quaternion"]

#: bump when the .npz layout or the meaning of a field changes (cached files of other versions are re-rendered)
SEQUENCE_FORMAT_VERSION = 1
#: instance id of the central mug (objects[0]); other objects follow from 2
MUG_INSTANCE_ID = 1
#: a frame fails the "mug visible" check below this fraction of the image area of mug pixels
MIN_MUG_FRACTION = 0.002
#: the category name that means "a pybullet_data clutter object" in SequenceConfig.categories
DISTRACTOR_NAME = "distractor"
# random-number stream of sequences (sim generate's scenes use SeedSequence([seed, index]))
_STREAM = 0x5E9


@dataclass
class SequenceConfig:
    """Everything that determines a rendered sequence (and its cache file)."""

    size: tuple[int, int] = (320, 240)  # image size (W, H) in pixels
    frames: int = 60  # number of frames along the arc
    seed: int = 0  # scene seed: instances, placement, room, lighting and the arc's azimuth
    object_seed: int = 0  # object library seed (shapes, textures, instance split), as in `sim generate`
    instances_per_category: int = 60  # library size per category, as in `sim generate` (sets the split)
    split: str = "test"  # instance pool: "train", "val" or "test" (held-out instances); scene split names map
    #                      through generator.INSTANCE_POOL ("test_scenes" -> "train")
    categories: tuple[str, ...] | None = None  # objects around the mug: category names or "distractor";
    #                                            None: 1-3 random non-mug categories or distractors
    distance_m: tuple[float, float] = (0.65, 0.58)  # camera distance to the mug's centre, first -> last frame
    elevation_deg: tuple[float, float] = (38.0, 47.0)  # camera elevation above the table, first -> last frame
    arc_deg: float = 40.0  # azimuth swept from the first to the last frame (0: a still camera)
    azimuth_deg: float | None = None  # azimuth of the arc's middle (degrees, world frame); None: from the seed
    handle_deg: float | None = None  # mug handle direction, degrees from the arc's middle camera direction
    #                                  (0: handle towards the camera); None: +-(50..100) from the seed (in profile)
    fov_y_deg: float = 45.0  # vertical field of view
    near: float = 0.05  # near clipping plane (metres)
    far: float = 5.0  # far clipping plane (metres)
    shadows: bool = False  # TinyRenderer shadows (about 1.5x slower)
    settle_steps: int = 720  # maximum physics steps (240 Hz) to let the objects come to rest

    @property
    def width(self) -> int:
        return int(self.size[0])

    @property
    def height(self) -> int:
        return int(self.size[1])

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        from .generator import INSTANCE_POOL

        allowed = (*CATEGORIES, DISTRACTOR_NAME)
        checks = [
            (len(self.size) == 2 and all(isinstance(v, int) and 16 <= v <= 4096 for v in self.size),
             f"size must be (W, H) with 16..4096 pixels per side, got {self.size!r}"),
            (self.frames >= 1, f"frames must be >= 1, got {self.frames}"),
            (self.seed >= 0 and self.object_seed >= 0, "seed and object_seed must be >= 0"),
            (self.instances_per_category >= 10, "instances_per_category must be >= 10"),
            (self.split in INSTANCE_POOL, f"split must be one of {sorted(INSTANCE_POOL)}, got {self.split!r}"),
            (self.categories is None or all(c in allowed for c in self.categories),
             f"categories must be names among {list(allowed)}, got {self.categories!r}"),
            (self.categories is None or len(self.categories) <= 6, "at most 6 objects around the mug"),
            (len(self.distance_m) == 2 and all(0.2 <= d <= 3.0 for d in self.distance_m),
             f"distance_m must be two distances in [0.2, 3] m, got {self.distance_m!r}"),
            (len(self.elevation_deg) == 2 and all(5.0 <= e <= 85.0 for e in self.elevation_deg),
             f"elevation_deg must be two angles in [5, 85], got {self.elevation_deg!r}"),
            (0.0 <= self.arc_deg <= 180.0, f"arc_deg must be in [0, 180], got {self.arc_deg}"),
            (self.azimuth_deg is None or math.isfinite(self.azimuth_deg), "azimuth_deg must be finite or None"),
            (self.handle_deg is None or math.isfinite(self.handle_deg), "handle_deg must be finite or None"),
            (0 < self.fov_y_deg < 170, "fov_y_deg must be in (0, 170)"),
            (0 < self.near < self.far, "need 0 < near < far"),
            (self.settle_steps >= 0, "settle_steps must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"SequenceConfig: {msg}")


@dataclass
class Sequence:
    """A rendered sequence. N frames of H x W; objects[k] has instance id k + 1 (objects[0] is the mug)."""

    config: SequenceConfig  # what rendered it
    K: np.ndarray  # (3, 3) float64 intrinsics, pixel centres at integers
    rgb: np.ndarray  # (N, H, W, 3) uint8
    depth: np.ndarray  # (N, H, W) float32 metres along the optical axis, 0 = no surface
    instance: np.ndarray  # (N, H, W) uint8 instance ids: 0 = room, k = objects[k - 1]
    T_world_camera: np.ndarray  # (N, 4, 4) float64 camera (OpenCV optical frame) poses
    objects: list[dict[str, Any]]  # instance_id, category, key, T_world_object (4, 4), keypoints name -> (3,) world
    keypoints: list[list[dict[str, Any]]]  # per frame, render.project_keypoints' dicts (name, instance_id, part,
    #                                        uv [x, y], z, world [x, y, z], in_image, visible)
    scene: dict[str, Any] = field(default_factory=dict)  # room, lighting, physics steps, near/far (provenance)

    @property
    def frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[2])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[1])


class KeypointTruth(NamedTuple):
    """One keypoint of one frame (see `keypoint_truth`)."""

    name: str  # keypoint name, e.g. "handle_top"
    uv: np.ndarray  # (2,) float64 pixel (x, y), pixel centres at integers
    xyz: np.ndarray  # (3,) float64 position in the camera's optical frame (metres)
    visible: bool  # inside the image and not hidden (render.project_keypoints' test)


# ----------------------------------------------------------------------------------------------- scene
def _rng(cfg: SequenceConfig) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_STREAM, cfg.seed]))


def _aabb(cid: int, body: int) -> tuple[np.ndarray, np.ndarray]:
    """World AABB (lo, hi) of all links of a body."""
    import pybullet as pb

    links = range(-1, pb.getNumJoints(body, physicsClientId=cid))
    boxes = [pb.getAABB(body, link, physicsClientId=cid) for link in links]
    return np.min([b[0] for b in boxes], 0), np.max([b[1] for b in boxes], 0)


def _place(cid: int, body: int, xy: np.ndarray, lift: float = 0.004) -> None:
    """Move a body (keeping its orientation) so its AABB is centred on `xy` and `lift` above the table."""
    import pybullet as pb

    lo, hi = _aabb(cid, body)
    pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=cid)
    shift = np.array([xy[0] - (lo[0] + hi[0]) / 2, xy[1] - (lo[1] + hi[1]) / 2, lift - lo[2]])
    pb.resetBasePositionAndOrientation(body, (np.asarray(pos) + shift).tolist(), orn, physicsClientId=cid)


def _footprint(cid: int, body: int) -> float:
    """Radius in xy of the circle around the AABB's centre that holds the body."""
    lo, hi = _aabb(cid, body)
    return float(np.linalg.norm(hi[:2] - lo[:2]) / 2)


def _azimuths_behind(rng: np.random.Generator, mid: float, arc: float, n: int) -> list[float]:
    """n azimuths (radians) spread over the side of the mug away from the camera arc, at least 45 degrees
    outside the arc's ends, so no object stands between a camera and the mug."""
    lo, hi = mid + arc / 2 + math.radians(45), mid + 2 * math.pi - arc / 2 - math.radians(45)
    slots = (np.arange(n) + 0.5 + rng.uniform(-0.3, 0.3, n)) / n
    return (lo + (hi - lo) * slots).tolist()


def _trajectory(cfg: SequenceConfig, target: np.ndarray, mid: float) -> np.ndarray:
    """(N, 4, 4) camera poses on the arc, looking at `target`; distance and elevation change linearly."""
    n = cfg.frames
    poses = []
    for i in range(n):
        t = i / (n - 1) if n > 1 else 0.5
        az = mid + math.radians(cfg.arc_deg) * (t - 0.5)
        el = math.radians(cfg.elevation_deg[0] + (cfg.elevation_deg[1] - cfg.elevation_deg[0]) * t)
        d = cfg.distance_m[0] + (cfg.distance_m[1] - cfg.distance_m[0]) * t
        eye = target + d * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        poses.append(look_at(eye, target))
    return np.stack(poses)


def _object_dict(o: Any) -> dict[str, Any]:
    T = np.asarray(o.T_world_object, np.float64)
    kps = {k: T[:3, :3] @ np.asarray(v, np.float64) + T[:3, 3] for k, v in o.keypoints.items()}
    return {"instance_id": int(o.instance_id), "category": o.category, "key": o.key, "T_world_object": T,
            "keypoints": kps}


def render_sequence(cfg: SequenceConfig, cache_dir: str | Path, progress: bool = False) -> Sequence:
    """Build the scene, settle it and render every frame of the arc.

    Args:
        cfg: the sequence settings (validated here).
        cache_dir: folder for the generated object meshes and room textures (reused by later calls).
        progress: show a progress bar over the frames.

    Raises:
        ValueError: a bad config.
        RuntimeError: the scene came out unusable (the mug tipped over or is not visible in a frame).
    """
    import pybullet as pb

    from .generator import INSTANCE_POOL, GenerateConfig, instance_pools
    from .library import InstanceRef, ensure_instance
    from .render import RenderSettings, label_images, project_keypoints, render
    from .scene import (
        DISTRACTOR,
        SceneObject,
        add_distractor,
        add_instance,
        build_room,
        choose_distractor,
        part_ids,
        random_lighting,
        random_orientation,
        read_pose,
        sample_room,
        settle,
    )

    cfg.validate()
    # meshes and textures are cached by instance key and texture index, not by seed: one folder per
    # object seed, and room textures always from the texture set of seed 0 (the scene seed picks which)
    assets = Path(cache_dir) / f"assets_object_seed_{cfg.object_seed}"
    rng = _rng(cfg)
    pool = instance_pools(GenerateConfig(object_seed=cfg.object_seed,
                                         instances_per_category=cfg.instances_per_category))[INSTANCE_POOL[cfg.split]]
    by_cat: dict[str, list[InstanceRef]] = {}
    for ref in pool:
        by_cat.setdefault(ref.category, []).append(ref)
    if cfg.categories is None:
        choices = [c for c in CATEGORIES if c != "mug"] + [DISTRACTOR_NAME]
        others = [choices[int(rng.integers(len(choices)))] for _ in range(int(rng.integers(1, 4)))]
    else:
        others = list(cfg.categories)
    mid = math.radians(cfg.azimuth_deg) if cfg.azimuth_deg is not None else float(rng.uniform(-math.pi, math.pi))
    mug_ref = by_cat["mug"][int(rng.integers(len(by_cat["mug"])))]
    picks: list[InstanceRef | dict] = [by_cat[c][int(rng.integers(len(by_cat[c])))] if c != DISTRACTOR_NAME
                                       else choose_distractor(rng) for c in others]
    room = sample_room(rng)
    light = random_lighting(rng)
    azimuths = _azimuths_behind(rng, mid, math.radians(cfg.arc_deg), len(picks))
    gaps = rng.uniform(0.015, 0.05, len(picks))
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    handle = math.radians(cfg.handle_deg) if cfg.handle_deg is not None else side * rng.uniform(0.87, 1.75)
    # upright; yaw turns the handle (+x of the mug frame) to azimuth mid + handle
    quats = [list(pb.getQuaternionFromEuler([0.0, 0.0, mid + handle]))]
    quats += [random_orientation(rng, 1.0) for _ in picks]
    parts_table = part_ids()
    settings = RenderSettings(cfg.width, cfg.height, cfg.fov_y_deg, cfg.near, cfg.far, cfg.shadows)
    K = intrinsics(cfg.width, cfg.height, cfg.fov_y_deg)
    cid = pb.connect(pb.DIRECT)
    try:
        pb.setGravity(0, 0, -9.81, physicsClientId=cid)
        away = np.array([0.0, 0.0, 1.0])  # bodies are created up here, then placed by their measured AABB
        mug = add_instance(cid, mug_ref, ensure_instance(assets, cfg.object_seed, mug_ref), MUG_INSTANCE_ID, away,
                           quats[0], parts_table)
        _place(cid, mug.body, np.zeros(2))
        objects: list[SceneObject] = [mug]
        placed = [(np.zeros(2), _footprint(cid, mug.body))]
        for k, (pick, az, gap) in enumerate(zip(picks, azimuths, gaps, strict=True)):
            iid = k + 2
            if isinstance(pick, InstanceRef):
                o = add_instance(cid, pick, ensure_instance(assets, cfg.object_seed, pick), iid, away, quats[k + 1],
                                 parts_table)
            else:
                o = add_distractor(cid, pick, iid, away, quats[k + 1])
            r = _footprint(cid, o.body)
            u = np.array([math.cos(az), math.sin(az)])
            dist = placed[0][1] + r + gap
            # push outwards until clear of everything placed so far
            while any(np.linalg.norm(dist * u - c) < r + rc + 0.01 for c, rc in placed):
                dist += 0.01
            _place(cid, o.body, dist * u)
            placed.append((dist * u, r))
            objects.append(o)
        build_room(cid, room, assets, 0)
        steps = settle(cid, [o.body for o in objects], cfg.settle_steps)
        kept: list[SceneObject] = []
        for o in objects:
            o.T_world_object = read_pose(cid, o)
            if o.T_world_object[2, 3] > -0.05:
                kept.append(o)
            else:  # fell off the table
                pb.removeBody(o.body, physicsClientId=cid)
        if kept[0] is not mug or mug.T_world_object[2, 2] < 0.9:
            raise RuntimeError(f"sequence seed {cfg.seed}: the mug did not come to rest upright; try another seed")
        for k, o in enumerate(kept):
            o.instance_id = k + 1
        height = float(mug.canonical_scale[2]) if mug.canonical_scale is not None else 0.1
        target = mug.T_world_object[:3, :3] @ np.array([0.0, 0.0, height / 2]) + mug.T_world_object[:3, 3]
        poses = _trajectory(cfg, target, mid)
        n, h, w = cfg.frames, cfg.height, cfg.width
        rgb = np.empty((n, h, w, 3), np.uint8)
        depth = np.empty((n, h, w), np.float32)
        instance = np.empty((n, h, w), np.uint8)
        keypoints = []
        from tqdm import tqdm

        for i in tqdm(range(n), desc="render sequence", unit="frame", disable=not progress, dynamic_ncols=True):
            rgb[i], depth[i], seg = render(cid, settings, poses[i], light)
            instance[i] = label_images(seg, kept)[0]
            keypoints.append(project_keypoints(depth[i], instance[i], K, poses[i], kept))
            mug_px = int(np.count_nonzero(instance[i] == MUG_INSTANCE_ID))
            if mug_px < MIN_MUG_FRACTION * h * w:
                raise RuntimeError(f"sequence seed {cfg.seed}: the mug covers only {mug_px} pixels in frame {i}; "
                                   "try another seed or camera settings")
        scene = {"room": room, "lighting": dataclasses.asdict(light), "physics_steps": int(steps),
                 "near": cfg.near, "far": cfg.far, "look_at": target.tolist(),
                 "arc_mid_azimuth_deg": math.degrees(mid),
                 "distractors": {o.instance_id: o.source for o in kept if o.category == DISTRACTOR}}
        return Sequence(cfg, K, rgb, depth, instance, poses, [_object_dict(o) for o in kept], keypoints,
                        json.loads(json.dumps(scene)))
    finally:
        pb.disconnect(physicsClientId=cid)


# -------------------------------------------------------------------------------------------- files
_ARRAYS = ("K", "rgb", "depth", "instance", "T_world_camera")


def _meta(seq: Sequence) -> dict[str, Any]:
    objects = [{**o, "T_world_object": np.asarray(o["T_world_object"]).tolist(),
                "keypoints": {k: np.asarray(v).tolist() for k, v in o["keypoints"].items()}} for o in seq.objects]
    return {"format_version": SEQUENCE_FORMAT_VERSION, "config": to_dict(seq.config), "objects": objects,
            "keypoints": seq.keypoints, "scene": seq.scene}


def save_sequence(seq: Sequence, path: str | Path) -> None:
    """Write a sequence as one compressed .npz (arrays + JSON metadata), atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = np.frombuffer(json.dumps(_meta(seq), sort_keys=True).encode(), np.uint8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, meta=meta, **{k: np.ascontiguousarray(getattr(seq, k)) for k in _ARRAYS})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_sequence(path: str | Path) -> Sequence:
    """Read a file written by `save_sequence`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a sequence file, or one of another format version.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise ValueError(f"{path} is not a sequence file (no metadata)")
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format_version") != SEQUENCE_FORMAT_VERSION:
                raise ValueError(f"{path} has sequence format {meta.get('format_version')!r}, "
                                 f"this version reads {SEQUENCE_FORMAT_VERSION}")
            arrays = {k: z[k] for k in _ARRAYS}
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable sequence file: {e}") from e
    objects = [{**o, "T_world_object": np.asarray(o["T_world_object"], np.float64),
                "keypoints": {k: np.asarray(v, np.float64) for k, v in o["keypoints"].items()}}
               for o in meta["objects"]]
    return Sequence(from_dict(SequenceConfig, meta["config"]), objects=objects, keypoints=meta["keypoints"],
                    scene=meta["scene"], **arrays)


def sequence_cache_path(cfg: SequenceConfig, cache_root: str | Path) -> Path:
    """Where `cached_sequence` keeps the sequence of `cfg`."""
    return Path(cache_root) / f"sequence_v{SEQUENCE_FORMAT_VERSION}_{config_hash(cfg)}.npz"


def cached_sequence(cfg: SequenceConfig, cache_root: str | Path, progress: bool = False,
                    log: Callable[[str], None] | None = None) -> Sequence:
    """The sequence of `cfg`: loaded from `cache_root` if it was rendered before, else rendered and saved
    (object meshes and room textures are cached there too). `log` receives one line saying which and
    how long it took.

    A cached file that cannot be read (truncated, other format) is rendered again and replaced.
    """
    cfg.validate()
    path = sequence_cache_path(cfg, cache_root)
    t0 = time.perf_counter()
    if path.is_file():
        try:
            seq = load_sequence(path)
            if log:
                log(f"loaded {seq.frames} frames {seq.width}x{seq.height} from {path} in "
                    f"{time.perf_counter() - t0:.2f} s")
            return seq
        except (ValueError, KeyError) as e:
            if log:
                log(f"cannot use the cached sequence ({e}); rendering it again")
    seq = render_sequence(cfg, Path(cache_root), progress=progress)
    t1 = time.perf_counter()
    save_sequence(seq, path)
    if log:
        log(f"rendered {seq.frames} frames {seq.width}x{seq.height} in {t1 - t0:.1f} s "
            f"({(t1 - t0) / seq.frames * 1000:.0f} ms/frame incl. scene setup), saved to {path} in "
            f"{time.perf_counter() - t1:.1f} s")
    return seq


# -------------------------------------------------------------------------------------- ground truth
def _check_frame(seq: Sequence, frame: int) -> int:
    if not -seq.frames <= frame < seq.frames:
        raise IndexError(f"frame {frame} out of range for a sequence of {seq.frames} frames")
    return frame % seq.frames


def keypoint_truth(seq: Sequence, frame: int, name: str | None = None,
                   instance_id: int | None = None) -> list[KeypointTruth]:
    """Ground-truth keypoints of a frame, optionally only those called `name` and / or of one object
    (the mug is MUG_INSTANCE_ID). By default the mug is the only mug, so names are unambiguous for it;
    other categories share some names (rim_front, body_front, bottom_center): filter by instance_id.

    Returns:
        KeypointTruth(name, uv (2,), xyz (3,) in the camera optical frame, visible) in the order of
        `seq.keypoints[frame]` (objects in order, then the category's keypoint order).
    """
    frame = _check_frame(seq, frame)
    T_cw = np.linalg.inv(seq.T_world_camera[frame])
    out = []
    for kp in seq.keypoints[frame]:
        if (name is not None and kp["name"] != name) or (instance_id is not None and kp["instance_id"] != instance_id):
            continue
        xyz = T_cw[:3, :3] @ np.asarray(kp["world"], np.float64) + T_cw[:3, 3]
        out.append(KeypointTruth(kp["name"], np.asarray(kp["uv"], np.float64), xyz, bool(kp["visible"])))
    return out


def relative_pose(seq: Sequence, a: int, b: int) -> np.ndarray:
    """T_cam_b_cam_a (4, 4): maps points in camera a's optical frame to camera b's."""
    a, b = _check_frame(seq, a), _check_frame(seq, b)
    return np.linalg.inv(seq.T_world_camera[b]) @ seq.T_world_camera[a]


def ground_truth_dict(seq: Sequence) -> dict[str, Any]:
    """JSON-ready ground truth (K, image size, per-frame camera poses and keypoints, objects) for consumers
    in other processes (`sim camera --save-ground-truth`)."""
    meta = _meta(seq)
    return {"format_version": SEQUENCE_FORMAT_VERSION, "config": meta["config"], "width": seq.width,
            "height": seq.height, "K": seq.K.tolist(), "T_world_camera": seq.T_world_camera.tolist(),
            "objects": meta["objects"], "keypoints": seq.keypoints, "mug_instance_id": MUG_INSTANCE_ID}
