"""Matching on descriptor maps: named reference keypoints, frame-to-frame correspondences, detection."""

from .dense import (
    Correspondences,
    match_dense,
    match_descriptors,
    pairwise_sqdist,
    pool_map,
    quadratic_subpixel,
    sample_map,
    subpixel_refine,
)
from .detect import detect_keypoints, distinctiveness, nms
from .keypoints import (
    LocatedKeypoints,
    ModelMismatchError,
    ReferenceKeypoints,
    annotate_keypoints,
    average_keypoints,
    locate_keypoints,
    model_identity,
)

__all__ = ["Correspondences", "match_dense", "match_descriptors", "pairwise_sqdist", "pool_map",
           "quadratic_subpixel", "sample_map", "subpixel_refine", "detect_keypoints", "distinctiveness", "nms",
           "LocatedKeypoints", "ModelMismatchError", "ReferenceKeypoints", "annotate_keypoints",
           "average_keypoints", "locate_keypoints", "model_identity"]
