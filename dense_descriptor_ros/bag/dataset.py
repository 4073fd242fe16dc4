"""Training pairs from the RGB-D frames of a rosbag2 (the PairDataset protocol of data/base.py).

* Multi-view pairs when the bag has camera poses (a PoseStamped topic such as the simulated camera's
  `ground_truth/camera_pose`, or TF): two frames of the bag, and the dense A -> B correspondences from
  A's depth, both intrinsics and both poses, with the depth occlusion test (geometry.reprojection), as
  SyntheticPairDataset does for rendered scenes. Frames are resized to the training size with
  data.synthetic.resized_correspondences, which keeps the correspondences exact.
* Augmentation pairs otherwise: two random warps of one frame (correspondence.augment.TwoViewAugmenter),
  as ImageFolderPairs does for photos.
* Optionally object masks from depth (masks="depth_clusters": geometry.depth_clusters), which guide the sampling
  of both kinds as the simulator's masks guide SyntheticPairDataset's.

Frames are decoded once (pipeline.inputs.decode_frame, the node's decoding) and kept in memory: use
`frame_step` / `max_frames` for long bags. Every item is a pure function of its key (index, seed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..correspondence.augment import AugmentConfig, TwoViewAugmenter
from ..correspondence.sampling import sample_pairs
from ..data.base import PairItem
from ..geometry.reprojection import SENSOR_ABS_TOL, SENSOR_REL_TOL
from ..pipeline.config import PipelineConfig
from .frames import InputStats, iter_synced, resolve_input_topics
from .io import BagError, BagReader
from .poses import pose_source

__all__ = ["BagFrames", "load_bag_frames", "BagPairDataset"]

log = logging.getLogger(__name__)


@dataclass
class BagFrames:
    """Decoded frames of a bag.

    Shape:
        rgb[i]: (H, W, 3) uint8; depth[i]: (H, W) float32 metres, 0 where invalid, or None (no depth topic);
        K[i]: (3, 3) float64 or None (no camera info yet); T_world_camera[i]: (4, 4) float64 or None (no pose).
    """

    path: str
    stamps_ns: list[int] = field(default_factory=list)
    rgb: list[np.ndarray] = field(default_factory=list)
    depth: list[np.ndarray | None] = field(default_factory=list)
    K: list[np.ndarray | None] = field(default_factory=list)
    T_world_camera: list[np.ndarray | None] = field(default_factory=list)
    pose_source: str = "no camera poses"  # where the poses come from
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> frames left out
    inputs: InputStats = field(default_factory=InputStats)

    def __len__(self) -> int:
        return len(self.rgb)

    def multiview(self) -> list[int]:
        """Frames usable for multi-view pairs: depth, intrinsics and a pose."""
        return [i for i in range(len(self)) if self.depth[i] is not None and self.K[i] is not None
                and self.T_world_camera[i] is not None]


def load_bag_frames(path: str | Path, color_topic: str | None = None, depth_topic: str | None = None,
                    info_topic: str | None = None, pose_topic: str | None = None, fixed_frame: str = "",
                    frame_step: int = 1, max_frames: int = 0, sync_slop: float = 0.02, pose_slop: float = 0.02,
                    depth_min: float = 0.1, depth_max: float = 10.0) -> BagFrames:
    """Decode every `frame_step`-th synchronised frame (at most `max_frames`, 0 = all) with its pose.

    Topics as in `bag process` (None = the node's default names, "none" = not used); poses as in
    poses.pose_source (None = auto). Frames that do not decode are skipped and counted.

    Raises:
        BagError: unreadable bag, missing / ambiguous topics, no usable frame.
    """
    from ..pipeline.inputs import DECODE_ERRORS, decode_frame

    if frame_step < 1 or max_frames < 0:
        raise ValueError(f"frame_step must be >= 1 and max_frames >= 0, got {frame_step}, {max_frames}")
    checks = PipelineConfig(depth_min=depth_min, depth_max=depth_max)
    out = BagFrames(str(path))
    with BagReader(path) as reader:
        topics = resolve_input_topics(reader, color_topic, depth_topic, info_topic)
        lookup, out.pose_source = pose_source(reader, pose_topic, fixed_frame, pose_slop)
        for n, item in enumerate(iter_synced(reader, topics, slop_s=sync_slop, stats=out.inputs)):
            if n % frame_step:
                continue
            try:
                frame = decode_frame(item.color, item.depth, item.info, checks)
            except DECODE_ERRORS as e:
                reason = f"{type(e).__name__}: {e}"[:120]
                out.skipped[reason] = out.skipped.get(reason, 0) + 1
                continue
            T = lookup(frame.stamp_ns, frame.frame_id) if lookup is not None else None
            if lookup is not None and T is None:
                out.skipped["no camera pose near the stamp"] = out.skipped.get("no camera pose near the stamp", 0) + 1
            out.stamps_ns.append(frame.stamp_ns)
            out.rgb.append(frame.rgb)
            out.depth.append(None if frame.depth is None else np.nan_to_num(frame.depth, nan=0.0))
            out.K.append(None if frame.K is None else np.array(frame.K, np.float64))
            out.T_world_camera.append(T)
            if max_frames and len(out) >= max_frames:
                break
    if not len(out):
        raise BagError(f"{path}: no usable frame ({', '.join(f'{k}: {v}' for k, v in out.skipped.items()) or 'none'})")
    return out


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if h < img.shape[0] else cv2.INTER_LINEAR)


def _view_angles(T: list[np.ndarray]) -> np.ndarray:
    """(N, N) degrees between the optical axes (z columns) of the poses."""
    z = np.stack([t[:3, 2] for t in T])
    return np.degrees(np.arccos(np.clip(z @ z.T, -1.0, 1.0)))


class BagPairDataset:
    """Training pairs from a bag's frames (implements the PairDataset protocol; see module docstring).

    Item (index, seed), multi-view: frame A = the index-th usable frame; B drawn with
    torch.Generator().manual_seed(seed) among the other frames whose optical axis is `min_view_angle_deg`
    .. `max_view_angle_deg` away (any other frame if none is); matches from the depth reprojection.
    Augmentation: two TwoViewAugmenter draws of frame `index`.

    Args:
        path: bag folder or .mcap / .db3 file.
        size: (H, W) of the training views.
        pairs: "auto" (multi-view if at least two frames have depth, intrinsics and a pose, else
            augmentation), "multiview" (error without poses) or "augment".
        color_topic, depth_topic, info_topic, pose_topic, fixed_frame, frame_step, max_frames: see
            load_bag_frames.
        n_matches, nonmatches_per_match, min_nonmatch_distance: see sample_pairs.
        abs_tol, rel_tol: occlusion tolerance of the reprojection (default: real depth sensors,
            1.5 cm + 1%; rendered depth stored as 16UC1 millimetres wants about 3 mm + 0).
        augment: augmentation ranges (augmentation pairs).
        masks: "none", or "depth_clusters": object masks from each frame's depth (geometry.depth_clusters: the
            table plane removed, the clusters above it kept) guide the sampling as the simulator's masks do
            (matches on objects, `background_fraction` of the non-matches on background). Frames without depth
            or intrinsics, or without a table in view, sample without a mask.
        background_fraction: see sample_pairs (with masks only).
    """

    def __init__(self, path: str | Path, size: tuple[int, int] = (240, 320), pairs: str = "auto",
                 color_topic: str | None = None, depth_topic: str | None = None, info_topic: str | None = None,
                 pose_topic: str | None = None, fixed_frame: str = "", frame_step: int = 1, max_frames: int = 0,
                 n_matches: int = 256, nonmatches_per_match: int = 4, min_nonmatch_distance: float = 8.0,
                 min_view_angle_deg: float = 5.0, max_view_angle_deg: float = 60.0,
                 abs_tol: float = SENSOR_ABS_TOL, rel_tol: float = SENSOR_REL_TOL,
                 augment: AugmentConfig | None = None, masks: str = "none", background_fraction: float = 0.5) -> None:
        if pairs not in ("auto", "multiview", "augment"):
            raise ValueError(f"pairs must be auto, multiview or augment, got {pairs!r}")
        if masks not in ("none", "depth_clusters"):
            raise ValueError(f"masks must be none or depth_clusters, got {masks!r}")
        if not 0 <= min_view_angle_deg <= max_view_angle_deg:
            raise ValueError("need 0 <= min_view_angle_deg <= max_view_angle_deg")
        self.size = (int(size[0]), int(size[1]))
        self.frames = load_bag_frames(path, color_topic, depth_topic, info_topic,
                                      "none" if pairs == "augment" else pose_topic, fixed_frame, frame_step,
                                      max_frames)
        self.masks, self.background_fraction = masks, background_fraction
        self._mask_cache: dict[int, np.ndarray | None] = {}
        if masks == "depth_clusters" and all(d is None or k is None for d, k in zip(self.frames.depth, self.frames.K,
                                                                                    strict=True)):
            raise BagError(f"{path}: masks=depth_clusters needs frames with depth and camera info")
        usable = self.frames.multiview()
        if pairs == "multiview" and len(usable) < 2:
            raise BagError(f"{path}: multi-view pairs need two frames with depth, camera info and a camera pose; "
                           f"{len(usable)} of {len(self.frames)} have them ({self.frames.pose_source})")
        self.mode = "multiview" if pairs != "augment" and len(usable) >= 2 else "augment"
        self.index = usable if self.mode == "multiview" else list(range(len(self.frames)))
        if self.frames.skipped:
            log.warning("%s: left out %s", path, ", ".join(f"{n} ({k})" for k, n in self.frames.skipped.items()))
        self.n_matches, self.nonmatches_per_match = n_matches, nonmatches_per_match
        self.min_nonmatch_distance = min_nonmatch_distance
        self.abs_tol, self.rel_tol = abs_tol, rel_tol
        if self.mode == "multiview":
            ang = _view_angles([self.frames.T_world_camera[i] for i in self.index])
            self.partners = []
            for a in range(len(self.index)):
                others = [b for b in range(len(self.index)) if b != a]
                ok = [b for b in others if min_view_angle_deg <= ang[a, b] <= max_view_angle_deg]
                self.partners.append(ok or others)
        else:
            self.augmenter = TwoViewAugmenter(self.size, augment or AugmentConfig())

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: tuple[int, int]) -> PairItem:
        index, seed = key
        if self.mode == "augment":
            return self._augmented(self.index[index % len(self.index)], int(seed))
        return self._multiview(index % len(self.index), int(seed))

    def object_mask(self, i: int) -> np.ndarray | None:
        """(H0, W0) bool object mask of frame i at its own resolution (masks="depth_clusters"), or None (no mask
        asked for, no depth / intrinsics, or no table found). Computed once per frame (pure: RANSAC seed 0)."""
        if self.masks == "none":
            return None
        if i not in self._mask_cache:
            from ..geometry.depth_clusters import depth_clusters

            depth, K = self.frames.depth[i], self.frames.K[i]
            mask = None
            if depth is not None and K is not None:
                if depth.shape != self.frames.rgb[i].shape[:2]:  # depth of another size: scale K to it
                    sy, sx = (a / b for a, b in zip(depth.shape, self.frames.rgb[i].shape[:2], strict=True))
                    K = np.diag([sx, sy, 1.0]) @ K
                mask = depth_clusters(depth, K).mask
                if not mask.any():
                    mask = None
                elif mask.shape != self.frames.rgb[i].shape[:2]:
                    h, w = self.frames.rgb[i].shape[:2]
                    mask = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
            self._mask_cache[i] = mask
        return self._mask_cache[i]

    def _warped_mask(self, i: int, matrix: torch.Tensor) -> torch.Tensor | None:
        mask = self.object_mask(i)
        if mask is None:
            return None
        h, w = self.size
        out = cv2.warpPerspective(mask.astype(np.uint8), matrix.double().numpy(), (w, h), flags=cv2.INTER_NEAREST)
        return torch.from_numpy(out > 0)

    def _resized_mask(self, i: int) -> torch.Tensor | None:
        mask = self.object_mask(i)
        if mask is None:
            return None
        h, w = self.size
        return torch.from_numpy(cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0)

    def _augmented(self, i: int, seed: int) -> PairItem:
        img = torch.from_numpy(self.frames.rgb[i]).permute(2, 0, 1).float().div(255.0)[None]
        views = self.augmenter(img, seed)
        g = torch.Generator().manual_seed(seed)
        mask_a, mask_b = self._warped_mask(i, views.matrix_a), self._warped_mask(i, views.matrix_b)
        pairs = sample_pairs(views.map_ab, views.valid_a, self.size, self.n_matches, self.nonmatches_per_match, g,
                             mask_a=mask_a, mask_b=mask_b, background_fraction=self.background_fraction,
                             min_nonmatch_distance=self.min_nonmatch_distance)
        return PairItem(views.image_a, views.image_b, pairs)

    def _multiview(self, a: int, seed: int) -> PairItem:
        from ..data.synthetic import resized_correspondences
        from ..geometry.reprojection import reproject

        g = torch.Generator().manual_seed(seed)
        pool = self.partners[a]
        b = pool[int(torch.randint(len(pool), (1,), generator=g))]
        f = self.frames
        ia, ib = self.index[a], self.index[b]
        da, db = (torch.from_numpy(f.depth[i]) for i in (ia, ib))
        Ka, Kb = (torch.from_numpy(f.K[i]) for i in (ia, ib))
        Ta, Tb = (torch.from_numpy(f.T_world_camera[i]) for i in (ia, ib))
        if tuple(da.shape) == self.size and tuple(db.shape) == self.size:
            uv_b, valid = reproject(da, Ka, Ta, db, Kb, Tb, abs_tol=self.abs_tol, rel_tol=self.rel_tol)
        else:
            uv_b, valid = resized_correspondences(da, Ka, Ta, db, Kb, Tb, self.size, self.abs_tol, self.rel_tol)
        mask_a, mask_b = self._resized_mask(ia), self._resized_mask(ib)
        pairs = sample_pairs(uv_b, valid, self.size, self.n_matches, self.nonmatches_per_match, g,
                             mask_a=mask_a, mask_b=mask_b, background_fraction=self.background_fraction,
                             min_nonmatch_distance=self.min_nonmatch_distance)
        img_a, img_b = (torch.from_numpy(_resize(f.rgb[i], self.size)).permute(2, 0, 1).float() / 255.0
                        for i in (ia, ib))
        return PairItem(img_a.contiguous(), img_b.contiguous(), pairs)
