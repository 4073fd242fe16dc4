"""Dataset generation: settings, the per-scene pipeline, splits, parallel workers and resume.

Scene i is a pure function of (settings, seed, i): its random numbers come from
SeedSequence([seed, i]) and it runs in its own pybullet connection, so the files are byte-identical
whatever the number of workers, the order scenes finish in, or whether the run was interrupted and
resumed. Finished scenes (folders named scene_NNNNNN) are never redone.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet as pb

from .camera import intrinsics
from .categories import CATEGORIES, ShapeModel
from .format import (
    CACHE_DIR,
    DATASET_FILE,
    FORMAT_VERSION,
    NOISY_DEPTH_FILE,
    SCENE_FILE,
    SCENES_DIR,
    VIEW_FILES,
    commit_dir,
    read_json,
    scene_name,
    view_file,
    write_json,
    write_view,
)
from .library import APPEARANCES, InstanceRef, category_id, ensure_instance, ensure_surface_texture, instance_split
from .noise import apply_depth_noise
from .render import (
    KEYPOINT_FOOTPRINTS,
    KEYPOINT_MIN_TOL,
    RenderSettings,
    canonical_coordinates,
    label_images,
    project_keypoints,
    render,
)
from .scene import (
    DISTRACTOR,
    DISTRACTOR_ID,
    N_SURFACE_TEXTURES,
    Lighting,
    SceneObject,
    add_distractor,
    add_instance,
    build_room,
    choose_distractor,
    drop_positions,
    hemisphere_cameras,
    part_ids,
    random_lighting,
    random_orientation,
    read_pose,
    realistic_lighting,
    sample_room,
    settle,
    texture_body,
)
from .sensor import apply_sensor, sample_sensor
from .shading import add_highlights
from .textures import Material

#: scene index % 10 -> split. "test_scenes" holds new scenes of training instances; "val" and "test"
#: scenes contain only validation / test instances, which never appear in training scenes.
SCENE_SPLIT_PATTERN = ("train",) * 7 + ("test_scenes", "val", "test")
SCENE_SPLITS = ("train", "test_scenes", "val", "test")
INSTANCE_POOL = {"train": "train", "test_scenes": "train", "val": "val", "test": "test"}


@dataclass
class GenerateConfig:
    """Everything that determines the generated files (the worker count does not)."""

    scenes: int = 10  # number of scenes
    views: int = 10  # camera views per scene
    width: int = 320  # image width in pixels
    height: int = 240  # image height in pixels
    seed: int = 0  # scene seed: scene i depends only on (settings, seed, i)
    object_seed: int = 0  # object library seed: instance shapes, textures and the instance split
    instances_per_category: int = 60  # library size per category (split train/val/test 80/10/10)
    objects_min: int = 3  # category objects per scene, at least
    objects_max: int = 6  # category objects per scene, at most
    distractors_max: int = 3  # pybullet_data clutter objects per scene, 0..this
    fov_y_deg: float = 45.0  # vertical field of view
    near: float = 0.05  # near clipping plane (metres)
    far: float = 5.0  # far clipping plane (metres)
    distance_min: float = 0.45  # camera distance to the look-at point (metres), lower bound
    distance_max: float = 0.8  # upper bound
    elevation_min_deg: float = 25.0  # camera elevation above the table plane, lower bound
    elevation_max_deg: float = 70.0  # upper bound
    upright_fraction: float = 0.6  # fraction of objects dropped upright (the rest in random orientation)
    settle_steps: int = 720  # maximum physics steps (240 Hz) to let the objects come to rest
    shadows: bool = False  # TinyRenderer shadows (faint and blocky at 320x240; about 15-20% more time)
    depth_noise: bool = False  # also write a noisy sensor-like depth per view (depth_noisy_mm.png)
    # "realistic": photo textures (training photos only) with printed labels, matte-to-glossy materials,
    # random light colour / intensity and camera effects (noise, blur, white balance, exposure, JPEG) on
    # the RGB; "cartoon": the original flat procedural look. Geometry, depth, labels and ground truth do
    # not depend on it (same seed => same scenes and cameras)
    appearance: str = "realistic"

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        checks = [
            (self.scenes >= 1, "scenes must be >= 1"), (self.views >= 1, "views must be >= 1"),
            (16 <= self.width <= 4096 and 16 <= self.height <= 4096, "image size must be 16..4096 per side"),
            (self.seed >= 0 and self.object_seed >= 0, "seeds must be >= 0"),
            (self.instances_per_category >= 10, "instances_per_category must be >= 10"),
            (1 <= self.objects_min <= self.objects_max, "need 1 <= objects_min <= objects_max"),
            (self.objects_max + self.distractors_max <= 40, "at most 40 objects per scene"),
            (self.distractors_max >= 0, "distractors_max must be >= 0"),
            (0 < self.fov_y_deg < 170, "fov_y_deg must be in (0, 170)"),
            (0 < self.near < self.far, "need 0 < near < far"),
            (0 < self.distance_min <= self.distance_max, "need 0 < distance_min <= distance_max"),
            (0 < self.elevation_min_deg <= self.elevation_max_deg < 90, "need 0 < elevation_min <= max < 90"),
            (0.0 <= self.upright_fraction <= 1.0, "upright_fraction must be in [0, 1]"),
            (self.settle_steps >= 0, "settle_steps must be >= 0"),
            (self.appearance in APPEARANCES, f"appearance must be one of {', '.join(APPEARANCES)}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def scene_split(index: int) -> str:
    """Split of scene `index` (SCENE_SPLIT_PATTERN repeats every 10 scenes)."""
    return SCENE_SPLIT_PATTERN[index % len(SCENE_SPLIT_PATTERN)]


def instance_pools(cfg: GenerateConfig) -> dict[str, list[InstanceRef]]:
    """Instances available to scenes of each instance split."""
    pools: dict[str, list[InstanceRef]] = {s: [] for s in ("train", "val", "test")}
    for cat in CATEGORIES:
        for split, idx in instance_split(cfg.object_seed, cat, cfg.instances_per_category).items():
            pools[split] += [InstanceRef(cat, i) for i in idx]
    return pools


def manifest(cfg: GenerateConfig) -> dict:
    """dataset.json: format, settings, label tables and splits (a pure function of the settings)."""
    parts = part_ids()
    pools = instance_pools(cfg)
    scenes = {s: [scene_name(i) for i in range(cfg.scenes) if scene_split(i) == s] for s in SCENE_SPLITS}
    return {
        "format_version": FORMAT_VERSION,
        "generator": dataclasses.asdict(cfg),
        "categories": [{"id": category_id(c.name), "name": c.name, "parts": list(c.parts),
                        "keypoints": list(c.keypoints)} for c in CATEGORIES.values()]
        + [{"id": DISTRACTOR_ID, "name": DISTRACTOR, "parts": [], "keypoints": []}],
        "parts": [{"id": 0, "category": None, "name": "none"}]
        + [{"id": i, "category": c, "name": p} for (c, p), i in parts.items()],
        "splits": {"instances": {s: [r.key for r in pools[s]] for s in ("train", "val", "test")},
                   "scenes": scenes, "scene_instance_pool": INSTANCE_POOL},
        "view_files": VIEW_FILES,
        "keypoint_visibility": {"min_tol_m": KEYPOINT_MIN_TOL, "pixel_footprints": KEYPOINT_FOOTPRINTS},
    }


def _bound_radius(shape: ShapeModel) -> float:
    """Radius of the sphere about the centre of mass that holds the object (drop spacing)."""
    v = np.concatenate([p.mesh.vertices for p in shape.parts])
    return float(np.linalg.norm(v - shape.center_of_mass, axis=1).max())


def generate_scene(cfg: GenerateConfig, index: int, root: Path) -> int:
    """Simulate, render and write scene `index` under root/scenes; returns the number of views.

    Random streams (all from SeedSequence([seed, index, ...])): [seed, index] the scene (room, objects,
    physics, cameras), [seed, index, 1] the depth noise, [seed, index, 2] the realistic look (light,
    materials, camera effects). So a scene's geometry is the same in both looks."""
    root = Path(root)
    cache = root / CACHE_DIR
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index]))
    split = scene_split(index)
    pool = instance_pools(cfg)[INSTANCE_POOL[split]]
    parts_table = part_ids()
    settings = RenderSettings(cfg.width, cfg.height, cfg.fov_y_deg, cfg.near, cfg.far, cfg.shadows)
    cid = pb.connect(pb.DIRECT)
    try:
        pb.setGravity(0, 0, -9.81, physicsClientId=cid)
        room = sample_room(rng)
        light = random_lighting(rng)
        n_obj = min(int(rng.integers(cfg.objects_min, cfg.objects_max + 1)), len(pool))
        refs = [pool[i] for i in sorted(rng.choice(len(pool), size=n_obj, replace=False).tolist())]
        sources = [choose_distractor(rng) for _ in range(int(rng.integers(0, cfg.distractors_max + 1)))]
        models = [ensure_instance(cache, cfg.object_seed, r, cfg.appearance) for r in refs]
        radii = [_bound_radius(m[1]) for m in models] + [0.06 * float(s["scale"]) for s in sources]
        positions = drop_positions(rng, radii)
        quats = [random_orientation(rng, cfg.upright_fraction) for _ in radii]
        objects: list[SceneObject] = []
        for k, (ref, model) in enumerate(zip(refs, models, strict=True)):
            objects.append(add_instance(cid, ref, model, k + 1, positions[k], quats[k], parts_table))
        for j, src in enumerate(sources):
            k = len(refs) + j
            objects.append(add_distractor(cid, src, k + 1, positions[k], quats[k]))
        build_room(cid, room, cache, cfg.seed, cfg.appearance)
        look = _realistic_look(cid, cfg, index, cache, objects, models) if cfg.appearance == "realistic" else None
        if look is not None:
            light = look.light
        steps = settle(cid, [o.body for o in objects], cfg.settle_steps)
        kept = []
        for o in objects:  # objects that fell off the table leave the scene
            o.T_world_object = read_pose(cid, o)
            if o.T_world_object[2, 3] > -0.05:
                kept.append(o)
            else:
                pb.removeBody(o.body, physicsClientId=cid)
        for k, o in enumerate(kept):
            o.instance_id = k + 1
        centre = np.mean([o.T_world_object[:3, 3] for o in kept], 0) if kept else np.zeros(3)
        target = np.array([centre[0], centre[1], 0.03])
        cams = hemisphere_cameras(rng, target, cfg.views, (cfg.distance_min, cfg.distance_max),
                                  (cfg.elevation_min_deg, cfg.elevation_max_deg))
        K = intrinsics(cfg.width, cfg.height, cfg.fov_y_deg)
        noise_rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index, 1]))
        scenes_dir = root / SCENES_DIR
        final = scenes_dir / scene_name(index)
        tmp = scenes_dir / f".{scene_name(index)}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        materials: dict[int, Material] = {}
        if look is not None:
            materials = {o.instance_id: look.materials[o.body] for o in kept} | {0: look.room_material}
        views = []
        for v, T_wc in enumerate(cams):
            rendered, depth, seg = render(cid, settings, T_wc, light)
            instance, category, part = label_images(seg, kept)
            coords = canonical_coordinates(depth, instance, K, T_wc, kept)
            view_meta: dict = {}
            rgb = rendered
            if look is not None:  # RGB only: depth, labels and ground truth are those of the render
                rgb = add_highlights(rgb, depth, instance, K, T_wc, np.asarray(light.direction),
                                     np.asarray(light.color), materials)
                sensor = sample_sensor(look.rng)
                rgb = apply_sensor(rgb, sensor, look.rng)
                view_meta["sensor"] = sensor.to_json()
            images = {"rgb": rgb, "depth": depth, "instance": instance, "category": category, "part": part,
                      "coords": coords}
            files = {name.split(".")[0]: view_file(v, name) for name in VIEW_FILES}
            if cfg.depth_noise:  # dark-surface dropout follows the surface, not the colour camera's effects
                images["depth_noisy"] = apply_depth_noise(depth, rendered, float(K[0, 0]), noise_rng)
                files["depth_noisy_mm"] = view_file(v, NOISY_DEPTH_FILE)
            write_view(tmp, v, images)
            views.append({"index": v, "width": cfg.width, "height": cfg.height, "K": K, "T_world_camera": T_wc,
                          "near": cfg.near, "far": cfg.far, "files": files,
                          "keypoints": project_keypoints(depth, instance, K, T_wc, kept), **view_meta})
        scene_meta = {
            "format_version": FORMAT_VERSION, "name": scene_name(index), "index": index, "split": split,
            "instance_pool": INSTANCE_POOL[split], "seed": [cfg.seed, index], "physics_steps": steps,
            "room": room, "lighting": dataclasses.asdict(light),
            "objects": [_object_meta(o) for o in kept], "views": views}
        if look is not None:
            scene_meta["appearance"] = {
                "look": cfg.appearance,
                "materials": {str(i): dataclasses.asdict(m) for i, m in sorted(materials.items())},
                "distractor_textures": {str(o.instance_id): look.distractor_textures[o.body] for o in kept
                                        if o.body in look.distractor_textures}}
        write_json(tmp / SCENE_FILE, scene_meta)
        commit_dir(tmp, final)
        return len(views)
    finally:
        pb.disconnect(physicsClientId=cid)


