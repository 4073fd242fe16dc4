"""Category-level reference keypoint files from the synthetic dataset's ground-truth keypoints.

The generator knows where every named keypoint of every object is in every view (scene.json,
docs/sim_format.md). Annotating a few training instances at those pixels and averaging the
descriptors (`matching.keypoints.average_keypoints`) gives a category-level keypoint file
(docs/keypoint_file.md) without clicking; locating it in scenes of held-out instances and comparing
with their ground truth says how well it transfers.

    views = select_reference_views("data/sim_default", "mug")            # one view per instance
    ref = build_reference_keypoints(extractor, "data/sim_default", "mug")  # annotate + average
    err = keypoint_transfer_errors(extractor, ref, "data/sim_default", "mug", split="test")
    print(err.table(ref))

Instance-level files come from a rendered sequence instead (`sequence_keypoints`): the tracked mug's
own keypoints annotated in one frame, the Dense Object Nets workflow of showing the object once.

Plain NumPy + the runtime extractor; no ROS.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry.lifting import lift_points
from ..matching.keypoints import (
    LocatedKeypoints,
    ReferenceKeypoints,
    annotate_keypoints,
    average_keypoints,
    locate_keypoints,
    model_identity,
)
from ..runtime.extractor import DescriptorExtractor
from .dataset import SPLITS, SyntheticDataset
from .format import SCENES_DIR, read_view, view_file
from .sequence import MUG_INSTANCE_ID, _check_frame
from .sequence import Sequence as SimSequence

#: pixel thresholds of the "within" fractions
WITHIN_PX = (5.0, 10.0)
#: Confidence thresholds of `TransferErrors.confidence_table` (the node's default `keypoint_min_confidence` is 0.1).
CONFIDENCE_SWEEP = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)


@dataclass(frozen=True)
class ReferenceView:
    """One instance's reference view: the view of the split where most of its keypoints are visible."""

    # Instance key of the object library ("mug_017").
    key: str
    # Scene name ("scene_000123") and view index in it.
    scene: str
    view: int
    # The object's instance id in that scene (instance.png value).
    instance_id: int
    # Visible named keypoints of the instance in that view -> ground-truth pixel (x, y), in the
    # category's keypoint order.
    keypoints: dict[str, tuple[float, float]]
    # Pixels of the object in that view (second tie-break).
    pixels: int
    # Path of the view's RGB image.
    image: str


