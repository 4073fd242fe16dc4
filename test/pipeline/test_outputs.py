"""Pipeline results -> our messages, for rclpy (array.array fields) and rosbags (numpy fields):
every field filled, stamps and frames copied, bytes decodable, and rosbags' CDR readable by rclpy."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.pipeline.outputs import (
    MessageTypes,
    correspondences_msg,
    descriptor_map_from_msg,
    descriptor_map_msg,
    keypoint_array_msg,
    labels_msg,
    time_fields,
)
from dense_descriptor_ros.pipeline.processor import CorrespondenceResult, FrameResult, KeypointResult

STAMP = 1_700_000_123_456_789_012
# rosidl_parser's lark imports the deprecated sre_parse/sre_constants; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_.*' is deprecated:DeprecationWarning")


def result(dtype="float16") -> FrameResult:
    rng = np.random.default_rng(0)
    r = FrameResult(STAMP, "camera_color_optical_frame", (64, 48), "0123456789abcdef", True)
    r.descriptors = rng.standard_normal((6, 8, 16)).astype(dtype)
    r.map_stride = 8
    r.keypoints = KeypointResult(["handle", "rim"], np.array([[10.25, 20.5], [np.nan, np.nan]]),
                                 np.array([True, False]), np.array([0.7, 0.05], np.float32),
                                 np.array([[0.1, 0.2, 0.9], [np.nan] * 3]), np.array([True, False]))
    r.correspondences = CorrespondenceResult(STAMP - 33_000_000, np.array([[1.0, 2.0], [3.0, 4.0]]),
                                             np.array([[1.5, 2.5], [3.5, 4.5]]), np.array([0.9, 0.2], np.float32),
                                             np.array([[0, 0, 1.0], [np.nan] * 3]),
                                             np.array([[0, 0, 1.1], [np.nan] * 3]), np.array([True, False]))
    r.labels = (np.arange(48 * 64) % 7).astype(np.uint8).reshape(48, 64)
    return r


def rclpy_types() -> MessageTypes:
    pytest.importorskip("rclpy")
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Point
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from dense_descriptor_ros import msg as m

    return MessageTypes(Header, Time, Point, m.DescriptorMap, m.Keypoint, m.KeypointArray, m.Correspondences, Image,
                        "array")


def rosbags_types():
    from rosbags.typesys import Stores, get_typestore

    from dense_descriptor_ros.ros_core.msg_types import register_messages

    store = get_typestore(Stores.ROS2_KILTED)
    register_messages(store)
    t = store.types
    return store, MessageTypes(t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"],
                               t["geometry_msgs/msg/Point"], t["dense_descriptor_ros/msg/DescriptorMap"],
                               t["dense_descriptor_ros/msg/Keypoint"], t["dense_descriptor_ros/msg/KeypointArray"],
                               t["dense_descriptor_ros/msg/Correspondences"], t["sensor_msgs/msg/Image"], "numpy")


def test_time_fields():
    assert time_fields(STAMP) == {"sec": 1_700_000_123, "nanosec": 456_789_012}


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_descriptor_map_rclpy(dtype):
    t = rclpy_types()
    r = result(dtype)
    m = descriptor_map_msg(t, r)
    assert (m.header.stamp.sec, m.header.stamp.nanosec) == (1_700_000_123, 456_789_012)
    assert m.header.frame_id == "camera_color_optical_frame" and m.model_id == "0123456789abcdef"
    assert (m.height, m.width, m.dimension, m.stride) == (6, 8, 16, 8)
    assert m.dtype == (m.DTYPE_FLOAT16 if dtype == "float16" else m.DTYPE_FLOAT32) and m.normalized
    np.testing.assert_array_equal(descriptor_map_from_msg(m), r.descriptors)


def test_keypoints_and_correspondences_rclpy():
    t = rclpy_types()
    k = keypoint_array_msg(t, result())
    assert [p.name for p in k.keypoints] == ["handle", "rim"]
    h, rim = k.keypoints
    assert h.pixel_valid and h.position_valid and abs(h.pixel_x - 10.25) < 1e-6 and abs(h.position.z - 0.9) < 1e-9
    assert not rim.pixel_valid and not rim.position_valid and np.isnan(rim.pixel_x) and np.isnan(rim.position.x)
    c = correspondences_msg(t, result())
    assert (c.stamp_a.sec, c.stamp_a.nanosec) == (1_700_000_123, 423_789_012)
    assert list(c.pixels_a) == [1, 2, 3, 4] and list(c.pixels_b) == [1.5, 2.5, 3.5, 4.5]
    assert list(c.points_valid) == [True, False] and np.isnan(c.points_b[3]) and abs(c.points_b[2] - 1.1) < 1e-6


def test_labels_rclpy_and_rosbags():
    """mono8 at the input size, pixel = class id, with the input's stamp and frame."""
    r = result()
    for t in (rclpy_types(), rosbags_types()[1]):
        m = labels_msg(t, r)
        assert (m.height, m.width, m.encoding, m.step) == (48, 64, "mono8", 64)
        assert m.header.frame_id == r.frame_id and m.header.stamp.nanosec == STAMP % 10**9
        np.testing.assert_array_equal(np.frombuffer(bytes(m.data), np.uint8).reshape(48, 64), r.labels)


def test_rosbags_messages_deserialise_in_rclpy():
    """rosbags builds and serialises the same messages; rclpy reads its CDR bytes back."""
    rclpy_types()
    from rclpy.serialization import deserialize_message

    from dense_descriptor_ros import msg as m

    store, t = rosbags_types()
    r = result()
    for build, cls, name in ((descriptor_map_msg, m.DescriptorMap, "DescriptorMap"),
                             (keypoint_array_msg, m.KeypointArray, "KeypointArray"),
                             (correspondences_msg, m.Correspondences, "Correspondences")):
        raw = store.serialize_cdr(build(t, r), f"dense_descriptor_ros/msg/{name}")
        back = deserialize_message(bytes(raw), cls)
        assert back.header.frame_id == r.frame_id
    back = deserialize_message(bytes(store.serialize_cdr(descriptor_map_msg(t, r), "dense_descriptor_ros/msg/"
                                                                                     "DescriptorMap")), m.DescriptorMap)
    np.testing.assert_array_equal(descriptor_map_from_msg(back), r.descriptors)


def test_missing_outputs_and_bad_maps():
    t = rclpy_types()
    r = FrameResult(0, "f", (4, 4), "id", False)
    for build in (descriptor_map_msg, keypoint_array_msg, correspondences_msg, labels_msg):
        with pytest.raises(ValueError, match="no"):
            build(t, r)
    m = descriptor_map_msg(t, result())
    m.data = m.data[:-2]
    with pytest.raises(ValueError, match="bytes"):
        descriptor_map_from_msg(m)
    m.dtype = 7
    with pytest.raises(ValueError, match="dtype"):
        descriptor_map_from_msg(m)
