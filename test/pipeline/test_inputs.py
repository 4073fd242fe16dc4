"""ROS input messages -> Frame (decode_frame): what makes a frame 2D-only, and the reason each dropped frame is
counted under in /diagnostics. Messages are plain objects with the fields of sensor_msgs (decode_frame is
duck-typed; the node tests send the same cases over DDS)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dense_descriptor_ros.pipeline import DECODE_ERRORS, PipelineConfig, bad_input_reason, decode_frame
from dense_descriptor_ros.pipeline.inputs import REASONS
from dense_descriptor_ros.ros_core import depth_to_image, rgb_to_image

H, W = 12, 16
K = [20.0, 0.0, 7.5, 0.0, 20.0, 5.5, 0.0, 0.0, 1.0]
SETTINGS = PipelineConfig()


def header(stamp_ns: int = 5):
    return SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=stamp_ns), frame_id="cam")


def color(**fields):
    img = rgb_to_image(np.zeros((H, W, 3), np.uint8), "rgb8").to_kwargs("bytes")
    return SimpleNamespace(header=header(), **{**img, **fields})


def depth(**fields):
    img = depth_to_image(np.full((H, W), 0.5, np.float32), "16UC1").to_kwargs("bytes")
    return SimpleNamespace(header=header(), **{**img, **fields})


def info(k=K, height=H, width=W):
    return SimpleNamespace(header=header(), height=height, width=width, k=k, d=[0.0] * 5, distortion_model="plumb_bob")


def test_a_good_frame_has_no_notes():
    f = decode_frame(color(), depth(), info(), SETTINGS)
    assert f.K is not None and f.depth is not None and f.notes == []


def test_uncalibrated_camera_info_gives_a_2d_frame_with_a_note():
    """All-zero K is what uncalibrated drivers publish: like no camera info, not a dropped frame."""
    f = decode_frame(color(), depth(), info(k=[0.0] * 9), SETTINGS)
    assert f.K is None and f.depth is not None
    assert len(f.notes) == 1 and "uncalibrated" in f.notes[0] and "2D outputs only" in f.notes[0]


def test_empty_depth_gives_a_2d_frame_with_a_note():
    f = decode_frame(color(), depth(height=0, width=0, step=0, data=b""), info(), SETTINGS)
    assert f.depth is None and f.K is not None and f.notes == ["the depth image is empty (0x0): 2D outputs only"]


@pytest.mark.parametrize("msgs, reason", [
    ((color(encoding="yuv422"), depth(), info()), "color_encoding"),
    ((color(height=0, width=0, step=0, data=b""), depth(), info()), "color_malformed"),  # not camera_info_size
    ((color(height=100000, width=100000, step=300000), depth(), info()), "color_malformed"),
    ((color(data=b"\0" * 10), depth(), info()), "color_malformed"),
    ((color(), depth(encoding="8UC1"), info()), "depth_encoding"),
    ((color(), depth(data=b"\0" * 10), info()), "depth_malformed"),
    ((color(), depth(height=H, width=H, step=2 * H, data=b"\0" * (2 * H * H)), info()), "depth_size"),
    ((color(), depth(), info(k=[1.0] * 9)), "camera_info"),
    ((color(), depth(), info(height=2 * H, width=2 * W)), "camera_info_size"),
])
def test_dropped_frames_name_what_is_wrong(msgs, reason):
    with pytest.raises(DECODE_ERRORS) as e:
        decode_frame(*msgs, SETTINGS)
    assert bad_input_reason(e.value) == reason and reason in REASONS
