"""Fixed, seeded evaluation pair lists, and the pairs with their ground truth.

Four evaluation sets, so every method is scored on exactly the same pairs and query points:

* ``cross_view``: two views of one synthetic scene (held-out scenes of held-out instances); ground truth
  from depth and poses (`geometry.reproject`, 1 mm occlusion test, labels must agree).
* ``cross_instance``: one object in view A, another instance of the same category in view B; the
  ground truth of a pixel of A is the pixel of B's object with the nearest canonical object coordinate
  (none when that is farther than `CANONICAL_TOL`: the part is hidden in B). Rotationally symmetric
  categories have no visible cue for their canonical yaw, so `part_accuracy` (the best match lands on
  the same semantic part) is reported beside the pixel errors.
* ``keypoints``: named keypoints visible on both instances (cross-instance); errors in px and mm.
* ``augment``: two augmentations of a held-out photograph (exact homography ground truth).
* ``real_photo`` and ``real_stereo``: real images only (`eval/real_pairs.py`): held-out real photographs under
  viewpoint-like homographies and illumination changes, and the Middlebury motorcycle stereo pair with its
  ground-truth disparity. They need no --data: the images ship with installed packages.

A `PairList` (JSON) holds references only (scene/view/instance or image file, plus a seed for the
query points); `load_pair` turns one into an `EvalPair` with images, query points and ground truth.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..checks import check_shape
from ..correspondence.augment import TwoViewAugmenter
from ..geometry.camera import backproject, invert_pose, transform_points, view_angle_deg
from ..geometry.reprojection import reproject

SETS = ("cross_view", "cross_instance", "keypoints", "augment", "real_photo", "real_stereo")
SYNTHETIC_SETS = ("cross_view", "cross_instance", "keypoints")
#: Sets of real images that ship with installed packages (no --data needed).
REAL_SETS = ("real_photo", "real_stereo")
#: The real photographs of the real_photo set (data.sample_images.REAL_HELDOUT).
REAL_PHOTO_FOLDER = "real_heldout"
#: Nearest canonical coordinate farther than this (canonical units: the body spans about [-1, 1]^2 x
#: [0, 1], so 0.1 is a few millimetres on a mug) = no ground truth (the part is hidden in B).
CANONICAL_TOL = 0.1
PAIR_FORMAT = "dense_descriptor_ros.eval_pairs"
PAIR_FORMAT_VERSION = 1


class PairError(ValueError):
    """An unusable data source or pair list (user error)."""


@dataclass
class PairSpec:
    """One pair of the list: a reference to data, not the data."""

    set: str  # evaluation set (SETS)
    seed: int  # draws the query points
    scene_a: str = ""  # synthetic: scene of view A
    view_a: int = -1  # synthetic: view index of A
    instance_a: int = 0  # cross_instance / keypoints: instance id of the object in A
    scene_b: str = ""
    view_b: int = -1
    instance_b: int = 0
    image: str = ""  # augment / real_photo: image file relative to the image folder

    @property
    def id(self) -> str:
        if self.set in ("augment", "real_photo"):
            return f"{self.set}/{self.image}#{self.seed}"
        if self.set == "real_stereo":
            return f"real_stereo/motorcycle#{self.seed}"
        a = f"{self.scene_a}:{self.view_a}" + (f"/{self.instance_a}" if self.instance_a else "")
        b = f"{self.scene_b}:{self.view_b}" + (f"/{self.instance_b}" if self.instance_b else "")
        return f"{self.set}/{a}->{b}"


@dataclass
class PairList:
    """The fixed pairs of an evaluation and how they were drawn."""

    pairs: list[PairSpec]
    seed: int = 0  # master seed
    points: int = 200  # query points per subset (object / all) and pair
    split: str = "test"  # synthetic scene split
    size: tuple[int, int] = (240, 320)  # (H, W) of augmentation views
    synthetic: str = ""  # synthetic dataset folder the list was drawn from ("" = none)
    images: str = ""  # image folder of the augmentation pairs ("" = none)

    def by_set(self) -> dict[str, list[PairSpec]]:
        return {s: [p for p in self.pairs if p.set == s] for s in SETS if any(p.set == s for p in self.pairs)}

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "pairs"}
        d["size"] = list(self.size)
        return {"format": PAIR_FORMAT, "format_version": PAIR_FORMAT_VERSION, **d,
                "pairs": [asdict(p) for p in self.pairs]}

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @staticmethod
    def load(path: str | Path) -> PairList:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise PairError(f"cannot read pair list {path}: {e}") from None
        if not isinstance(d, dict) or d.get("format") != PAIR_FORMAT:
            raise PairError(f"{path} is not an evaluation pair list")
        names = {f.name for f in fields(PairSpec)}
        try:
            pairs = [PairSpec(**{k: v for k, v in p.items() if k in names}) for p in d["pairs"]]
            return PairList(pairs, int(d["seed"]), int(d["points"]), str(d["split"]), tuple(d["size"]),
                            str(d.get("synthetic", "")), str(d.get("images", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise PairError(f"{path}: malformed pair list ({e})") from None


@dataclass
class EvalPair:
    """Two images, query points of A and their ground truth in B.

    Shape:
        image_a, image_b: (3, H, W) float RGB in [0, 1].
        uv_a, uv_b: (N, 2) pixel (x, y); row i of A corresponds to row i of B.
        object_sample: (N,) bool, True for points of the object subset, False for the all-pixel subset.
        search_mask_b: (H, W) bool pixels of B the best match may land on, None = everywhere.
        depth_b: (H, W) metres, K_b: (3, 3), points_b: (N, 3) true camera-frame points of B (NaN =
            unknown); None where there is no depth (augmentation pairs).
        part_a, part_b, instance_a: (H, W) label maps, None where unknown.
        names: "category/keypoint" of the N points (keypoints set), else empty.
        category: the category of A's object (cross_instance, keypoints), else "".
        instance_key: A's object instance ("mug_017", cross_instance), else "".
    """

    spec: PairSpec
    image_a: torch.Tensor
    image_b: torch.Tensor
    uv_a: torch.Tensor
    uv_b: torch.Tensor
    object_sample: torch.Tensor
    search_mask_b: torch.Tensor | None = None
    depth_b: torch.Tensor | None = None
    K_b: torch.Tensor | None = None
    points_b: torch.Tensor | None = None
    part_a: torch.Tensor | None = None
    part_b: torch.Tensor | None = None
    instance_a: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    category: str = ""
    instance_key: str = ""

    def __post_init__(self) -> None:
        check_shape(self.image_a, (3, "H", "W"), "image_a")
        check_shape(self.image_b, (3, "H", "W"), "image_b")
        check_shape(self.uv_a, ("N", 2), "uv_a")
        n = self.uv_a.shape[0]
        check_shape(self.uv_b, (n, 2), "uv_b")
        check_shape(self.object_sample, (n,), "object_sample")
        if self.points_b is not None:
            check_shape(self.points_b, (n, 3), "points_b")

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image_b.shape[-2]), int(self.image_b.shape[-1])


# ---------------------------------------------------------------------------------------------- drawing


def _sample(candidates: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """Up to n distinct entries of a 1-D tensor, drawn with g."""
    if candidates.numel() <= n:
        return candidates
    return candidates[torch.randperm(candidates.numel(), generator=g)[:n]]


def _pick(seq: list, g: torch.Generator):
    return seq[int(torch.randint(len(seq), (1,), generator=g))]


def _pair_seed(seed: int, set_name: str, i: int) -> int:
    return (seed * 1_000_003 + SETS.index(set_name) * 100_003 + i) % (2**31)


def _object_views(ds, min_pixels: int) -> list[dict]:
    """Every category object seen in a view of the dataset: scene, view, instance id, category, instance
    key, pixel count and visible keypoint names (sorted, deterministic)."""
    from ..sim.format import SCENES_DIR, read_view

    out = []
    for scene in ds.scenes:
        meta = ds.scene(scene)
        objects = {o["instance_id"]: o for o in meta["objects"] if "canonical_scale" in o}
        if not objects:
            continue
        for v, view in enumerate(meta["views"]):
            inst = read_view(ds.root / SCENES_DIR / scene, v, ("instance",))["instance"]
            counts = np.bincount(inst.reshape(-1), minlength=256)
            for iid, o in sorted(objects.items()):
                if counts[iid] < min_pixels:
                    continue
                kps = sorted(k["name"] for k in view["keypoints"] if k["instance_id"] == iid and k["visible"])
                out.append({"scene": scene, "view": v, "instance": iid, "category": o["category"],
                            "key": o["key"], "pixels": int(counts[iid]), "keypoints": kps})
    return out


def _cross_view_specs(ds, n: int, seed: int, min_angle: float) -> list[PairSpec]:
    g = torch.Generator().manual_seed(_pair_seed(seed, "cross_view", -1))
    scenes = [s for s in ds.scenes if ds.num_views(s) >= 2]
    specs = []
    for i in range(n if scenes else 0):
        scene = scenes[i % len(scenes)]
        nv = ds.num_views(scene)
        a = int(torch.randint(nv, (1,), generator=g))
        poses = [ds.camera(scene, v)[1] for v in range(nv)]
        others = [v for v in range(nv) if v != a]
        ok = [v for v in others if view_angle_deg(poses[a], poses[v]) >= min_angle]
        b = _pick(ok or others, g)
        specs.append(PairSpec("cross_view", _pair_seed(seed, "cross_view", i), scene, a, 0, scene, b, 0))
    return specs


def _cross_instance_specs(objects: list[dict], set_name: str, n: int, seed: int,
                          min_shared: int) -> list[PairSpec]:
    """Pairs of different instances of one category (keypoints: sharing >= min_shared visible keypoints)."""
    g = torch.Generator().manual_seed(_pair_seed(seed, set_name, -1))

    def partners(a: dict) -> list[dict]:
        ps = [b for b in objects if b["category"] == a["category"] and b["key"] != a["key"]]
        if set_name == "keypoints":
            ps = [b for b in ps if len(set(a["keypoints"]) & set(b["keypoints"])) >= min_shared]
        other_view = [b for b in ps if (b["scene"], b["view"]) != (a["scene"], a["view"])]
        return other_view or ps

    cands = [o for o in objects if set_name != "keypoints" or len(o["keypoints"]) >= min_shared]
    by_cat: dict[str, list[dict]] = {}
    for o in cands:
        by_cat.setdefault(o["category"], []).append(o)
    cats = sorted(c for c, os in by_cat.items() if len({o["key"] for o in os}) >= 2)
    specs: list[PairSpec] = []
    for i in range(n if cats else 0):
        for _ in range(100):  # a few objects may have no partner (keypoints): draw again
            a = _pick(by_cat[_pick(cats, g)], g)
            ps = partners(a)
            if ps:
                b = _pick(ps, g)
                specs.append(PairSpec(set_name, _pair_seed(seed, set_name, i), a["scene"], a["view"],
                                      a["instance"], b["scene"], b["view"], b["instance"]))
                break
    return specs


def make_pair_list(synthetic: str | Path | None = None, images: str | Path | None = None,
                   n_per_set: int = 25, points: int = 200, seed: int = 0, split: str | None = "test",
                   size: tuple[int, int] = (240, 320), sets: tuple[str, ...] = SETS,
                   min_view_angle_deg: float = 15.0, min_object_fraction: float = 0.004,
                   min_shared_keypoints: int = 2) -> PairList:
    """Draw the pair list (a pure function of the data and the arguments).

    Args:
        synthetic: a dataset folder from `sim generate` (cross_view, cross_instance, keypoints).
        images: an image folder, or "samples_heldout" for the held-out scikit-image photos (augment).
            The real sets need neither: their images ship with installed packages.
        n_per_set: pairs per set. points: query points per subset (object / all pixels) and pair.
        split: scene split of the synthetic data ("test": held-out scenes of held-out instances), None = all.
        size: (H, W) of the augmentation views.
        min_object_fraction: objects covering less of the image are not used for cross-instance pairs.
    """
    unknown = set(sets) - set(SETS)
    if unknown:
        raise PairError(f"unknown evaluation sets {sorted(unknown)}; expected some of {', '.join(SETS)}")
    specs: list[PairSpec] = []
    if synthetic is not None and any(s in sets for s in SYNTHETIC_SETS):
        ds = open_synthetic(synthetic, split)
        if "cross_view" in sets:
            specs += _cross_view_specs(ds, n_per_set, seed, min_view_angle_deg)
        if "cross_instance" in sets or "keypoints" in sets:
            meta0 = ds.scene(ds.scenes[0])["views"][0]
            min_px = max(1, int(min_object_fraction * meta0["width"] * meta0["height"]))
            objects = _object_views(ds, min_px)
            for s in ("cross_instance", "keypoints"):
                if s in sets:
                    specs += _cross_instance_specs(objects, s, n_per_set, seed, min_shared_keypoints)
    if images is not None and "augment" in sets:
        files = _image_files(images)
        specs += [PairSpec("augment", _pair_seed(seed, "augment", i), image=files[i % len(files)])
                  for i in range(n_per_set)]
    if "real_photo" in sets:
        files = _image_files(REAL_PHOTO_FOLDER)
        specs += [PairSpec("real_photo", _pair_seed(seed, "real_photo", i), image=files[i % len(files)])
                  for i in range(n_per_set)]
    if "real_stereo" in sets:
        specs += [PairSpec("real_stereo", _pair_seed(seed, "real_stereo", i)) for i in range(n_per_set)]
    return PairList(specs, seed, points, split or "all", (int(size[0]), int(size[1])),
                    str(synthetic) if synthetic is not None else "",
                    str(images) if images is not None else "")


# ---------------------------------------------------------------------------------------------- loading


def open_synthetic(root: str | Path, split: str | None):
    from ..sim.dataset import SyntheticDataset

    try:
        ds = SyntheticDataset(root, None if split in (None, "all") else split)
    except (FileNotFoundError, ValueError) as e:
        raise PairError(str(e)) from None
    if len(ds) == 0:
        raise PairError(f"{root}: no complete scenes in split {split!r} (the 'test' split is every 10th "
                        "scene, from scene 9: generate at least 10 scenes, or pass --split all)")
    return ds


def image_folder(images: str | Path) -> Path:
    from ..data.sample_images import resolve_image_dir

    d = resolve_image_dir(str(images))
    if not d.is_dir():
        raise PairError(f"image folder {d} does not exist")
    return d


def _image_files(images: str | Path) -> list[str]:
    """Readable images of the folder, relative paths, sorted (unreadable files are left out)."""
    from ..data.image_folder import list_images, load_rgb

    root = image_folder(images)
    files = [str(p.relative_to(root)) for p in list_images(root) if load_rgb(p, None) is not None]
    if not files:
        raise PairError(f"no readable images in {root}")
    return files


def _pixels(flat_idx: torch.Tensor, w: int) -> torch.Tensor:
    return torch.stack([flat_idx % w, flat_idx // w], -1).float()


def _image(rgb: torch.Tensor) -> torch.Tensor:
    return rgb.permute(2, 0, 1).float().div(255.0).contiguous()


class PairLoader:
    """Turns PairSpecs into EvalPairs (keeps the dataset handles open)."""

    def __init__(self, plist: PairList, synthetic: str | Path | None = None,
                 images: str | Path | None = None) -> None:
        self.plist = plist
        self.synthetic = synthetic if synthetic is not None else (plist.synthetic or None)
        self.images = images if images is not None else (plist.images or None)
        self._ds = None
        self._aug: TwoViewAugmenter | None = None

    def _dataset(self):
        if self._ds is None:
            if self.synthetic is None:
                raise PairError("the pair list has synthetic pairs but no synthetic dataset was given")
            self._ds = open_synthetic(self.synthetic, None)
        return self._ds

    def __call__(self, spec: PairSpec) -> EvalPair:
        g = torch.Generator().manual_seed(spec.seed)
        if spec.set == "augment":
            return self._augment(spec, g)
        if spec.set in REAL_SETS:
            return self._real(spec, g)
        ds = self._dataset()
        try:
            va, vb = ds.view(spec.scene_a, spec.view_a), ds.view(spec.scene_b, spec.view_b)
        except (KeyError, IndexError, FileNotFoundError) as e:
            raise PairError(f"pair {spec.id}: not in {ds.root} ({e})") from None
        if spec.set == "cross_view":
            return self._cross_view(spec, va, vb, g)
        if spec.set == "cross_instance":
            return self._cross_instance(spec, va, vb, g)
        if spec.set == "keypoints":
            return self._keypoints(spec, va, vb)
        raise PairError(f"unknown evaluation set {spec.set!r}")

    def _cross_view(self, spec: PairSpec, va, vb, g: torch.Generator) -> EvalPair:
        uv_map, valid = reproject(va.depth, va.K, va.T_world_camera, vb.depth, vb.K, vb.T_world_camera)
        h, w = valid.shape
        xb = uv_map[..., 0].round().long().clamp(0, vb.depth.shape[1] - 1)
        yb = uv_map[..., 1].round().long().clamp(0, vb.depth.shape[0] - 1)
        valid &= va.instance.long() == vb.instance.long()[yb, xb]  # drops contact-edge leaks
        flat_valid = valid.reshape(-1)
        obj = _sample((flat_valid & (va.instance.reshape(-1) > 0)).nonzero()[:, 0], self.plist.points, g)
        every = _sample(flat_valid.nonzero()[:, 0], self.plist.points, g)
        idx = torch.cat([obj, every])
        uv_a = _pixels(idx, w)
        uv_b = uv_map.reshape(-1, 2)[idx].float()
        T_ba = invert_pose(vb.T_world_camera) @ va.T_world_camera
        z_a = va.depth.reshape(-1)[idx].double()
        points_b = transform_points(T_ba, backproject(uv_a.double(), z_a, va.K))
        on_object = torch.arange(len(idx)) < len(obj)
        return EvalPair(spec, _image(va.rgb), _image(vb.rgb), uv_a, uv_b, on_object, None, vb.depth, vb.K,
                        points_b, va.part, vb.part, va.instance)

    def _cross_instance(self, spec: PairSpec, va, vb, g: torch.Generator) -> EvalPair:
        w = va.depth.shape[1]
        obj_a = ((va.instance == spec.instance_a) & va.coords_valid).reshape(-1)
        mask_b = vb.instance == spec.instance_b
        obj_b = (mask_b & vb.coords_valid).reshape(-1).nonzero()[:, 0]
        idx_a = _sample(obj_a.nonzero()[:, 0], self.plist.points, g)
        if len(idx_a) and len(obj_b):
            ca = va.coords.reshape(-1, 3)[idx_a].float()
            cb = vb.coords.reshape(-1, 3)[obj_b].float()
            d, j = torch.cdist(ca, cb).min(1)
            ok = d <= CANONICAL_TOL
            idx_a, idx_b = idx_a[ok], obj_b[j[ok]]
        else:
            idx_a = idx_b = torch.zeros(0, dtype=torch.long)
        uv_a, uv_b = _pixels(idx_a, w), _pixels(idx_b, vb.depth.shape[1])
        points_b = backproject(uv_b.double(), vb.depth.reshape(-1)[idx_b].double(), vb.K)
        obj = next((o for o in va.objects if o["instance_id"] == spec.instance_a), {})
        return EvalPair(spec, _image(va.rgb), _image(vb.rgb), uv_a, uv_b,
                        torch.ones(len(idx_a), dtype=torch.bool), mask_b, vb.depth, vb.K, points_b, va.part,
                        vb.part, va.instance, category=obj.get("category", ""), instance_key=obj.get("key", ""))

    def _keypoints(self, spec: PairSpec, va, vb) -> EvalPair:
        ka = {k["name"]: k for k in va.keypoints if k["instance_id"] == spec.instance_a and k["visible"]}
        kb = {k["name"]: k for k in vb.keypoints if k["instance_id"] == spec.instance_b and k["visible"]}
        names = [k["name"] for k in va.keypoints if k["instance_id"] == spec.instance_a and k["name"] in kb
                 and k["name"] in ka]
        category = next((o["category"] for o in va.objects if o["instance_id"] == spec.instance_a), "?")
        uv_a = torch.tensor([ka[n]["uv"] for n in names], dtype=torch.float32).reshape(-1, 2)
        uv_b = torch.tensor([kb[n]["uv"] for n in names], dtype=torch.float64).reshape(-1, 2)
        z_b = torch.tensor([kb[n]["z"] for n in names], dtype=torch.float64)
        points_b = backproject(uv_b, z_b, vb.K)
        return EvalPair(spec, _image(va.rgb), _image(vb.rgb), uv_a, uv_b.float(),
                        torch.ones(len(names), dtype=torch.bool), vb.instance == spec.instance_b, vb.depth,
                        vb.K, points_b, va.part, vb.part, va.instance, [f"{category}/{n}" for n in names],
                        category)

    def _augment(self, spec: PairSpec, g: torch.Generator) -> EvalPair:
        from ..data.image_folder import load_rgb

        if self.images is None:
            raise PairError("the pair list has augmentation pairs but no image folder was given")
        h, w = self.plist.size
        path = image_folder(self.images) / spec.image
        rgb = load_rgb(path, (round(h * 1.25), round(w * 1.25)))
        if rgb is None:
            raise PairError(f"pair {spec.id}: cannot read {path}")
        if self._aug is None:
            self._aug = TwoViewAugmenter((h, w))
        v = self._aug(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0, spec.seed)
        idx = _sample(v.valid_a.reshape(-1).nonzero()[:, 0], self.plist.points, g)
        return EvalPair(spec, v.image_a, v.image_b, _pixels(idx, w), v.map_ab.reshape(-1, 2)[idx].float(),
                        torch.zeros(len(idx), dtype=torch.bool))


    def _real(self, spec: PairSpec, g: torch.Generator) -> EvalPair:
        from ..data.image_folder import load_rgb
        from .real_pairs import CANVAS, photo_pair, stereo_pair

        h, w = self.plist.size
        if spec.set == "real_photo":
            path = image_folder(REAL_PHOTO_FOLDER) / spec.image
            canvas = load_rgb(path, (round(h * CANVAS), round(w * CANVAS)))
            if canvas is None:
                raise PairError(f"pair {spec.id}: cannot read {path}")
            rp = photo_pair(canvas, (h, w), spec.seed)
        else:
            rp = stereo_pair((h, w), spec.seed)
        idx = _sample(torch.from_numpy(rp.valid.reshape(-1)).nonzero()[:, 0], self.plist.points, g)
        map_ab = torch.from_numpy(rp.map_ab.reshape(-1, 2))
        return EvalPair(spec, _image(torch.from_numpy(rp.image_a)), _image(torch.from_numpy(rp.image_b)),
                        _pixels(idx, w), map_ab[idx].float(), torch.zeros(len(idx), dtype=torch.bool))


def load_pair(spec: PairSpec, plist: PairList, synthetic: str | Path | None = None,
              images: str | Path | None = None) -> EvalPair:
    """One EvalPair (see PairLoader to load many)."""
    return PairLoader(plist, synthetic, images)(spec)


__all__ = ["SETS", "SYNTHETIC_SETS", "REAL_SETS", "CANONICAL_TOL", "PairError", "PairSpec", "PairList", "EvalPair",
           "PairLoader", "load_pair", "make_pair_list", "open_synthetic", "image_folder"]
