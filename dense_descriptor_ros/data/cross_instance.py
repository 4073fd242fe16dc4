"""Cross-instance training pairs: one object in view A, a *different* training instance of its category in
view B, matched through the simulator's canonical object coordinates (issue #15).

Every other synthetic pair shows one instance twice, so nothing in it asks the descriptors to agree across
instances. Here the match of a pixel of object A is the pixel of object B whose canonical coordinate
(`coords.png`: object-frame position divided by the instance's radius / height) is nearest, when it is within
`max_distance` canonical units (`sim.ground_truth.cross_instance`). Occlusion comes for free: coordinates
exist only on visible pixels, so a point hidden in B finds no partner that close and is left out.

Symmetry: a rotationally symmetric object (bowl, can, bottle) shows nothing that fixes its canonical yaw, and
a box's faces are interchangeable under its symmetries, so "the same point" on two instances is not visible
in their images. Those categories are left out (not made symmetry-aware). A mug's yaw is fixed by its handle,
so a mug pair is used only when the handle is visible on both instances (`FRAME_CUES`); the other categories
can be named in `categories` only with a cue part of their own.

Non-matches are drawn as for same-instance pairs: on B's object (>= min_nonmatch_distance from the match) and
on the background and the other objects (Dense Object Nets' across-object term); the dense InfoNCE loss uses
every cell of B as a negative anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..correspondence.sampling import sample_pairs
from ..sim.dataset import SyntheticDataset, SyntheticView
from ..sim.ground_truth import cross_instance
from .base import PairItem
from .canonical import canonical_targets

#: categories whose canonical frame is visible, and the part that shows it (both instances must show it)
FRAME_CUES: dict[str, str] = {"mug": "handle"}
#: redraws of (object, partner, views) before an item gives up with an error
MAX_TRIES = 32


@dataclass
class CrossInstanceDraw:
    """A cross-instance item and what it was made from: object `instance_a` of view A, `instance_b` of B."""

    item: PairItem
    view_a: SyntheticView
    instance_a: int
    view_b: SyntheticView
    instance_b: int


class CrossInstancePairDataset:
    """Pairs of two different instances of one category (implements the PairDataset protocol).

    Item (index, seed): a category object of scene `index` (redrawn from other scenes when this scene has
    none), seen in a random view; a different instance of the same category from any scene of the split;
    both views must show each object with >= `min_pixels` pixels and its cue part. Everything random comes
    from torch.Generator().manual_seed(seed).

    Args:
        root: dataset folder. split: scene split (instances of other splits never appear).
        categories: categories to pair (each needs an entry in FRAME_CUES).
        max_distance: canonical-coordinate radius of a match (see sim.ground_truth.cross_instance).
        candidates: points of A whose partners are looked up (the n_matches are drawn among the valid ones).
        n_matches, nonmatches_per_match, background_fraction, min_nonmatch_distance: see sample_pairs.
        image_size: (H, W); only the stored size is supported (the canonical match is a pixel of B).
        part_labels: also return each view's part ids (PairItem.labels_a / labels_b).
        canonical: also return each view's canonical (x, y, z, r) targets (PairItem.coords_a / coords_b).
    Raises:
        ValueError: unknown category or one without a frame cue, or the split holds fewer than two
            instances of every category to pair.
    """

    def __init__(self, root: str | Path, split: str = "train", categories: tuple[str, ...] = ("mug",),
                 max_distance: float = 0.1, candidates: int = 2048, n_matches: int = 256,
                 nonmatches_per_match: int = 4, background_fraction: float = 0.5,
                 min_nonmatch_distance: float = 8.0, min_pixels: int = 400,
                 image_size: tuple[int, int] | None = None, part_labels: bool = False,
                 canonical: bool = False) -> None:
        self.data = SyntheticDataset(root, split)
        self.part_labels, self.canonical = part_labels, canonical
        if len(self.data) == 0:
            raise ValueError(f"{root}: no complete scenes in split {split!r}")
        known = {c["name"] for c in self.data.categories.values()}
        for c in categories:
            if c not in known:
                raise ValueError(f"unknown category {c!r}; the dataset has {sorted(known)}")
            if c not in FRAME_CUES:
                raise ValueError(f"category {c!r} has no visible cue for its canonical frame (symmetric); "
                                 f"cross-instance pairs support {sorted(FRAME_CUES)}")
        if max_distance <= 0 or candidates < 1 or min_pixels < 1:
            raise ValueError("max_distance, candidates and min_pixels must be positive")
        self.max_distance, self.candidates, self.min_pixels = float(max_distance), int(candidates), int(min_pixels)
        self.n_matches, self.nonmatches_per_match = n_matches, nonmatches_per_match
        self.background_fraction, self.min_nonmatch_distance = background_fraction, min_nonmatch_distance
        self.cue_part = {c: next(p["id"] for p in self.data.parts.values()
                                 if p["category"] == c and p["name"] == FRAME_CUES[c]) for c in categories}
        # (scene, instance_id, key) of every object of a paired category, by category (scene.json only)
        self.objects: dict[str, list[tuple[str, int, str]]] = {c: [] for c in categories}
        for scene in self.data.scenes:
            for o in self.data.scene(scene)["objects"]:
                if o.get("category") in self.objects and "canonical_scale" in o:
                    self.objects[o["category"]].append((scene, int(o["instance_id"]), o["key"]))
        self.categories = [c for c in categories if len({k for _, _, k in self.objects[c]}) >= 2]
        if not self.categories:
            raise ValueError(f"{root} ({split}): no category of {list(categories)} has two instances to pair")
        size = tuple(self.data.arrays(self.data.scenes[0], 0, ("instance",))["instance"].shape)
        if image_size is not None and tuple(image_size) != size:
            raise ValueError(f"cross-instance pairs need the stored image size {size}, got {tuple(image_size)}")
        self.size = size

    def __len__(self) -> int:
        return len(self.data)

    def _draw_object(self, index: int, g: torch.Generator) -> tuple[str, int, str, str]:
        scene = self.data.scenes[index % len(self.data)]
        here = [(scene, i, k, c) for c in self.categories for s, i, k in self.objects[c] if s == scene]
        if not here:  # this scene holds none: any object of the paired categories
            c = self.categories[int(torch.randint(len(self.categories), (1,), generator=g))]
            here = [(s, i, k, c) for s, i, k in self.objects[c]]
        return here[int(torch.randint(len(here), (1,), generator=g))]

    def _view(self, scene: str, instance_id: int, category: str, g: torch.Generator) -> SyntheticView | None:
        """A random view of the scene in which the object shows enough pixels and its cue part, or None."""
        index = int(torch.randint(self.data.num_views(scene), (1,), generator=g))
        labels = self.data.arrays(scene, index, ("instance", "part"))  # cheap check before the full view
        mask = labels["instance"].long() == instance_id
        cue_seen = bool((labels["part"][mask].long() == self.cue_part[category]).any())
        if int(mask.sum()) < self.min_pixels or not cue_seen:
            return None
        return self.data.view(scene, index)

    def __getitem__(self, key: tuple[int, int]) -> PairItem:
        return self.draw(key).item

    def draw(self, key: tuple[int, int]) -> CrossInstanceDraw:
        """The item of `key` with the two views and instance ids it was made from."""
        index, seed = key
        g = torch.Generator().manual_seed(int(seed))
        for _ in range(MAX_TRIES):
            scene_a, inst_a, key_a, cat = self._draw_object(index, g)
            partners = [o for o in self.objects[cat] if o[2] != key_a]
            scene_b, inst_b, _ = partners[int(torch.randint(len(partners), (1,), generator=g))]
            va = self._view(scene_a, inst_a, cat, g)
            vb = self._view(scene_b, inst_b, cat, g) if va is not None else None
            item = self._pair(va, inst_a, vb, inst_b, g) if va is not None and vb is not None else None
            if item is not None:
                return CrossInstanceDraw(item, va, inst_a, vb, inst_b)
            index = int(torch.randint(len(self.data), (1,), generator=g))
        raise RuntimeError(f"no usable cross-instance pair in {MAX_TRIES} draws (seed {seed}); "
                           f"lower min_pixels ({self.min_pixels}) or use a dataset with larger objects")

    def _pair(self, va: SyntheticView, inst_a: int, vb: SyntheticView, inst_b: int,
              g: torch.Generator) -> PairItem | None:
        h, w = self.size
        on_a = ((va.instance.long() == inst_a) & va.coords_valid).reshape(-1).nonzero()[:, 0]
        pick = on_a[torch.randperm(len(on_a), generator=g)[:self.candidates]]
        pts = torch.stack([pick % w, pick // w], -1)
        uv_b, _, valid = cross_instance(va, inst_a, vb, inst_b, pts, max_distance=self.max_distance)
        if not bool(valid.any()):
            return None
        # a sparse A -> B map holding only the looked-up candidates: sample_pairs draws among them
        map_ab = torch.full((h, w, 2), -1.0)
        valid_a = torch.zeros(h, w, dtype=torch.bool)
        ok = pts[valid]
        map_ab[ok[:, 1], ok[:, 0]] = uv_b[valid]
        valid_a[ok[:, 1], ok[:, 0]] = True
        pairs = sample_pairs(map_ab, valid_a, (h, w), self.n_matches, self.nonmatches_per_match, g,
                             mask_b=vb.instance.long() == inst_b, background_fraction=self.background_fraction,
                             min_nonmatch_distance=self.min_nonmatch_distance)
        labels = (va.part.long(), vb.part.long()) if self.part_labels else (None, None)
        coords = tuple(canonical_targets(v.coords, v.category, self.data.category_names) if self.canonical else None
                       for v in (va, vb))
        return PairItem(va.image().contiguous(), vb.image().contiguous(), pairs, *labels, *coords)


__all__ = ["FRAME_CUES", "CrossInstanceDraw", "CrossInstancePairDataset"]
