"""The node's parameters: one typed, documented table, mapped onto the pure configs.

No rclpy here: the node declares one ROS parameter per field of `NodeSettings` (name, default and
description from the field), config/descriptor_node.yaml repeats the defaults (a test keeps them equal),
and run-time changes go through `NodeSettings.with_changes`, which validates them.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field, fields
from typing import Any

from ..pipeline.config import PipelineConfig
from ..runtime.extractor import ExtractorConfig

# Fields whose change applies to the next frame; every other change applies at the next configure.
LIVE = frozenset(f.name for f in fields(PipelineConfig))


def _p(default: Any, help: str, choices: tuple | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class NodeSettings:
    """Every parameter of the descriptor node (ROS parameter name = field name)."""

    # --- model (read at configure, loaded at activate)
    model_path: str = _p("", "model file: .onnx (backend onnx) or .safetensors (backend torch); "
                             "empty = the shipped default model")
    backend: str = _p("onnx", "inference engine", ("onnx", "torch"))
    device: str = _p("cpu", "cpu or cuda (cuda:N); a missing GPU falls back to CPU with a warning unless "
                            "require_device", None)
    require_device: bool = _p(False, "fail at activate instead of falling back to CPU when the device is missing")
    num_threads: int = _p(2, "CPU threads for inference (0 = library default)")
    resolution: tuple[int, int] = _p((320, 240), "processing resolution [width, height] the colour image is "
                                                 "resized to; [0, 0] = the input size")
    keypoints_file: str = _p("", "reference keypoint file (JSON, docs/keypoint_file.md); empty = the shipped mug "
                                 "keypoints when the model is the shipped one; 'none' = no keypoint output")
    part_probe_file: str = _p("", "part probe (.safetensors from `dense-descriptor probe`) for the labels output; "
                                  "empty = the shipped probe when the model is the shipped one; 'none' = no labels")
    matcher_file: str = _p("", "learned matcher (.onnx / .safetensors from `dense-descriptor matcher`) for "
                               "correspondence_method matcher; empty = the shipped matcher when the model is the "
                               "shipped one; 'none' = no matcher")
    # --- inputs
    sync_slop: float = _p(0.02, "largest colour-depth stamp difference [s] for approximate-time matching")
    sync_exact: bool = _p(False, "match colour and depth only on identical stamps")
    sync_queue: int = _p(5, "messages kept per input stream while waiting for a match")
    qos_reliability: str = _p("best_effort", "input QoS reliability; must be compatible with the camera driver",
                              ("best_effort", "reliable"))
    qos_depth: int = _p(5, "input QoS history depth")
    # --- outputs (PipelineConfig fields; applied from the next frame)
    map_stride: int = _p(8, "published descriptor map: input pixels per cell")
    map_dtype: str = _p("float16", "published descriptor map element type", ("float16", "float32"))
    keypoint_method: str = _p("ratio", "keypoint confidence: ratio test or softmax mass", ("ratio", "softmax"))
    keypoint_min_confidence: float = _p(0.1, "keypoints below this confidence are published as not found")
    keypoint_max_distance: float = _p(0.8, "keypoints whose descriptor distance exceeds this are not found")
    keypoint_radius: float = _p(12.0, "radius [px] of a keypoint's neighbourhood in its confidence")
    correspondence_mode: str = _p("previous", "frame A of the correspondences", ("previous", "reference", "off"))
    correspondence_method: str = _p("descriptor", "how correspondences are found: descriptor nearest neighbours "
                                                  "with a ratio test, or the learned matcher (needs matcher_file)",
                                    ("descriptor", "matcher"))
    correspondence_max: int = _p(200, "most correspondences per frame")
    correspondence_spacing: float = _p(12.0, "query pixels in frame A are at least this many pixels apart")
    correspondence_max_ratio: float = _p(0.9, "ratio test threshold of a correspondence (method descriptor)")
    correspondence_min_confidence: float = _p(0.2, "dual-softmax confidence a correspondence must exceed (method "
                                                   "matcher)")
    depth_min: float = _p(0.1, "smallest valid depth [m]")
    depth_max: float = _p(10.0, "largest valid depth [m]")
    depth_window: int = _p(5, "odd window [px] whose depth lifts a pixel to 3D")
    keypoint_depth: str = _p("nearest", "depth of the window that lifts a named keypoint: the nearest surface "
                                        "(keypoints lie on objects) or the median", ("nearest", "median"))
    size_mismatch: str = _p("scale", "depth of another size than colour: scale it (registered depth) or drop "
                                     "the frame", ("scale", "reject"))
    # --- diagnostics
    diagnostics_period: float = _p(1.0, "seconds between /diagnostics messages and between rate estimates")

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {list(choices)}, got {getattr(self, f.name)!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.num_threads < 0 or self.sync_queue < 1 or self.qos_depth < 1 or self.sync_slop < 0:
            raise ValueError("num_threads >= 0, sync_queue >= 1, qos_depth >= 1 and sync_slop >= 0 are required")
        if len(self.resolution) != 2 or min(self.resolution) < 0 or (0 in self.resolution and any(self.resolution)):
            raise ValueError(f"resolution must be [width, height] > 0 or [0, 0], got {list(self.resolution)}")
        if self.diagnostics_period <= 0:
            raise ValueError(f"diagnostics_period must be > 0, got {self.diagnostics_period}")
        self.pipeline_config()  # validates the pipeline fields

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> NodeSettings:
        """From ROS parameter values (lists for tuples); unknown names are an error."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown parameters: {unknown}")
        kw = {}
        for name, v in values.items():
            default = known[name].default
            if isinstance(default, tuple):
                # rclpy gives integer arrays as array.array('q')
                if not (isinstance(v, list | tuple | array.array)
                        and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
                    raise ValueError(f"parameter {name} must be a list of integers, got {v!r}")
                v = tuple(v)
            elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            elif type(v) is not type(default):
                raise ValueError(f"parameter {name} must be {type(default).__name__}, got {v!r}")
            kw[name] = v
        return cls(**kw)

    def with_changes(self, changes: dict[str, Any]) -> tuple[NodeSettings, list[str]]:
        """Validated new settings and the names that only apply at the next configure."""
        merged = {**self.as_params(), **changes}
        return NodeSettings.from_params(merged), sorted(n for n in changes if n not in LIVE)

    def as_params(self) -> dict[str, Any]:
        """name -> value as ROS parameters hold them (tuples as lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(**{n: getattr(self, n) for n in LIVE})

    def extractor_config(self, warmup_iters: int = 2) -> ExtractorConfig:
        """Inference settings. Idle threads never spin: on a robot other processes share the cores.
        `warmup_iters` 0 for a one-off extractor (annotating keypoints before the node starts)."""
        return ExtractorConfig(backend="onnxruntime" if self.backend == "onnx" else "torch", device=self.device,
                               providers=("cuda", "cpu") if self.device.startswith("cuda") else ("cpu",),
                               on_fallback="error" if self.require_device else "warn",
                               num_threads=self.num_threads, allow_spinning=False, resolution=self.resolution,
                               warmup_iters=warmup_iters)


def parameter_table() -> list[tuple[str, Any, str, tuple | None]]:
    """(name, default, description, choices) of every parameter, in declaration order."""
    return [(f.name, f.default, f.metadata["help"], f.metadata.get("choices")) for f in fields(NodeSettings)]


