"""Settings of the per-frame pipeline shared by the node and the rosbag tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class PipelineConfig:
    """What the pipeline computes from one RGB-D frame, and its thresholds.

    The node maps its ROS parameters onto these fields one to one (config/descriptor_node.yaml).
    """

    # Stride (input-image pixels per cell) of the published descriptor map; the network's native map is
    # resampled to a ceil(H / s) x ceil(W / s) grid. 8 at 640x480 is 80x60x16 cells: 150 KB as float16,
    # cheap to publish at 30 Hz (a full-resolution float32 map is 19.7 MB and costs 19-40 ms to publish).
    map_stride: int = 8
    # Element type of the published map.
    map_dtype: Literal["float16", "float32"] = "float16"
    # Named keypoints: "ratio" (1 - best / second-best distance, Lowe) or "softmax" confidence.
    keypoint_method: Literal["ratio", "softmax"] = "ratio"
    # A keypoint with confidence below this is reported as not found.
    keypoint_min_confidence: float = 0.1
    # ... and so is one whose best descriptor distance exceeds this (unit descriptors: 0..2).
    keypoint_max_distance: float = 0.8
    # Radius (pixels) of the best match's neighbourhood in the confidence.
    keypoint_radius: float = 12.0
    # Correspondences from frame A to the current frame: "previous" (A = the last processed frame),
    # "reference" (A = the first frame after activation, or after `reset_reference`), or "off".
    correspondence_mode: Literal["previous", "reference", "off"] = "previous"
    # How correspondences are found: "descriptor" (the most distinctive cells of A matched by mutual nearest
    # neighbours with a ratio test, coarse-to-fine) or "matcher" (the learned coarse-to-fine matcher on both
    # frames' descriptor maps: one query per coarse cell, dual-softmax confidence; needs a matcher file).
    correspondence_method: Literal["descriptor", "matcher"] = "descriptor"
    # Most correspondences per frame (the most distinctive ones).
    correspondence_max: int = 200
    # Query pixels in A: the most distinctive ones, at least this many pixels apart.
    correspondence_spacing: float = 12.0
    # Ratio test (best / second-best descriptor distance) a correspondence must pass (method "descriptor").
    correspondence_max_ratio: float = 0.9
    # Dual-softmax confidence a correspondence must exceed (method "matcher").
    correspondence_min_confidence: float = 0.2
    # Depth outside [depth_min, depth_max] metres is invalid (no 3D point).
    depth_min: float = 0.1
    depth_max: float = 10.0
    # Side (pixels, odd) of the window whose depth lifts a pixel to 3D.
    depth_window: int = 5
    # Which depth of the window lifts a named keypoint: "nearest" surface (keypoints lie on objects; a
    # match slightly off a thin handle would otherwise take the depth of the table behind it) or
    # "median". Correspondences, which may lie anywhere, always use the median.
    keypoint_depth: Literal["nearest", "median"] = "nearest"
    # Colour and depth of different sizes: "scale" (the depth image is registered to the colour image
    # and only sampled at a different resolution: pixel coordinates are scaled between them, aspect
    # ratios must agree within 1%) or "reject" (the frame is dropped with an error).
    size_mismatch: Literal["scale", "reject"] = "scale"

    def __post_init__(self) -> None:
        if self.map_stride < 1:
            raise ValueError(f"map_stride must be >= 1, got {self.map_stride}")
        if not 0.0 <= self.keypoint_min_confidence <= 1.0:
            raise ValueError(f"keypoint_min_confidence must be in [0, 1], got {self.keypoint_min_confidence}")
        if self.keypoint_max_distance <= 0 or self.keypoint_radius <= 0:
            raise ValueError("keypoint_max_distance and keypoint_radius must be > 0")
        if self.correspondence_max < 1 or self.correspondence_spacing <= 0:
            raise ValueError("correspondence_max must be >= 1 and correspondence_spacing > 0")
        if not 0.0 < self.correspondence_max_ratio <= 1.0:
            raise ValueError(f"correspondence_max_ratio must be in (0, 1], got {self.correspondence_max_ratio}")
        if not 0.0 <= self.correspondence_min_confidence < 1.0:
            raise ValueError(f"correspondence_min_confidence must be in [0, 1), got "
                             f"{self.correspondence_min_confidence}")
        if not 0.0 <= self.depth_min < self.depth_max:
            raise ValueError(f"need 0 <= depth_min < depth_max, got {self.depth_min}, {self.depth_max}")
        if self.depth_window < 1 or self.depth_window % 2 == 0:
            raise ValueError(f"depth_window must be odd and >= 1, got {self.depth_window}")
