"""Image fields <-> numpy: every encoding against hand-built bytes, padding, errors, real message types."""

from __future__ import annotations

import array
from types import SimpleNamespace

import numpy as np
import pytest

from dense_descriptor_ros.ros_core.image_codec import (
    ImageCodecError,
    MalformedImageError,
    UnsupportedEncodingError,
    depth_to_image,
    image_to_depth,
    image_to_depth_raw,
    image_to_rgb,
    rgb_to_image,
)

# A 2x3 RGB image with distinct channel values: R = 10*row + col, G = R + 100, B = R + 200.
R = np.array([[0, 1, 2], [10, 11, 12]], np.uint8)
RGB = np.stack([R, R + 100, R + 200], axis=-1)


def image(encoding: str, pixels: np.ndarray, pad: int = 0, is_bigendian: int = 0, data_type=bytes):
    """An Image-like object whose rows are `pixels` rows followed by `pad` bytes of 0xAB."""
    h = pixels.shape[0]
    rows = pixels.reshape(h, -1).view(np.uint8)
    rows = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    raw = rows.tobytes()
    data = {bytes: raw, array.array: array.array("B", raw), np.ndarray: np.frombuffer(raw, np.uint8),
            list: list(raw)}[data_type]
    return SimpleNamespace(height=h, width=pixels.shape[1], encoding=encoding, step=rows.shape[1],
                           is_bigendian=is_bigendian, data=data)


class TestColour:
    @pytest.mark.parametrize("encoding, channel_order", [("rgb8", [0, 1, 2]), ("bgr8", [2, 1, 0]),
                                                         ("rgba8", [0, 1, 2, None]), ("bgra8", [2, 1, 0, None])])
    @pytest.mark.parametrize("pad", [0, 5])
    def test_encodings_to_rgb(self, encoding, channel_order, pad):
        alpha = np.full(R.shape, 77, np.uint8)
        pixels = np.stack([RGB[..., c] if c is not None else alpha for c in channel_order], axis=-1)
        out = image_to_rgb(image(encoding, pixels, pad=pad))
        assert out.shape == (2, 3, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, RGB)

    def test_mono8_repeats_the_channel(self):
        out = image_to_rgb(image("mono8", R[..., None], pad=1))
        np.testing.assert_array_equal(out, np.stack([R, R, R], axis=-1))

    @pytest.mark.parametrize("data_type", [bytes, array.array, np.ndarray, list])
    def test_any_data_container(self, data_type):
        np.testing.assert_array_equal(image_to_rgb(image("rgb8", RGB, data_type=data_type)), RGB)

    def test_result_is_a_writable_copy(self):
        msg = image("rgb8", RGB, data_type=np.ndarray)
        out = image_to_rgb(msg)
        out[0, 0] = 99
        assert msg.data[0] == 0 and out.flags.writeable

    def test_longer_data_is_ignored(self):
        msg = image("rgb8", RGB)
        msg.data += b"\x00" * 7
        np.testing.assert_array_equal(image_to_rgb(msg), RGB)

    @pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
    def test_round_trip(self, encoding):
        fields = rgb_to_image(RGB, encoding)
        assert fields.step == 3 * (4 if "a" in encoding else 3) and fields.data.size == fields.step * 2
        np.testing.assert_array_equal(image_to_rgb(SimpleNamespace(**fields.to_kwargs("bytes"))), RGB)

    def test_mono8_encodes_luma(self):
        rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
        fields = rgb_to_image(rgb, "mono8")
        # BT.601: 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1
        np.testing.assert_array_equal(fields.data, [76, 150, 29, 255])


