"""Correspondences: pair batches, two-view augmentation with exact geometry, sampling."""

from .augment import AugmentConfig, TwoViewAugmenter, TwoViews, apply_homography, dense_map, pixel_grid
from .pairs import PairSample, check_shape, pixel_to_level, sample_descriptors
from .sampling import mine_hard_negatives, sample_pairs

__all__ = ["AugmentConfig", "TwoViewAugmenter", "TwoViews", "apply_homography", "dense_map", "pixel_grid",
           "PairSample", "check_shape", "pixel_to_level", "sample_descriptors", "mine_hard_negatives",
           "sample_pairs"]
