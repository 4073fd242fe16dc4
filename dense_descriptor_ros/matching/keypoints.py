"""Named reference keypoints: the file format (docs/keypoint_file.md) and locating them in new frames.

A reference keypoint is a descriptor with a name ("handle_top"), taken at a clicked pixel of a
reference image. Averaging the descriptors of the same named point over several instances of a
category is what makes it category-level. Locating a keypoint is a nearest-neighbour search over a
frame's descriptor map with a confidence; a keypoint below the confidence threshold is reported as
not found (NaN position, found=False), never as a guess.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np

from ..descriptor_map import DescriptorMap
from ..fileio import atomic_write
from ..runtime.export import ModelInfo
from .dense import mask_to_map, pairwise_sqdist, sample_map, subpixel_refine

FORMAT = "dense_descriptor_ros.keypoints"
FORMAT_VERSION = 1
_NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9][0-9.eE+-]*,?\s*)+)\]")


class ModelMismatchError(ValueError):
    """Descriptors from one model compared with keypoints made with another."""


@dataclass
class ReferenceKeypoints:
    """A set of named reference keypoints (one JSON file, docs/keypoint_file.md).

    Shape:
        descriptors: (K, D) float32, row k for names[k].
    """

    # Keypoint names, unique (e.g. "handle_top").
    names: list[str]
    # (K, D) reference descriptors: the (re-normalised, if the model normalises) mean over `sources`.
    descriptors: np.ndarray
    # Object category they describe ("mug"); free text.
    category: str
    # Identity of the model the descriptors come from: {"id", "name", "version", "descriptor_dim",
    # "normalize"}; descriptors of any other model are not comparable.
    model: dict
    # Per keypoint, where its descriptor came from: [{"image", "uv": [x, y], "image_size": [W, H],
    # "descriptor": [...]}], one entry per reference image (instance) it was clicked in.
    sources: list[list[dict]] = field(default_factory=list)
    # Free text (who/what/when), carried through averaging.
    notes: str = ""

    def __post_init__(self) -> None:
        self.descriptors = np.asarray(self.descriptors, dtype=np.float32)
        k = len(self.names)
        if self.descriptors.ndim != 2 or self.descriptors.shape[0] != k:
            raise ValueError(f"descriptors: expected shape ({k}, D), got {self.descriptors.shape}")
        if len(set(self.names)) != k:
            raise ValueError(f"keypoint names must be unique, got {self.names}")
        if not self.sources:
            self.sources = [[] for _ in range(k)]
        if len(self.sources) != k:
            raise ValueError(f"sources: expected {k} lists, got {len(self.sources)}")

    @property
    def descriptor_dim(self) -> int:
        return int(self.descriptors.shape[1])

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every keypoint's per-instance descriptors (its `sources`), or its mean where it has none.

        Returns (P, D) float32 prototypes (re-normalised if the model normalises) and (P,) int64 owner: the row
        of `names` each belongs to, ascending."""
        protos, owner = [], []
        for k, src in enumerate(self.sources):
            rows = [np.asarray(s["descriptor"], np.float32) for s in src if s.get("descriptor") is not None]
            rows = [r for r in rows if r.shape == (self.descriptor_dim,) and np.isfinite(r).all()]
            protos += rows or [self.descriptors[k]]
            owner += [k] * (len(rows) or 1)
        p = np.stack(protos).astype(np.float32)
        if self.model.get("normalize"):
            p = _normalise_rows(p)
        return p, np.asarray(owner, np.int64)

    @property
    def model_id(self) -> str:
        return str(self.model.get("id", ""))

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "category": self.category,
            "descriptor_dim": self.descriptor_dim, "model": self.model, "notes": self.notes,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "keypoints": [{"name": n, "descriptor": d.tolist(), "sources": s}
                          for n, d, s in zip(self.names, self.descriptors, self.sources, strict=True)],
        }

    def save(self, path: str | Path) -> None:
        """Write the JSON file atomically (indented, every number list on one line)."""
        text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(t.rstrip(",") for t in m.group(1).split()) + "]",
                                json.dumps(self.to_json(), indent=1))
        atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n"))

    @classmethod
    def load(cls, path: str | Path) -> ReferenceKeypoints:
        """Read a keypoint file; raises ValueError naming what is wrong with it."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a directory, not a keypoint file")
        if not path.is_file():
            raise FileNotFoundError(f"keypoint file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not JSON: {e}") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {data.get('format_version')} is not supported "
                             f"(this version reads {FORMAT_VERSION})")
        try:
            kps = data["keypoints"]
            ref = cls(names=[k["name"] for k in kps],
                      descriptors=np.array([k["descriptor"] for k in kps], np.float32).reshape(len(kps), -1),
                      category=data["category"], model=data["model"], sources=[k.get("sources", []) for k in kps],
                      notes=data.get("notes", ""))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}: missing or malformed field {e}") from e
        bad = [n for n, d in zip(ref.names, ref.descriptors, strict=True) if not np.isfinite(d).all()]
        if bad:  # JSON allows NaN and Infinity; one of them would make every distance NaN
            raise ValueError(f"{path}: descriptors of {bad} are not finite (NaN or infinity)")
        if ref.descriptor_dim != data.get("descriptor_dim"):
            raise ValueError(f"{path}: descriptors have D={ref.descriptor_dim}, "
                             f"header says {data.get('descriptor_dim')}")
        return ref

    def check_model(self, model_id: str, on_mismatch: Literal["error", "warn"] = "error") -> None:
        """Refuse (or warn about) descriptors from a model other than the one the file was made with."""
        if self.model_id and model_id and self.model_id != model_id:
            msg = (f"keypoints ({self.category}) were made with model {self.model_id} "
                   f"({self.model.get('name')} {self.model.get('version')}) but the descriptors come from "
                   f"model {model_id}: re-annotate with this model")
            if on_mismatch == "error":
                raise ModelMismatchError(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)


def model_identity(info: ModelInfo) -> dict:
    """The `model` block of a keypoint file."""
    return {"id": info.model_id, "name": info.name, "version": info.version,
            "descriptor_dim": info.descriptor_dim, "normalize": info.normalize}


def _normalise_rows(d: np.ndarray) -> np.ndarray:
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def annotate_keypoints(dmap: DescriptorMap, points: Mapping[str, tuple[float, float]], model: dict,
                       category: str, image: str = "", notes: str = "") -> ReferenceKeypoints:
    """Reference keypoints from pixels (x, y) of one reference image and its descriptor map.

    Descriptors are bilinearly interpolated at the exact pixel (the same values an upsampled map has
    there). `model` is `model_identity(extractor.info)`."""
    if not points:
        raise ValueError("no keypoints given")
    names = list(points)
    uv = np.array([points[n] for n in names], np.float64).reshape(-1, 2)
    w, h = dmap.image_size
    outside = (uv[:, 0] < -0.5) | (uv[:, 0] > w - 0.5) | (uv[:, 1] < -0.5) | (uv[:, 1] > h - 0.5)
    if outside.any():
        bad = [f"{n} {tuple(p)}" for n, p, o in zip(names, uv.tolist(), outside, strict=True) if o]
        raise ValueError(f"keypoints outside the {w}x{h} image: {', '.join(bad)}")
    desc = sample_map(dmap.descriptors, dmap.to_map(uv))
    if dmap.normalized:
        desc = _normalise_rows(desc)
    if model.get("descriptor_dim", desc.shape[1]) != desc.shape[1]:
        raise ValueError(f"model says D={model['descriptor_dim']} but the map has D={desc.shape[1]}")
    sources = [[{"image": image, "uv": [float(p[0]), float(p[1])], "image_size": [w, h],
                 "map_stride": list(dmap.stride), "descriptor": d.tolist()}] for p, d in zip(uv, desc, strict=True)]
    return ReferenceKeypoints(names, desc, category, dict(model, id=dmap.model_id or model.get("id", "")),
                              sources, notes)


def average_keypoints(refs: Sequence[ReferenceKeypoints], category: str | None = None) -> ReferenceKeypoints:
    """Category-level keypoints: per name, the mean descriptor over every source (instance) of every
    file that has that name (re-normalised for normalised models). All files must share the model."""
    if not refs:
        raise ValueError("nothing to average")
    first = refs[0]
    for r in refs[1:]:
        if r.model_id != first.model_id or r.descriptor_dim != first.descriptor_dim:
            raise ModelMismatchError(f"cannot average keypoints of model {r.model_id} (D={r.descriptor_dim}) "
                                     f"with model {first.model_id} (D={first.descriptor_dim})")
    names: list[str] = []
    for r in refs:
        names += [n for n in r.names if n not in names]
    descs, sources = [], []
    for n in names:
        src: list[dict] = []
        rows = []
        for r in refs:
            if n in r.names:
                k = r.names.index(n)
                # A hand-written file may have no sources: its descriptor then counts as one instance.
                s = r.sources[k] or [{"image": "", "descriptor": r.descriptors[k].tolist()}]
                src += s
                rows += [d.get("descriptor", r.descriptors[k].tolist()) for d in s]
        descs.append(np.mean(np.asarray(rows, np.float32), 0))
        sources.append(src)
    d = np.stack(descs)
    if first.model.get("normalize"):
        d = _normalise_rows(d)
    notes = "; ".join(r.notes for r in refs if r.notes)
    return ReferenceKeypoints(names, d, category or first.category, first.model, sources, notes)


@dataclass
class LocatedKeypoints:
    """Result of `locate_keypoints`.

    Shape:
        uv: (K, 2) float64 pixel (x, y) in the frame, NaN where not found; found: (K,) bool;
        confidence: (K,) in [0, 1]; distance: (K,) descriptor distance of the best match (NaN if the
        mask left no candidate).
    """

    names: list[str]
    uv: np.ndarray
    found: np.ndarray
    confidence: np.ndarray
    distance: np.ndarray

    def as_dict(self) -> dict[str, tuple[float, float] | None]:
        """name -> (x, y), or None when not found."""
        return {n: (tuple(p) if f else None) for n, p, f in zip(self.names, self.uv.tolist(), self.found, strict=True)}


def locate_keypoints(reference: ReferenceKeypoints, dmap: DescriptorMap, *,
                     method: Literal["ratio", "softmax"] = "ratio", min_confidence: float = 0.2,
                     max_distance: float = float("inf"), radius: float = 12.0, temperature: float = 0.05,
                     mask: np.ndarray | None = None, subpixel: bool = True,
                     on_model_mismatch: Literal["error", "warn"] = "error",
                     prototypes: Literal["mean", "sources"] = "mean") -> LocatedKeypoints:
    """Best match of every reference keypoint in a frame, with a confidence.

    Args:
        method: "ratio": confidence = 1 - d1 / d2, d1 the best descriptor distance and d2 the best
            one at least `radius` pixels away from it (Lowe's ratio test, made spatial because a
            smooth map's neighbours are always nearly as close). "softmax": the probability mass of
            softmax(-distance / temperature) over the map that falls within `radius` pixels of the best
            match (Florence et al. 2018 use the same heatmap for visualisation).
        min_confidence: below it, the keypoint is not found.
        max_distance: a best match farther than this in descriptor space is not found either
            (rejects objects that are absent, where the ratio can still be good).
        mask: optional bool mask ((H, W) image or (h, w) map): only pixels inside are candidates.
        subpixel: quadratic fit + Gauss-Newton refinement around the best cell.
        prototypes: "mean": one descriptor per keypoint (the file's mean over its instances); "sources": each
            instance's own descriptor is a prototype and a pixel's distance to the keypoint is the smallest over
            them (issue #15: one mean is not enough when instances differ), the confidence taken on that
            distance map and the refinement against the prototype that matched.
    """
    reference.check_model(dmap.model_id, on_model_mismatch)
    if reference.descriptor_dim != dmap.descriptor_dim:
        raise ValueError(f"keypoints have D={reference.descriptor_dim}, descriptors D={dmap.descriptor_dim}")
    desc = dmap.descriptors.astype(np.float32, copy=False)
    h, w, dim = desc.shape
    k = len(reference.names)
    if prototypes == "sources":
        protos, owner = reference.prototypes()
        d2p = pairwise_sqdist(protos, desc.reshape(h * w, dim))  # (P, h*w)
        starts = np.searchsorted(owner, np.arange(k))
        d2 = np.minimum.reduceat(d2p, starts, axis=0)  # (K, h*w): the nearest prototype of each keypoint
    elif prototypes == "mean":
        d2p = None
        d2 = pairwise_sqdist(reference.descriptors, desc.reshape(h * w, dim))  # (K, h*w)
    else:
        raise ValueError(f"prototypes must be 'mean' or 'sources', got {prototypes!r}")
    if mask is not None:
        d2[:, ~mask_to_map(mask, dmap).ravel()] = np.inf
    rows = np.arange(k)
    best = d2.argmin(1)
    d1 = d2[rows, best]
    if d2p is None:
        q = reference.descriptors
    else:  # the prototype of each keypoint that is nearest at its best cell
        cand = np.where(owner[:, None] == rows[None, :], d2p[:, best], np.inf)  # (P, K)
        q = protos[cand.argmin(0)]
    has = np.isfinite(d1)
    bi, bj = best // w, best % w
    # Cells within `radius` pixels of the best one: a disc of offsets (pixels, so anisotropic strides
    # work); offsets falling off the map point at the best cell itself.
    sx, sy = dmap.stride
    oy, ox = np.mgrid[-int(radius // sy):int(radius // sy) + 1, -int(radius // sx):int(radius // sx) + 1]
    disc = (oy * sy) ** 2 + (ox * sx) ** 2 <= radius**2
    ii, jj = bi[:, None] + oy[disc][None], bj[:, None] + ox[disc][None]  # (K, m)
    on_map = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
    near = np.where(on_map, ii * w + jj, best[:, None])
    if method == "ratio":
        d2[rows[:, None], near] = np.inf
        second = d2.min(1)
        # The epsilon (relative, above float32 cancellation noise) makes exact copies ambiguous, not 0/0.
        eps = 1e-6 * (q * q).sum(1) + 1e-30
        with np.errstate(invalid="ignore"):  # inf / inf where the mask leaves nothing: conf 0 below
            conf = np.where(np.isfinite(second), 1.0 - np.sqrt((d1 + eps) / (second + eps)), 1.0)
    elif method == "softmax":
        with np.errstate(invalid="ignore"):
            prob = np.exp(-(np.sqrt(d2) - np.sqrt(d1)[:, None]) / temperature)  # <= 1: no overflow
            conf = (np.take_along_axis(prob, near, 1) * on_map).sum(1) / prob.sum(1)
    else:
        raise ValueError(f"method must be 'ratio' or 'softmax', got {method!r}")
    conf = np.where(has, np.clip(np.nan_to_num(conf), 0.0, 1.0), 0.0)
    rc = np.stack([bi, bj], 1)
    p = subpixel_refine(desc, q, rc) if subpixel else np.stack([bj, bi], 1).astype(np.float64)
    # Distance at the refined position (interpolated): what the match is really worth.
    dist_best = np.where(has, np.linalg.norm(sample_map(desc, p) - q, axis=1), np.nan)
    found = has & (conf >= min_confidence) & (dist_best <= max_distance)
    uv = dmap.to_image(p)
    uv[~found] = np.nan
    return LocatedKeypoints(list(reference.names), uv, found, conf.astype(np.float32),
                            dist_best.astype(np.float32))