class TestDepth:
    def test_16uc1_millimetres_to_metres(self):
        mm = np.array([[0, 1000, 1500], [1, 65535, 250]], np.uint16)
        out = image_to_depth(image("16UC1", mm.astype("<u2")))
        assert out.dtype == np.float32 and out.shape == (2, 3)
        expected = np.array([[np.nan, 1.0, 1.5], [0.001, 65.535, 0.25]], np.float32)
        np.testing.assert_allclose(out, expected, rtol=1e-7)

    @pytest.mark.parametrize("pad", [0, 1, 3])  # odd padding: rows not aligned to 2 bytes
    def test_16uc1_big_endian_and_padding(self, pad):
        mm = np.array([[258, 513]], np.uint16)
        out = image_to_depth(image("16UC1", mm.astype(">u2"), pad=pad, is_bigendian=1))
        np.testing.assert_allclose(out, [[0.258, 0.513]], rtol=1e-7)

    def test_32fc1_invalid_readings_become_nan(self):
        m = np.array([[2.5, 0.0, -1.0, np.nan, np.inf, 0.75]], np.float32)
        out = image_to_depth(image("32FC1", m, pad=2))
        np.testing.assert_array_equal(np.isnan(out), [[False, True, True, True, True, False]])
        np.testing.assert_array_equal(out[0, [0, 5]], [2.5, 0.75])

    def test_raw_is_a_view_in_sent_units(self):
        mm = np.array([[0, 1000], [1500, 7]], np.uint16)
        msg = image("16UC1", mm.astype("<u2"))
        raw, enc = image_to_depth_raw(msg)
        assert enc == "16UC1" and raw.dtype == np.uint16
        np.testing.assert_array_equal(raw, mm)
        assert np.shares_memory(raw, np.frombuffer(msg.data, np.uint8))  # no copy when nothing to convert
        raw, _ = image_to_depth_raw(image("16UC1", mm.astype(">u2"), is_bigendian=1))
        assert raw.dtype == np.dtype(np.uint16)  # converted to this machine's byte order
        np.testing.assert_array_equal(raw, mm)
        with pytest.raises(UnsupportedEncodingError, match="use image_to_rgb"):
            image_to_depth_raw(image("rgb8", RGB))

    @pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
    def test_round_trip(self, encoding):
        m = np.array([[0.5, np.nan, 1.2344], [0.0, 3.0, 70.0]], np.float32)
        back = image_to_depth(SimpleNamespace(**depth_to_image(m, encoding).to_kwargs("numpy")))
        if encoding == "16UC1":  # millimetres, and 70 m does not fit in 16 bits: no reading
            expected = np.array([[0.5, np.nan, 1.234], [np.nan, 3.0, np.nan]], np.float32)
        else:
            expected = np.array([[0.5, np.nan, 1.2344], [np.nan, 3.0, 70.0]], np.float32)
        np.testing.assert_allclose(back, expected, rtol=1e-6)


class TestErrors:
    @pytest.mark.parametrize("encoding", ["yuv422", "8UC3", "bayer_rggb8", ""])
    def test_unsupported_colour(self, encoding):
        with pytest.raises(UnsupportedEncodingError, match="rgb8, bgr8, rgba8, bgra8, mono8"):
            image_to_rgb(image(encoding, RGB))

    def test_depth_encoding_to_rgb_hints(self):
        with pytest.raises(UnsupportedEncodingError, match="use image_to_depth"):
            image_to_rgb(image("16UC1", R.astype("<u2")))
        with pytest.raises(UnsupportedEncodingError, match="use image_to_rgb"):
            image_to_depth(image("rgb8", RGB))

    def test_step_smaller_than_row(self):
        msg = image("rgb8", RGB)
        msg.step = 8  # 3 px * 3 channels = 9
        with pytest.raises(MalformedImageError, match="step 8 is smaller than width \\* bytes per pixel = 3 \\* 3"):
            image_to_rgb(msg)

    def test_data_shorter_than_step_times_height(self):
        msg = image("bgra8", np.zeros((2, 3, 4), np.uint8), pad=4)
        msg.data = msg.data[:-1]
        with pytest.raises(MalformedImageError, match="data has 31 bytes, fewer than step \\* height = 16 \\* 2"):
            image_to_rgb(msg)

    def test_empty_image(self):
        with pytest.raises(MalformedImageError, match="empty"):
            image_to_depth(SimpleNamespace(height=0, width=3, encoding="32FC1", step=12, is_bigendian=0, data=b""))

    def test_errors_are_value_errors(self):
        assert issubclass(UnsupportedEncodingError, ImageCodecError)
        assert issubclass(MalformedImageError, ImageCodecError) and issubclass(ImageCodecError, ValueError)

    def test_bad_encode_inputs(self):
        with pytest.raises(ValueError, match="expected \\(H, W, 3\\) uint8"):
            rgb_to_image(RGB.astype(np.float32))
        with pytest.raises(UnsupportedEncodingError):
            depth_to_image(np.zeros((2, 2), np.float32), "mono16")
        with pytest.raises(ValueError, match="data_as"):
            rgb_to_image(RGB).to_kwargs("list")


class TestRealMessages:
    def test_rosbags_image(self):
        typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed (a robot without pip extras)")
        ts = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
        Image, Header, Time = (ts.types[f"{p}/msg/{n}"] for p, n in
                               [("sensor_msgs", "Image"), ("std_msgs", "Header"), ("builtin_interfaces", "Time")])
        header = Header(stamp=Time(sec=1, nanosec=2), frame_id="camera_color_optical_frame")
        msg = Image(header=header, **rgb_to_image(RGB, "bgr8").to_kwargs("numpy"))
        raw = ts.serialize_cdr(msg, "sensor_msgs/msg/Image")
        np.testing.assert_array_equal(image_to_rgb(ts.deserialize_cdr(raw, "sensor_msgs/msg/Image")), RGB)

    def test_rclpy_image(self):
        pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
        from sensor_msgs.msg import Image

        m = np.array([[0.5, 1.0, np.nan]], np.float32)
        msg = Image(**depth_to_image(m, "16UC1").to_kwargs("array"))
        assert isinstance(msg.data, array.array)
        np.testing.assert_allclose(image_to_depth(msg), m)
