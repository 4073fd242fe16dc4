"""Build the training dataset and the fixed validation pairs from the data config."""

from __future__ import annotations

import torch

from ..data.base import PairDataset, PairItem
from ..data.image_folder import ImageFolderPairs
from ..data.sample_images import resolve_image_dir
from .config import DataConfig

VAL_SEED = 1_000_003  # validation pairs never share a seed with training pairs


class MixedPairs:
    """Draws each pair from `b` with probability `p_b`, else from `a` (decided by the key's seed and `salt`:
    nested mixtures need different salts, else their coins are the same draw)."""

    def __init__(self, a: PairDataset, b: PairDataset, p_b: float, salt: int = 0x5EED) -> None:
        self.a, self.b, self.p_b, self.salt = a, b, p_b, salt

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, key: tuple[int, int]) -> PairItem:
        index, seed = key
        coin = torch.rand(1, generator=torch.Generator().manual_seed(seed ^ self.salt)).item()
        src = self.b if coin < self.p_b else self.a
        return src[(index % len(src), seed)]


def _images(cfg: DataConfig, folder: str, progress: bool) -> ImageFolderPairs:
    return ImageFolderPairs(resolve_image_dir(folder), size=tuple(cfg.image_size), n_matches=cfg.n_matches,
                            nonmatches_per_match=cfg.nonmatches_per_match,
                            min_nonmatch_distance=cfg.min_nonmatch_distance, augment=cfg.augment,
                            progress=progress)


def _synthetic(cfg: DataConfig, split: str, part_labels: bool = False, canonical: bool = False) -> PairDataset:
    if not cfg.synthetic_dir:
        raise ValueError(f"data.kind={cfg.kind} needs data.synthetic_dir (from `dense-descriptor sim generate`)")
    from ..data.synthetic import SyntheticPairDataset

    same = SyntheticPairDataset(cfg.synthetic_dir, split=split, n_matches=cfg.n_matches,
                                nonmatches_per_match=cfg.nonmatches_per_match,
                                background_fraction=cfg.background_fraction,
                                min_nonmatch_distance=cfg.min_nonmatch_distance, image_size=tuple(cfg.image_size),
                                part_labels=part_labels, canonical=canonical)
    if cfg.cross_instance_fraction <= 0:
        return same
    from ..data.cross_instance import CrossInstancePairDataset

    cross = CrossInstancePairDataset(cfg.synthetic_dir, split=split, categories=tuple(cfg.cross_instance_categories),
                                     max_distance=cfg.cross_instance_max_distance, n_matches=cfg.n_matches,
                                     nonmatches_per_match=cfg.nonmatches_per_match,
                                     background_fraction=cfg.background_fraction,
                                     min_nonmatch_distance=cfg.min_nonmatch_distance,
                                     image_size=tuple(cfg.image_size), part_labels=part_labels,
                                     canonical=canonical)
    return MixedPairs(same, cross, cfg.cross_instance_fraction, salt=0xC805)


def _bag(cfg: DataConfig) -> PairDataset:
    if not cfg.bag_path:
        raise ValueError("data.kind=bag needs data.bag_path (a rosbag2 folder or .mcap / .db3 file)")
    from ..bag.dataset import BagPairDataset

    (lo, hi), (abs_tol, rel_tol) = cfg.bag_view_angle_deg, cfg.bag_depth_tolerance
    return BagPairDataset(cfg.bag_path, size=tuple(cfg.image_size), pairs=cfg.bag_pairs,
                          color_topic=cfg.bag_color_topic or None, depth_topic=cfg.bag_depth_topic or None,
                          info_topic=cfg.bag_info_topic or None, pose_topic=cfg.bag_pose_topic or None,
                          fixed_frame=cfg.bag_fixed_frame, frame_step=cfg.bag_frame_step, n_matches=cfg.n_matches,
                          nonmatches_per_match=cfg.nonmatches_per_match,
                          min_nonmatch_distance=cfg.min_nonmatch_distance, min_view_angle_deg=lo,
                          max_view_angle_deg=hi, abs_tol=abs_tol, rel_tol=rel_tol, augment=cfg.augment,
                          masks=cfg.bag_masks, background_fraction=cfg.background_fraction)


def build_train_dataset(cfg: DataConfig, progress: bool = False, part_labels: bool = False,
                        canonical: bool = False) -> PairDataset:
    """The pair dataset the config names; `part_labels`: synthetic items carry their part ids (the part loss);
    `canonical`: their canonical coordinate targets (the canonical term)."""
    if cfg.kind == "images":
        return _images(cfg, cfg.image_dir, progress)
    if cfg.kind == "bag":
        return _bag(cfg)
    if cfg.kind == "synthetic":
        return _synthetic(cfg, "train", part_labels, canonical)
    return MixedPairs(_images(cfg, cfg.image_dir, progress), _synthetic(cfg, "train", part_labels, canonical),
                      cfg.synthetic_fraction)


def build_val_items(cfg: DataConfig) -> list[PairItem]:
    """The fixed, seeded validation pairs (held-out images; empty when val_image_dir is "")."""
    if not cfg.val_image_dir or cfg.val_pairs <= 0:
        return []
    ds = _images(cfg, cfg.val_image_dir, progress=False)
    return [ds[(i % len(ds), VAL_SEED + i)] for i in range(cfg.val_pairs)]
