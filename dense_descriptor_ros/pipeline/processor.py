"""The per-frame pipeline: descriptors -> published map, PCA image, named 3D keypoints, correspondences.

Pure Python/NumPy (no rclpy): the node and `dense-descriptor bag process` both run exactly this code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..descriptor_map import DescriptorMap
from ..geometry.lifting import lift_points
from ..matcher.runtime import LearnedMatcher
from ..matching.dense import match_dense, sample_map
from ..matching.detect import detect_keypoints
from ..matching.keypoints import ReferenceKeypoints, locate_keypoints
from ..runtime.extractor import DescriptorExtractor
from ..runtime.part_probe import PartProbe
from ..viz.pca import PcaColorizer
from .config import PipelineConfig
from .frame import Frame


@dataclass(frozen=True)
class Wanted:
    """Which outputs to compute (the node sets these from its subscriber counts)."""

    descriptors: bool = True
    pca: bool = True
    keypoints: bool = True
    correspondences: bool = True
    labels: bool = True


@dataclass
class KeypointResult:
    """Named keypoints of one frame, in the reference file's order.

    Shape:
        uv: (K, 2) pixel (x, y), NaN where not found; found: (K,) bool; score: (K,) float32 in [0, 1];
        xyz: (K, 3) metres in the optical frame, NaN where not valid; xyz_valid: (K,) bool.
    """

    names: list[str]
    uv: np.ndarray
    found: np.ndarray
    score: np.ndarray
    xyz: np.ndarray
    xyz_valid: np.ndarray


@dataclass
class CorrespondenceResult:
    """Matches from an earlier frame A to this frame B.

    Shape:
        uv_a, uv_b: (N, 2) pixel (x, y); score: (N,) float32 in [0, 1] (1 - Lowe ratio for the descriptor
            method, the dual-softmax confidence for the learned matcher);
        xyz_a, xyz_b: (N, 3) metres in each frame's optical frame, NaN where not valid; valid: (N,) bool.
    """

    stamp_a_ns: int
    uv_a: np.ndarray
    uv_b: np.ndarray
    score: np.ndarray
    xyz_a: np.ndarray
    xyz_b: np.ndarray
    valid: np.ndarray


@dataclass
class FrameResult:
    """Everything computed for one frame; outputs not wanted are None."""

    stamp_ns: int
    frame_id: str
    image_size: tuple[int, int]  # (W, H) of the input colour image
    model_id: str
    normalized: bool
    descriptors: np.ndarray | None = None  # (ceil(H/s), ceil(W/s), D) at config.map_stride, config.map_dtype
    map_stride: int = 0
    pca_rgb: np.ndarray | None = None  # (h, w, 3) uint8 RGB picture of the descriptors (PCA), processing size
    keypoints: KeypointResult | None = None
    correspondences: CorrespondenceResult | None = None
    labels: np.ndarray | None = None  # (H, W) uint8 class ids of the part probe at the input size
    label_classes: list[str] = field(default_factory=list)  # class id -> name ("background", "mug/handle"...)
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    notes: list[str] = field(default_factory=list)  # why an output is partial (no depth, no intrinsics)


def resample_map(dmap: DescriptorMap, stride: int, dtype: str = "float32") -> np.ndarray:
    """The descriptor map on a regular grid of `stride` input pixels (bilinear), as DescriptorMap.msg
    defines it: cell (r, c) centred on pixel ((c + 0.5) * stride - 0.5, (r + 0.5) * stride - 0.5).

    Shape:
        -> (ceil(H / stride), ceil(W / stride), D) in `dtype`.
    """
    w_img, h_img = dmap.image_size
    h, w = -(-h_img // stride), -(-w_img // stride)
    if (dmap.stride == (float(stride), float(stride)) and dmap.descriptors.shape[:2] == (h, w)):
        return dmap.descriptors.astype(dtype, copy=False)
    gx, gy = np.meshgrid((np.arange(w) + 0.5) * stride - 0.5, (np.arange(h) + 0.5) * stride - 0.5)
    p = dmap.to_map(np.stack([gx.ravel(), gy.ravel()], 1))
    out = sample_map(dmap.descriptors.astype(np.float32, copy=False), p)
    if dmap.normalized:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.reshape(h, w, -1).astype(dtype, copy=False)


@dataclass
class _Previous:
    dmap: DescriptorMap
    depth: np.ndarray | None
    K: np.ndarray | None
    stamp_ns: int
    rgb: np.ndarray | None = None  # kept only for a matcher that reads the images


class FrameProcessor:
    """Runs the pipeline on frames, keeping what correspondences need from earlier frames.

    Args:
        extractor: the loaded network (any backend).
        reference: named keypoints to locate (None: no keypoint output). Checked against the model.
        config: thresholds and output settings; `update_config` swaps it between frames.
        probe: linear part probe for the labels output (None: no labels). Checked against the model.
        matcher: learned matcher for `correspondence_method` "matcher" (None: that method is refused). Checked
            against the model and its native map stride.
    """

    def __init__(self, extractor: DescriptorExtractor, reference: ReferenceKeypoints | None = None,
                 config: PipelineConfig | None = None, probe: PartProbe | None = None,
                 matcher: LearnedMatcher | None = None) -> None:
        self.extractor = extractor
        if matcher is not None:
            matcher.check_model(extractor.info.model_id)
            given = 1 if extractor.config.output_stride else extractor.info.stride
            if given != matcher.info.descriptor_stride:
                raise ValueError(f"the matcher reads native stride-{matcher.info.descriptor_stride} maps; the "
                                 f"extractor gives stride {given}")
        self.matcher = matcher
        self._check_method(config or PipelineConfig())
        self.config = config or PipelineConfig()
        for what, companion in (("keypoint file", reference), ("part probe", probe)):
            if companion is not None:  # made with this model, at its descriptor dimension
                companion.check_model(extractor.info.model_id)
                if companion.descriptor_dim != extractor.info.descriptor_dim:
                    raise ValueError(f"{what} has D={companion.descriptor_dim}, the model "
                                     f"D={extractor.info.descriptor_dim}")
        self.reference = reference
        self.probe = probe
        self.colorizer = PcaColorizer()
        self._anchor: _Previous | None = None

    def _check_method(self, config: PipelineConfig) -> None:
        if config.correspondence_method == "matcher" and self.matcher is None:
            raise ValueError("correspondence_method 'matcher' needs a matcher file (matcher_file)")

    def update_config(self, config: PipelineConfig) -> None:
        """New thresholds from the next frame on; a mode or method change restarts correspondences.

        Raises:
            ValueError: the matcher method without a matcher (the config is not changed)."""
        self._check_method(config)
        if (config.correspondence_mode, config.correspondence_method) != (self.config.correspondence_mode,
                                                                          self.config.correspondence_method):
            self._anchor = None
        self.config = config

    def reset_reference(self) -> None:
        """Forget frame A: the next frame becomes the new reference (or previous) frame."""
        self._anchor = None
        self.colorizer = PcaColorizer()

    def process(self, frame: Frame, wanted: Wanted = Wanted()) -> FrameResult:  # noqa: B008 (frozen)
        """All wanted outputs of one frame (see FrameResult)."""
        cfg = self.config
        t_start = time.perf_counter()
        info = self.extractor.info
        res = FrameResult(frame.stamp_ns, frame.frame_id, frame.size, info.model_id, info.normalize)
        dmap = self.extractor.extract(frame.rgb)
        timings = res.timings_ms
        timings["inference"] = self.extractor.timing.inference_ms
        timings["extract"] = (time.perf_counter() - t_start) * 1e3
        if wanted.descriptors:
            t0 = time.perf_counter()
            res.descriptors = resample_map(dmap, cfg.map_stride, cfg.map_dtype)
            res.map_stride = cfg.map_stride
            timings["map"] = (time.perf_counter() - t0) * 1e3
        if wanted.pca:
            t0 = time.perf_counter()
            small = self.colorizer(dmap.descriptors)
            # at the processing resolution, not the input's: the picture holds no more detail, and a 640x480
            # input would make it 4x the bytes to build and publish every frame
            size = self.extractor.processing_size(frame.size)
            res.pca_rgb = cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)
            timings["pca"] = (time.perf_counter() - t0) * 1e3
        if wanted.labels and self.probe is not None:
            t0 = time.perf_counter()
            res.labels = self.probe.label_image(dmap.descriptors, frame.size)
            res.label_classes = self.probe.classes
            timings["labels"] = (time.perf_counter() - t0) * 1e3
        if frame.K is None:
            res.notes.append("no camera info: 2D outputs only")
        elif frame.depth is None:
            res.notes.append("no depth: 2D outputs only")
        if wanted.keypoints and self.reference is not None:
            t0 = time.perf_counter()
            res.keypoints = self._keypoints(frame, dmap)
            timings["keypoints"] = (time.perf_counter() - t0) * 1e3
        if wanted.correspondences and cfg.correspondence_mode != "off":
            t0 = time.perf_counter()
            res.correspondences = self._correspondences(frame, dmap)
            timings["correspondences"] = (time.perf_counter() - t0) * 1e3
        else:
            self._anchor = None  # nobody listens: do not match against a stale frame later
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        return res

    def _lift(self, uv: np.ndarray, depth: np.ndarray | None, K: np.ndarray | None,
              statistic: str = "median") -> tuple[np.ndarray, np.ndarray]:
        n = len(uv)
        if depth is None or K is None or n == 0:
            return np.full((n, 3), np.nan), np.zeros(n, bool)
        cfg = self.config
        return lift_points(uv, depth, K, window=cfg.depth_window, min_depth=cfg.depth_min, max_depth=cfg.depth_max,
                           statistic=statistic)

    def _keypoints(self, frame: Frame, dmap: DescriptorMap) -> KeypointResult:
        cfg = self.config
        loc = locate_keypoints(self.reference, dmap, method=cfg.keypoint_method,
                               min_confidence=cfg.keypoint_min_confidence, max_distance=cfg.keypoint_max_distance,
                               radius=cfg.keypoint_radius)
        xyz, valid = self._lift(loc.uv, frame.depth, frame.K, cfg.keypoint_depth)
        return KeypointResult(loc.names, loc.uv, loc.found, loc.confidence, xyz, valid & loc.found)

    def _correspondences(self, frame: Frame, dmap: DescriptorMap) -> CorrespondenceResult | None:
        cfg = self.config
        anchor = self._anchor
        if anchor is not None and frame.stamp_ns < anchor.stamp_ns:
            # time went backwards (a bag played in a loop, a restarted camera): frame A would be "later" than
            # the frame matched against it; start again from this frame
            anchor = self._anchor = None
        reads = cfg.correspondence_method == "matcher" and self.matcher is not None and self.matcher.reads_images
        current = _Previous(dmap, frame.depth, frame.K, frame.stamp_ns, frame.rgb if reads else None)
        if anchor is None or cfg.correspondence_mode == "previous":
            self._anchor = current
        if anchor is None:
            return None  # the first frame has nothing to match against
        if cfg.correspondence_method == "matcher" and self.matcher is not None:
            mm = self.matcher.match(anchor.dmap, dmap, threshold=cfg.correspondence_min_confidence,
                                    max_matches=cfg.correspondence_max, image_a=anchor.rgb, image_b=frame.rgb)
            uv_a, uv_b, score = mm.uv_a, mm.uv_b, mm.confidence
        else:
            q, _ = detect_keypoints(anchor.dmap, min_distance=cfg.correspondence_spacing,
                                    max_keypoints=4 * cfg.correspondence_max)
            m = match_dense(anchor.dmap, dmap, points_a=q, max_ratio=cfg.correspondence_max_ratio,
                            max_matches=cfg.correspondence_max)
            uv_a, uv_b, score = m.uv_a, m.uv_b, np.clip(1.0 - m.ratio, 0.0, 1.0).astype(np.float32)
        xyz_a, va = self._lift(uv_a, anchor.depth, anchor.K)
        xyz_b, vb = self._lift(uv_b, frame.depth, frame.K)
        valid = va & vb
        xyz_a[~valid] = np.nan
        xyz_b[~valid] = np.nan
        return CorrespondenceResult(anchor.stamp_ns, uv_a, uv_b, score, xyz_a, xyz_b, valid)