def open_dataset(dataset_root: str | Path, category: str) -> tuple[SyntheticDataset, list[str]]:
    """The dataset and the category's keypoint names; clear errors for a missing folder, a folder that
    is not a dataset and a category without keypoints."""
    root = Path(dataset_root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    ds = SyntheticDataset(root)  # raises when there is no dataset.json or its version is unknown
    cats = {c["name"]: list(c.get("keypoints", [])) for c in ds.meta["categories"]}
    if not cats.get(category):
        known = ", ".join(n for n, k in cats.items() if k)
        raise ValueError(f"category {category!r} has no keypoints in {root} (categories with keypoints: {known})")
    return ds, cats[category]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _scene_names(ds: SyntheticDataset, split: str) -> list[str]:
    """Complete scenes of a split, in index order."""
    planned = set(ds.meta["splits"]["scenes"].get(split, []))
    return [n for n in ds.scenes if n in planned]


def _category_objects(meta: dict, category: str) -> dict[int, str]:
    """instance_id -> key of the scene's objects of `category`."""
    return {int(o["instance_id"]): str(o["key"]) for o in meta["objects"] if o["category"] == category}


def select_reference_views(dataset_root: str | Path, category: str, split: str = "train", instances: int = 8,
                           min_visible: int = 3, seed: int = 0) -> list[ReferenceView]:
    """One reference view for each of up to `instances` distinct instances of `category`.

    Eligible instances are those with at least `min_visible` named keypoints visible in some view of a
    scene of `split`; if there are more than `instances`, a subset is drawn with `seed`. Each chosen
    instance gets the view with the most visible keypoints; ties go to the view where the object covers
    the most pixels, then to the lowest (scene, view) index. Deterministic; sorted by instance key.
    """
    _check_split(split)
    if instances < 1 or min_visible < 1:
        raise ValueError(f"instances and min_visible must be >= 1, got {instances} and {min_visible}")
    ds, names = open_dataset(dataset_root, category)
    order = {n: i for i, n in enumerate(names)}
    scenes = _scene_names(ds, split)
    # key -> candidate views [(n_visible, scene index, view, instance id, scene name, keypoints)]
    cands: dict[str, list[tuple]] = {}
    for name in scenes:
        meta = ds.scene(name)
        objects = _category_objects(meta, category)
        for v in meta["views"]:
            vis: dict[int, dict[str, tuple[float, float]]] = {}
            for k in v["keypoints"]:
                if k["visible"] and k["instance_id"] in objects and k["name"] in order:
                    vis.setdefault(k["instance_id"], {})[k["name"]] = (float(k["uv"][0]), float(k["uv"][1]))
            for iid, kps in vis.items():
                kps = dict(sorted(kps.items(), key=lambda kv: order[kv[0]]))
                cands.setdefault(objects[iid], []).append((len(kps), int(meta["index"]), int(v["index"]), iid,
                                                           name, kps))
    eligible = sorted(key for key, c in cands.items() if max(x[0] for x in c) >= min_visible)
    if not eligible:
        raise ValueError(f"no {category} instance has >= {min_visible} visible keypoints in a view of the "
                         f"{split!r} split of {ds.root} ({len(scenes)} scenes)")
    if len(eligible) > instances:
        pick = np.random.default_rng(seed).choice(len(eligible), size=instances, replace=False)
        eligible = [eligible[i] for i in sorted(pick.tolist())]
    out = []
    for key in eligible:
        best = max(x[0] for x in cands[key])
        tied = [x for x in cands[key] if x[0] == best]
        # Object size (read from the instance image) only for the views tied on visible keypoints.
        pixels = [int((read_view(ds.root / SCENES_DIR / x[4], x[2], ("instance",))["instance"] == x[3]).sum())
                  for x in tied]
        i = min(range(len(tied)), key=lambda j: (-pixels[j], tied[j][1], tied[j][2]))
        _, _, view, iid, scene, kps = tied[i]
        out.append(ReferenceView(key, scene, view, iid, kps, pixels[i],
                                 str(ds.root / SCENES_DIR / scene / view_file(view, "rgb.png"))))
    return out


def _at_resolution(extractor: DescriptorExtractor, resolution: tuple[int, int] | None) -> DescriptorExtractor:
    """The extractor, processing at `resolution` (W, H) instead of its configured one (same backend)."""
    if resolution is None or tuple(resolution) == tuple(extractor.config.resolution):
        return extractor
    cfg = dataclasses.replace(extractor.config, resolution=tuple(resolution), warmup_iters=0)
    return DescriptorExtractor(extractor.backend, extractor.info, cfg)


def _resolution_text(extractor: DescriptorExtractor) -> str:
    w, h = extractor.config.resolution
    return f"{w}x{h}" if w else "the images' own size"


def frame_keypoints(extractor: DescriptorExtractor, rgb: np.ndarray, truth: Sequence[Mapping[str, Any]],
                    instance_id: int, category: str, image: str = "", min_visible: int = 2) -> ReferenceKeypoints:
    """Instance-level keypoints: one object's ground-truth keypoints visible in a frame, annotated at their pixels
    on the extractor's descriptor map of that frame (`annotate_keypoints`). With these the node tracks this very
    object; the category-level file (`build_reference_keypoints`) must transfer to unseen instances instead.

    Args:
        rgb: (H, W, 3) uint8 frame.
        truth: the frame's keypoint dicts (name, uv, visible, instance_id), as a rendered sequence
            (`Sequence.keypoints[frame]`) or a sample bag's ground_truth.json hold them.

    Raises:
        ValueError: fewer than `min_visible` keypoints of the object are visible.
    """
    points = {k["name"]: (float(k["uv"][0]), float(k["uv"][1])) for k in truth
              if int(k["instance_id"]) == instance_id and k["visible"]}
    if len(points) < min_visible:
        raise ValueError(f"{image or 'the frame'} shows {len(points)} keypoint(s) of object {instance_id} "
                         f"({', '.join(points) or 'none'}); at least {min_visible} are needed")
    return annotate_keypoints(extractor.extract(rgb), points, model_identity(extractor.info), category, image,
                              notes=f"the visible keypoints of object {instance_id} in {image or 'one frame'}, "
                              f"annotated at their ground-truth pixels at {_resolution_text(extractor)}")


def sequence_keypoints(extractor: DescriptorExtractor, seq: SimSequence, frame: int = 0,
                       instance_id: int = MUG_INSTANCE_ID, min_visible: int = 2) -> ReferenceKeypoints:
    """`frame_keypoints` of one object of a rendered sequence (`sim.sequence`) in one of its frames.

    Raises:
        ValueError: no object `instance_id`, or fewer than `min_visible` of its keypoints are visible in the
            frame.
        IndexError: no such frame.
    """
    category = next((o["category"] for o in seq.objects if int(o["instance_id"]) == instance_id), None)
    if category is None:
        raise ValueError(f"the sequence has no object {instance_id} (it has {len(seq.objects)})")
    frame = _check_frame(seq, frame)
    return frame_keypoints(extractor, seq.rgb[frame], seq.keypoints[frame], instance_id, category,
                           f"sequence frame {frame}", min_visible)


def build_reference_keypoints(extractor: DescriptorExtractor, dataset_root: str | Path, category: str,
                              split: str = "train", instances: int = 8, min_visible: int = 3, seed: int = 0,
                              resolution: tuple[int, int] | None = None,
                              views: Sequence[ReferenceView] | None = None) -> ReferenceKeypoints:
    """Category-level reference keypoints from ground-truth keypoints of training instances.

    Each reference view (`select_reference_views`, or `views` given explicitly) is annotated at the
    ground-truth pixels of its visible keypoints only; the per-instance files are averaged (a name
    missing in some instances is averaged over those that have it). Keypoint order: the category's.

    Args:
        resolution: processing resolution (W, H) for the descriptors; None = the extractor's own. Use
            the one the node will run at: descriptors change with scale.
    """
    ds, names = open_dataset(dataset_root, category)
    if views is None:
        views = select_reference_views(ds.root, category, split, instances, min_visible, seed)
    if not views:
        raise ValueError("no reference views given")
    source = " and ".join(sorted({str(ds.scene(rv.scene)["split"]) for rv in views})) + " split"
    ex = _at_resolution(extractor, resolution)
    model = model_identity(ex.info)
    refs = []
    for rv in views:
        rgb = read_view(ds.root / SCENES_DIR / rv.scene, rv.view, ("rgb",))["rgb"]
        refs.append(annotate_keypoints(ex(rgb), rv.keypoints, model, category, image=rv.image))
    avg = average_keypoints(refs, category)
    rank = {n: i for i, n in enumerate(names)}  # the category's order; other names (caller's views) last
    order = sorted(range(len(avg.names)), key=lambda i: rank.get(avg.names[i], len(names)))
    used = ", ".join(f"{rv.key} ({rv.scene} view {rv.view}, {len(rv.keypoints)} visible)" for rv in views)
    notes = (f"built from the synthetic dataset {ds.root} ({source}) with its ground-truth keypoints: "
             f"{len(views)} {category} instances, one view each: {used}; processing resolution "
             f"{_resolution_text(ex)}")
    return ReferenceKeypoints([avg.names[i] for i in order], avg.descriptors[order], category, avg.model,
                              [avg.sources[i] for i in order], notes)


@dataclass(frozen=True)
class KeypointStats:
    """Transfer errors of one keypoint name (or of all together)."""

    # Views where the name is visible on at least one instance of the category (trials).
    views: int
    # Of those, views where it was located (confidence >= min_confidence).
    found: int
    # Pixel error of the located keypoints to the nearest visible same-named ground truth.
    median_px: float
    mean_px: float
    # Fraction of trials located within 5 / 10 px (not found counts as a miss).
    within_5px: float
    within_10px: float
    # 3D error (mm) between the surface point under the located pixel and the ground-truth keypoint.
    median_mm: float
    # Located keypoints with a depth under them (those the 3D error is taken over).
    n_3d: int


@dataclass
class KeypointTrials:
    """Every trial of one keypoint name.

    Shape (n trials):
        view: (n,) index into TransferErrors.views; uv: (n, 2) located pixel (NaN = not found);
        uv_gt: (n, 2) ground truth it is compared with (the nearest visible same-named keypoint; the
        first one when not found); instance_id: (n,) that ground truth's instance; confidence: (n,);
        error_px: (n,) (NaN = not found); error_mm: (n,) (NaN = not found or no depth there).
    """

    view: np.ndarray
    uv: np.ndarray
    uv_gt: np.ndarray
    instance_id: np.ndarray
    confidence: np.ndarray
    error_px: np.ndarray
    error_mm: np.ndarray

    def stats(self) -> KeypointStats:
        n = len(self.error_px)
        e = self.error_px[np.isfinite(self.error_px)]
        m = self.error_mm[np.isfinite(self.error_mm)]
        nan = math.nan

        def within(t: float) -> float:
            return float((e <= t).sum() / n) if n else nan

        return KeypointStats(n, len(e), float(np.median(e)) if len(e) else nan, float(e.mean()) if len(e) else nan,
                             within(WITHIN_PX[0]), within(WITHIN_PX[1]), float(np.median(m)) if len(m) else nan,
                             len(m))

    @staticmethod
    def concatenate(trials: Sequence[KeypointTrials]) -> KeypointTrials:
        return KeypointTrials(*(np.concatenate([getattr(t, f.name) for t in trials])
                                for f in dataclasses.fields(KeypointTrials)))


@dataclass
class TransferErrors:
    """Result of `keypoint_transfer_errors`."""

    # Category and split evaluated ("explicit" when the views were given).
    category: str
    split: str
    # (scene, view) of every view evaluated.
    views: list[tuple[str, int]]
    # Reference keypoint names, in file order.
    names: list[str]
    # Per name, every trial.
    trials: dict[str, KeypointTrials]

    @property
    def per_keypoint(self) -> dict[str, KeypointStats]:
        return {n: self.trials[n].stats() for n in self.names}

    @property
    def overall(self) -> KeypointStats:
        return KeypointTrials.concatenate([self.trials[n] for n in self.names]).stats()

    def confidence_rows(self, thresholds: Sequence[float] = CONFIDENCE_SWEEP) -> list[dict[str, float]]:
        """What a locate threshold buys, over every trial: for each threshold t, the trials located with confidence
        >= t ("located", and their share of the trials, "recall") and, of those, the share within 5 / 10 px
        ("precision@5", "precision@10") and their median error. Thresholds below the evaluation's own
        `min_confidence` see only what that threshold kept."""
        t = KeypointTrials.concatenate([self.trials[n] for n in self.names])
        n = len(t.error_px)
        rows = []
        for th in thresholds:
            sel = np.isfinite(t.error_px) & (t.confidence >= th)
            e = t.error_px[sel]
            k = int(sel.sum())
            rows.append({"threshold": float(th), "located": k, "recall": k / n if n else math.nan,
                         "precision@5": float((e <= WITHIN_PX[0]).mean()) if k else math.nan,
                         "precision@10": float((e <= WITHIN_PX[1]).mean()) if k else math.nan,
                         "median_px": float(np.median(e)) if k else math.nan})
        return rows

    def confidence_table(self, thresholds: Sequence[float] = CONFIDENCE_SWEEP) -> str:
        """`confidence_rows` as a fixed-width table: does a higher confidence mean a better keypoint?"""
        head = f"{'min conf':>8s} {'located':>7s} {'recall':>6s} {'<=5px':>6s} {'<=10px':>6s} {'med px':>7s}"
        lines = [head, "-" * len(head)]
        for r in self.confidence_rows(thresholds):
            lines.append(f"{r['threshold']:8.2f} {r['located']:7d} {r['recall']:6.2f} {r['precision@5']:6.2f} "
                         f"{r['precision@10']:6.2f} {r['median_px']:7.1f}")
        return "\n".join(lines)

    def table(self, reference: ReferenceKeypoints | None = None) -> str:
        """A fixed-width per-keypoint table (plus an `all` row); with `reference`, also the number of
        instances each descriptor was averaged over."""
        inst = {n: len(s) for n, s in zip(reference.names, reference.sources, strict=True)} if reference else {}
        head = (f"{'keypoint':16s} {'inst':>4s} {'views':>5s} {'found':>5s} {'med px':>7s} {'mean px':>7s} "
                f"{'<=5px':>6s} {'<=10px':>6s} {'med mm':>7s} {'n 3d':>5s}")
        lines = [head, "-" * len(head)]
        rows = [*self.per_keypoint.items(), ("all", self.overall)]
        for n, s in rows:
            lines.append(f"{n:16s} {inst.get(n, '') if n != 'all' else '':>4} {s.views:5d} {s.found:5d} "
                         f"{s.median_px:7.1f} {s.mean_px:7.1f} {s.within_5px:6.2f} {s.within_10px:6.2f} "
                         f"{s.median_mm:7.1f} {s.n_3d:5d}")
        return "\n".join(lines)


def _evaluation_views(ds: SyntheticDataset, category: str, names: Sequence[str], split: str,
                      max_views: int | None) -> list[tuple[str, int]]:
    """Views of a split where some instance of the category shows a visible reference keypoint; at most
    `max_views`, spread evenly over the list (deterministic)."""
    wanted = set(names)
    out = []
    for name in _scene_names(ds, split):
        meta = ds.scene(name)
        objects = _category_objects(meta, category)
        for v in meta["views"]:
            if any(k["visible"] and k["instance_id"] in objects and k["name"] in wanted for k in v["keypoints"]):
                out.append((name, int(v["index"])))
    if max_views is not None and len(out) > max_views:
        out = [out[i] for i in np.unique(np.linspace(0, len(out) - 1, max_views).round().astype(int))]
    return out


@dataclass(frozen=True)
class GroundTruthMatch:
    """A located keypoint compared with the ground truth of its view (`match_ground_truth`)."""

    # Ground-truth pixel (x, y) it is compared with, and that keypoint's instance id.
    uv_gt: tuple[float, float]
    instance_id: int
    # Pixel distance to it (NaN when not found).
    error_px: float
    # Distance (mm) between the surface point the depth puts under the located pixel and the
    # ground-truth keypoint in the camera frame (NaN when not found or no depth there).
    error_mm: float


def match_ground_truth(located: LocatedKeypoints, view: Mapping[str, Any], instance_ids: Collection[int],
                       depth: np.ndarray, depth_window: int = 1) -> dict[str, GroundTruthMatch]:
    """Compare located keypoints with the ground truth of one view.

    Each located name is compared with the nearest (in pixels) visible keypoint of the same name among
    the objects `instance_ids` (e.g. every mug of the scene); a name not found is compared with the
    first one, with NaN errors. Names with no visible ground truth in the view are left out.

    Args:
        located: from `locate_keypoints` (uv (K, 2), NaN where not found).
        view: the view's entry of scene.json (K, T_world_camera, keypoints).
        depth: (H, W) float32 metres of the view (depth.tiff), 0 = no surface.
        depth_window: odd window whose median depth lifts the located pixel (`geometry.lifting.lift_points`);
            1 = the pixel itself. On a silhouette (rims, handles) even the exact pixel can take the depth of
            what lies behind: a floor of a few mm on average, tens of mm at some edge keypoints.
    """
    gt: dict[str, list[dict]] = {}
    ids = set(instance_ids)
    for k in view["keypoints"]:
        if k["visible"] and k["instance_id"] in ids:
            gt.setdefault(k["name"], []).append(k)
    K = np.asarray(view["K"], np.float64)
    T_cw = np.linalg.inv(np.asarray(view["T_world_camera"], np.float64))
    xyz, _ = lift_points(located.uv, depth, K, encoding="32FC1", window=depth_window, min_depth=0.0)
    out = {}
    for i, n in enumerate(located.names):
        if n not in gt:
            continue
        cand = np.array([k["uv"] for k in gt[n]], np.float64)  # (m, 2)
        found = bool(located.found[i]) and bool(np.isfinite(located.uv[i]).all())
        d = np.linalg.norm(cand - located.uv[i], axis=1)
        j = int(np.argmin(d)) if found else 0
        p_cam = T_cw[:3, :3] @ np.asarray(gt[n][j]["world"], np.float64) + T_cw[:3, 3]
        out[n] = GroundTruthMatch((float(cand[j, 0]), float(cand[j, 1])), int(gt[n][j]["instance_id"]),
                                  float(d[j]) if found else math.nan,
                                  1000.0 * float(np.linalg.norm(xyz[i] - p_cam)) if found else math.nan)
    return out


def keypoint_transfer_errors(extractor: DescriptorExtractor, reference: ReferenceKeypoints,
                             dataset_root: str | Path, category: str, split: str = "test",
                             max_views: int | None = 200, min_confidence: float = 0.0,
                             resolution: tuple[int, int] | None = None,
                             views: Sequence[tuple[str, int]] | None = None,
                             locate_options: Mapping[str, Any] | None = None,
                             depth_window: int = 1) -> TransferErrors:
    """Locate the reference keypoints in views of `split` and measure the error against ground truth.

    In every view, each reference name that is visible on at least one instance of the category is a
    trial. The located keypoint (`locate_keypoints` over the whole image, no mask) is compared with the
    nearest visible same-named ground-truth keypoint among all the instances of the category in the
    view (a scene may hold several mugs), see `match_ground_truth`: pixel error, and 3D error in mm
    between the point the view's depth (depth.tiff) puts under the located pixel and that keypoint's
    camera-frame position (world point moved by inv(T_world_camera)). Names not visible anywhere in a
    view are not trials there, so false detections of absent keypoints are not measured.

    Args:
        split: scenes to use; "val" and "test" hold instances never seen in training.
        max_views: at most this many views, spread evenly over the split; None = all.
        min_confidence: locate threshold; a keypoint below it is a miss (0 = always located).
        resolution: processing resolution (W, H); None = the extractor's own. Use the reference's.
        views: explicit (scene, view) pairs instead of `split` (e.g. the reference views themselves).
        locate_options: further keyword arguments of `locate_keypoints` (method, radius, ...).
        depth_window: see `match_ground_truth` (the node lifts with a 5-pixel median window).
    """
    ds, cat_names = open_dataset(dataset_root, category)
    info = extractor.info
    if reference.descriptor_dim != info.descriptor_dim:
        raise ValueError(f"the keypoints have D={reference.descriptor_dim} but model {info.name} ({info.model_id}) "
                         f"makes D={info.descriptor_dim} descriptors: build the keypoints with this model")
    reference.check_model(info.model_id)  # ModelMismatchError (a ValueError) for another model's keypoints
    names = [n for n in reference.names if n in cat_names]
    if not names:
        raise ValueError(f"none of the reference keypoints ({', '.join(reference.names)}) is a keypoint of "
                         f"category {category!r} ({', '.join(cat_names)})")
    if views is None:
        _check_split(split)
        views = _evaluation_views(ds, category, names, split, max_views)
        if not views:
            raise ValueError(f"no view of the {split!r} split of {ds.root} shows a visible {category} keypoint")
    else:
        views = [(str(s), int(v)) for s, v in views]
        split = "explicit"
    ex = _at_resolution(extractor, resolution)
    rows = [reference.names.index(n) for n in names]
    sub = ReferenceKeypoints(names, reference.descriptors[rows], reference.category, reference.model,
                             [reference.sources[i] for i in rows])
    acc: dict[str, list[tuple]] = {n: [] for n in names}
    for vi, (scene, view) in enumerate(views):
        meta = ds.scene(scene)
        if not 0 <= view < len(meta["views"]):
            raise ValueError(f"{scene} has no view {view} ({len(meta['views'])} views)")
        v = meta["views"][view]
        objects = _category_objects(meta, category)
        if not any(k["visible"] and k["instance_id"] in objects and k["name"] in acc for k in v["keypoints"]):
            continue
        img = read_view(ds.root / SCENES_DIR / scene, view, ("rgb", "depth"))
        loc = locate_keypoints(sub, ex(img["rgb"]), min_confidence=min_confidence, **dict(locate_options or {}))
        for n, m in match_ground_truth(loc, v, objects, img["depth"], depth_window).items():
            i = names.index(n)
            acc[n].append((vi, loc.uv[i], m.uv_gt, m.instance_id, loc.confidence[i], m.error_px, m.error_mm))
    trials = {}
    for n in names:
        cols = list(zip(*acc[n], strict=True)) if acc[n] else [()] * 7
        trials[n] = KeypointTrials(np.array(cols[0], np.int64), np.array(cols[1], np.float64).reshape(-1, 2),
                                   np.array(cols[2], np.float64).reshape(-1, 2), np.array(cols[3], np.int64),
                                   np.array(cols[4], np.float32), np.array(cols[5], np.float64),
                                   np.array(cols[6], np.float64))
    return TransferErrors(category, split, list(views), names, trials)