@dataclass
class _RealisticLook:
    """The per-scene draws of the realistic look (all from the scene's look stream `rng`)."""

    rng: np.random.Generator  # the scene's look stream; the views' camera effects come next
    light: Lighting
    room_material: Material
    materials: dict[int, Material]  # pybullet body -> material
    distractor_textures: dict[int, int]  # pybullet body of a clutter object -> clutter texture index


def _realistic_look(cid: int, cfg: GenerateConfig, index: int, cache: Path, objects: list[SceneObject],
                    models: list) -> _RealisticLook:
    """Light, materials and clutter textures of scene `index` (stream [seed, index, 2]); library
    instances keep their own material, clutter gets a photo-and-label texture."""
    from .appearance import random_material

    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index, 2]))
    light = realistic_lighting(rng)
    room_material = random_material(rng)
    materials: dict[int, Material] = {}
    for k, o in enumerate(objects):
        drawn = random_material(rng)  # drawn for every object: a fixed number of draws
        materials[o.body] = models[k][2].material if k < len(models) else drawn
    textures: dict[int, int] = {}
    for o in objects[len(models):]:
        textures[o.body] = int(rng.integers(N_SURFACE_TEXTURES))
        texture_body(cid, o.body, ensure_surface_texture(cache, cfg.seed, "distractor", textures[o.body],
                                                         cfg.appearance))
    return _RealisticLook(rng, light, room_material, materials, textures)


