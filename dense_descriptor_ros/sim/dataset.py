"""Reading a generated synthetic dataset (docs/sim_format.md): splits, scene metadata and the per-view images
as torch tensors. It sits beside the format it reads, so the simulator's own tools (ground truth, reference
keypoints) and the training pairs (data/synthetic.py) all read datasets through it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .format import DATASET_FILE, FORMAT_VERSION, SCENE_FILE, SCENES_DIR, read_json, read_view

SPLITS = ("train", "test_scenes", "val", "test")
#: parsed scene.json files kept per dataset object (about 0.5 MB each in memory)
SCENE_CACHE = 64


@dataclass
class SyntheticView:
    """One rendered view as tensors.

    Shape:
        rgb: (H, W, 3) uint8; depth: (H, W) float32 metres (0 = no surface);
        instance, category, part: (H, W) uint8 label maps (ids in scene.json / dataset.json, 0 = none);
        coords: (H, W, 3) float32 canonical object coordinates (NaN where coords_valid is False);
        coords_valid: (H, W) bool; K: (3, 3) float64; T_world_camera: (4, 4) float64 (OpenCV axes).
    Attributes:
        keypoints: per category object and keypoint: instance_id, name, part, uv [x, y], z, in_image,
            visible (as in scene.json).
        objects: the scene's objects (scene.json), instance_id i at objects[i - 1].
    """

    scene: str
    index: int
    rgb: torch.Tensor
    depth: torch.Tensor
    instance: torch.Tensor
    category: torch.Tensor
    part: torch.Tensor
    coords: torch.Tensor
    coords_valid: torch.Tensor
    K: torch.Tensor
    T_world_camera: torch.Tensor
    keypoints: list[dict] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    depth_noisy: torch.Tensor | None = None

    def image(self) -> torch.Tensor:
        """(3, H, W) float32 RGB in [0, 1]."""
        return self.rgb.permute(2, 0, 1).float() / 255.0


class SyntheticDataset:
    """A generated dataset: its splits, scenes and views.

    Args:
        root: the folder given to `sim generate --out`.
        split: None for every complete scene, or one of "train", "test_scenes" (new scenes of training
            instances), "val", "test" (scenes of held-out instances).
    """

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        self.root = Path(root)
        path = self.root / DATASET_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{self.root} is not a synthetic dataset (no {DATASET_FILE})")
        self.meta = read_json(path)
        version = str(self.meta.get("format_version", "?"))
        if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
            raise ValueError(f"{self.root}: format version {version}, this loader reads {FORMAT_VERSION}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.split = split
        planned = self.meta["splits"]["scenes"]
        names = sorted(n for s in SPLITS for n in planned.get(s, [])) if split is None else planned.get(split, [])
        self.scenes = [n for n in names if (self.root / SCENES_DIR / n / SCENE_FILE).is_file()]
        self.categories = {c["id"]: c for c in self.meta["categories"]}
        self.category_names = {int(i): c["name"] for i, c in self.categories.items()}
        self.parts = {p["id"]: p for p in self.meta["parts"]}
        self._scene_cache: OrderedDict[str, dict] = OrderedDict()

    def __len__(self) -> int:
        return len(self.scenes)

    def instances(self, split: str) -> list[str]:
        """Instance keys ("mug_017") of an instance split ("train", "val", "test")."""
        return list(self.meta["splits"]["instances"][split])

    def scene(self, name: str) -> dict:
        """scene.json of a scene (the last SCENE_CACHE parsed scenes are kept in memory)."""
        meta = self._scene_cache.pop(name, None)
        if meta is None:
            meta = read_json(self.root / SCENES_DIR / name / SCENE_FILE)
        self._scene_cache[name] = meta  # most recently used last
        while len(self._scene_cache) > SCENE_CACHE:
            self._scene_cache.popitem(last=False)
        return meta

    def num_views(self, name: str) -> int:
        return len(self.scene(name)["views"])

    def camera(self, name: str, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K (3, 3) and T_world_camera (4, 4) of a view, float64."""
        v = self.scene(name)["views"][view]
        return torch.tensor(v["K"], dtype=torch.float64), torch.tensor(v["T_world_camera"], dtype=torch.float64)

    def arrays(self, name: str, index: int, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Only some of a view's images, as tensors (keys as in sim.format.read_view)."""
        return {k: torch.from_numpy(v) for k, v in read_view(self.root / SCENES_DIR / name, index, keys).items()}

    def view(self, name: str, index: int, noisy_depth: bool = False) -> SyntheticView:
        """Load one view's images and metadata."""
        meta = self.scene(name)
        v = meta["views"][index]
        keys = ("rgb", "depth", "instance", "category", "part", "coords") + (("depth_noisy",) if noisy_depth else ())
        img = read_view(self.root / SCENES_DIR / name, index, keys)
        coords = torch.from_numpy(img["coords"])
        K, T = self.camera(name, index)
        return SyntheticView(
            scene=name, index=index, rgb=torch.from_numpy(img["rgb"]), depth=torch.from_numpy(img["depth"]),
            instance=torch.from_numpy(img["instance"]), category=torch.from_numpy(img["category"]),
            part=torch.from_numpy(img["part"]), coords=coords, coords_valid=torch.isfinite(coords).all(-1),
            K=K, T_world_camera=T, keypoints=v["keypoints"], objects=meta["objects"],
            depth_noisy=torch.from_numpy(img["depth_noisy"]) if noisy_depth else None)


__all__ = ["SPLITS", "SCENE_CACHE", "SyntheticView", "SyntheticDataset"]
