"""The node's outputs: one table (`OUTPUT_SPECS`) of what it publishes and how each message is built from a
`FrameResult`, for rclpy and for rosbags alike. The node creates its publishers and publishes by looping over
the table; `bag process` writes the same messages the same way; the demo and the benchmarks read the topic
names from it. Adding an output is its message (if new) plus one `OutputSpec` (docs/extending.md).

The message classes are passed in (`MessageTypes`), so this module never imports rclpy: the node passes
the generated rclpy classes, the rosbag tools pass rosbags' dataclasses. Array fields are filled in the
form each library takes without a per-element Python check: array.array for rclpy, numpy for rosbags.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..ros_core.image_codec import labels_to_image, rgb_to_image
from ..ros_core.sync import NS_PER_S
from ..ros_core.topics import NODE_NAME
from .processor import FrameResult

DTYPE_CODES = {"float16": 1, "float32": 2}  # DescriptorMap.DTYPE_FLOAT16 / DTYPE_FLOAT32


@dataclass(frozen=True)
class MessageTypes:
    """Constructors of the messages we fill (keyword arguments, every field given)."""

    Header: Any
    Time: Any
    Point: Any
    DescriptorMap: Any
    Keypoint: Any
    KeypointArray: Any
    Correspondences: Any
    Image: Any  # sensor_msgs/msg/Image
    arrays: Literal["array", "numpy"] = "array"  # "array": rclpy; "numpy": rosbags


def time_fields(stamp_ns: int) -> dict[str, int]:
    """builtin_interfaces/Time fields of an integer-nanosecond stamp."""
    return {"sec": int(stamp_ns // NS_PER_S), "nanosec": int(stamp_ns % NS_PER_S)}


def _f32(x: np.ndarray, kind: str) -> Any:
    a = np.ascontiguousarray(x, dtype="<f4").ravel()
    return array.array("f", a.tobytes()) if kind == "array" else a


def _bools(x: np.ndarray, kind: str) -> Any:
    a = np.asarray(x, dtype=bool).ravel()
    return a.tolist() if kind == "array" else a


def _header(t: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    return t.Header(stamp=t.Time(**time_fields(stamp_ns)), frame_id=frame_id)


def descriptor_map_msg(t: MessageTypes, r: FrameResult) -> Any:
    """DescriptorMap of a result computed with Wanted(descriptors=True)."""
    if r.descriptors is None:
        raise ValueError("the result holds no descriptor map (computed with descriptors not wanted)")
    d = r.descriptors
    dtype = str(d.dtype)
    if dtype not in DTYPE_CODES:
        raise ValueError(f"descriptor map dtype must be float16 or float32, got {dtype}")
    raw = np.ascontiguousarray(d, dtype=d.dtype.newbyteorder("<")).view(np.uint8).ravel()
    data = array.array("B", raw.tobytes()) if t.arrays == "array" else raw
    h, w, dim = d.shape
    return t.DescriptorMap(header=_header(t, r.stamp_ns, r.frame_id), height=h, width=w, dimension=dim,
                           stride=r.map_stride, dtype=DTYPE_CODES[dtype], normalized=bool(r.normalized),
                           model_id=r.model_id, data=data)


def keypoint_array_msg(t: MessageTypes, r: FrameResult) -> Any:
    """KeypointArray of a result with keypoints: every library keypoint, found or not."""
    k = r.keypoints
    if k is None:
        raise ValueError("the result holds no keypoints")
    kps = []
    for i, name in enumerate(k.names):
        found, valid = bool(k.found[i]), bool(k.xyz_valid[i])
        u, v = (float(k.uv[i, 0]), float(k.uv[i, 1])) if found else (float("nan"), float("nan"))
        x, y, z = (float(c) for c in k.xyz[i]) if valid else (float("nan"),) * 3
        kps.append(t.Keypoint(name=name, pixel_x=u, pixel_y=v, position=t.Point(x=x, y=y, z=z),
                              score=float(k.score[i]), pixel_valid=found, position_valid=valid))
    return t.KeypointArray(header=_header(t, r.stamp_ns, r.frame_id), model_id=r.model_id, keypoints=kps)


def correspondences_msg(t: MessageTypes, r: FrameResult) -> Any:
    """Correspondences of a result that has them (not the first frame)."""
    c = r.correspondences
    if c is None:
        raise ValueError("the result holds no correspondences")
    return t.Correspondences(header=_header(t, r.stamp_ns, r.frame_id), stamp_a=t.Time(**time_fields(c.stamp_a_ns)),
                             model_id=r.model_id, pixels_a=_f32(c.uv_a, t.arrays), pixels_b=_f32(c.uv_b, t.arrays),
                             scores=_f32(c.score, t.arrays), points_valid=_bools(c.valid, t.arrays),
                             points_a=_f32(c.xyz_a, t.arrays), points_b=_f32(c.xyz_b, t.arrays))


def pca_image_msg(t: MessageTypes, r: FrameResult) -> Any:
    """sensor_msgs/Image (bgr8) of a result's PCA visualisation, with the input's stamp and frame."""
    if r.pca_rgb is None:
        raise ValueError("the result holds no PCA image")
    return t.Image(header=_header(t, r.stamp_ns, r.frame_id), **rgb_to_image(r.pca_rgb, "bgr8").to_kwargs(t.arrays))


def labels_msg(t: MessageTypes, r: FrameResult) -> Any:
    """sensor_msgs/Image (mono8) of a result's part labels: pixel = class id of the part probe (0 =
    background), at the input image's size, with its stamp and frame. The id -> name table is the node's
    `label_classes` parameter (and the probe file's metadata)."""
    if r.labels is None:
        raise ValueError("the result holds no labels")
    return t.Image(header=_header(t, r.stamp_ns, r.frame_id), **labels_to_image(r.labels).to_kwargs(t.arrays))


@dataclass(frozen=True)
class OutputSpec:
    """One output of the node.

    Attributes:
        key: the output's name (also the `Wanted` / `FrameResult` field that holds it).
        topic: topic in the node's private namespace (`~/` + topic).
        type_name: ROS message type, "package/msg/Name".
        qos_depth: history depth of its (reliable) publisher.
        present: whether a result holds this output.
        build: (MessageTypes, FrameResult) -> message, for a result where `present` is true.
    """

    key: str
    topic: str
    type_name: str
    qos_depth: int
    present: Callable[[FrameResult], bool]
    build: Callable[[MessageTypes, FrameResult], Any]


OUTPUT_SPECS: tuple[OutputSpec, ...] = (
    OutputSpec("descriptors", "descriptors", "dense_descriptor_ros/msg/DescriptorMap", 2,
               lambda r: r.descriptors is not None, descriptor_map_msg),
    OutputSpec("pca", "descriptors/pca", "sensor_msgs/msg/Image", 2, lambda r: r.pca_rgb is not None, pca_image_msg),
    # before the keypoints: a consumer that masks keypoints with the labels gets them first
    OutputSpec("labels", "labels", "sensor_msgs/msg/Image", 2, lambda r: r.labels is not None, labels_msg),
    OutputSpec("keypoints", "keypoints", "dense_descriptor_ros/msg/KeypointArray", 10,
               lambda r: r.keypoints is not None, keypoint_array_msg),
    OutputSpec("correspondences", "correspondences", "dense_descriptor_ros/msg/Correspondences", 5,
               lambda r: r.correspondences is not None, correspondences_msg),
)
#: key -> spec, and the tables derived from it.
OUTPUTS_BY_KEY = {s.key: s for s in OUTPUT_SPECS}
OUTPUTS = {s.key: s.topic for s in OUTPUT_SPECS}
OUTPUT_TYPES = {s.key: s.type_name for s in OUTPUT_SPECS}
OUTPUT_QOS_DEPTH = {s.key: s.qos_depth for s in OUTPUT_SPECS}


def output_topics(node: str = f"/{NODE_NAME}") -> dict[str, str]:
    """Absolute output topic names of the node with fully qualified name `node` (default: root namespace)."""
    return {k: f"{node.rstrip('/')}/{v}" for k, v in OUTPUTS.items()}


def output_messages(t: MessageTypes, r: FrameResult) -> Iterator[tuple[OutputSpec, Any]]:
    """Every output a result holds, as (spec, message), in table order."""
    for spec in OUTPUT_SPECS:
        if spec.present(r):
            yield spec, spec.build(t, r)


def descriptor_map_from_msg(msg: Any) -> np.ndarray:
    """The (height, width, dimension) array of a DescriptorMap message (rclpy or rosbags), checked."""
    dtypes = {1: np.dtype("<f2"), 2: np.dtype("<f4")}
    if int(msg.dtype) not in dtypes:
        raise ValueError(f"DescriptorMap.dtype {msg.dtype} is neither DTYPE_FLOAT16 (1) nor DTYPE_FLOAT32 (2)")
    dt = dtypes[int(msg.dtype)]
    raw = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), np.uint8)
    shape = (int(msg.height), int(msg.width), int(msg.dimension))
    if raw.size != int(np.prod(shape)) * dt.itemsize:
        raise ValueError(f"DescriptorMap data has {raw.size} bytes, expected {int(np.prod(shape)) * dt.itemsize} "
                         f"for {shape} {dt}")
    return raw.view(dt).reshape(shape)


__all__ = ["MessageTypes", "OutputSpec", "OUTPUT_SPECS", "OUTPUTS_BY_KEY", "OUTPUTS", "OUTPUT_TYPES",
           "OUTPUT_QOS_DEPTH", "DTYPE_CODES", "output_topics", "output_messages", "time_fields", "descriptor_map_msg",
           "pca_image_msg", "keypoint_array_msg", "correspondences_msg", "labels_msg", "descriptor_map_from_msg"]