def _object_meta(o: SceneObject) -> dict:
    meta = {"instance_id": o.instance_id, "category": o.category, "category_id": o.category_id, "key": o.key,
            "T_world_object": o.T_world_object, "part_ids": sorted(set(o.link_parts) - {0})}
    if o.category == DISTRACTOR:
        meta["source"] = o.source
    else:
        meta.update({"params": o.params, "canonical_scale": o.canonical_scale, "keypoints_object": o.keypoints,
                     "keypoint_parts": o.keypoint_parts, "model_dir": f"{CACHE_DIR}/objects/{o.key}"})
    return meta


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core: no thread oversubscription


@dataclass
class GenerateReport:
    """What a generate run did."""

    scenes_done: int  # scenes generated by this run
    scenes_skipped: int  # scenes already complete (resume)
    views_done: int  # views generated by this run
    seconds: float  # wall time of the scene work (without the dataset.json check)

    @property
    def views_per_second(self) -> float:
        return self.views_done / self.seconds if self.seconds > 0 else math.nan


class GenerateError(RuntimeError):
    """A user-facing problem (bad output folder, incompatible existing dataset)."""


def prepare_output(cfg: GenerateConfig, root: Path) -> list[int]:
    """Create or check the output folder and dataset.json; returns the scene indices still to do."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise GenerateError(f"cannot write to output folder {root}: {e.strerror or e}") from e
    man = manifest(cfg)
    existing = root / DATASET_FILE
    if existing.is_file():
        old = read_json(existing)
        old_gen = dict(old.get("generator", {}), scenes=cfg.scenes)
        new_gen = dict(man["generator"])
        # datasets of format 1.0 predate the appearance setting: they are cartoon datasets
        old_gen.setdefault("appearance", "cartoon")
        same_format = old.get("format_version") in (FORMAT_VERSION, "1.0")
        if not same_format or old_gen != new_gen:
            diff = sorted(k for k in set(old_gen) | set(new_gen) if old_gen.get(k) != new_gen.get(k))
            raise GenerateError(f"{root} holds a dataset generated with other settings ({', '.join(diff) or 'format'}"
                                "); resume with the same arguments (datasets made before --appearance existed "
                                "need --appearance cartoon) or choose another --out")
    elif any(p.name not in (CACHE_DIR, SCENES_DIR) for p in root.iterdir()):
        raise GenerateError(f"output folder {root} is not empty and holds no {DATASET_FILE}")
    write_json(existing, man)
    scenes = root / SCENES_DIR
    scenes.mkdir(exist_ok=True)
    for stale in scenes.glob(".scene_*"):  # partial scenes of an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    return [i for i in range(cfg.scenes) if not (scenes / scene_name(i) / SCENE_FILE).is_file()]


def generate(cfg: GenerateConfig, root: Path, workers: int = 1, progress: bool = True) -> GenerateReport:
    """Generate (or finish) the dataset in `root` with `workers` processes."""
    cfg.validate()
    if workers < 1:
        raise ValueError("workers must be >= 1")
    todo = prepare_output(cfg, Path(root))
    from tqdm import tqdm

    bar = tqdm(total=len(todo) * cfg.views, unit="view", desc="sim generate", disable=not progress or not todo,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    views = 0
    try:
        if workers == 1 or len(todo) <= 1:
            for i in todo:
                views += generate_scene(cfg, i, Path(root))
                bar.update(cfg.views)
        else:
            # spawn: children start clean (no inherited pybullet state or thread pools); a worker that
            # dies raises BrokenProcessPool here instead of hanging the run
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker) as pool:
                futures = [pool.submit(generate_scene, cfg, i, Path(root)) for i in todo]
                try:
                    for fut in as_completed(futures):
                        n = fut.result()
                        views += n
                        bar.update(n)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return GenerateReport(len(todo), cfg.scenes - len(todo), views, time.perf_counter() - t0)
