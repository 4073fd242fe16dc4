"""CameraInfo -> intrinsics: values, calibration and sanity checks, binning/ROI, real message types."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dense_descriptor_ros.ros_core.camera_info import CameraInfoError, intrinsics_from_camera_info

K = [615.0, 0.0, 320.5, 0.0, 616.0, 240.25, 0.0, 0.0, 1.0]
P = [600.0, 0.0, 321.0, 0.0, 0.0, 601.0, 241.0, 0.0, 0.0, 0.0, 1.0, 0.0]
D = [0.1, -0.2, 0.0, 0.0, 0.05]


def info(**overrides):
    fields = dict(height=480, width=640, k=list(K), p=list(P), d=list(D), distortion_model="plumb_bob",
                  binning_x=0, binning_y=0,
                  roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0, do_rectify=False))
    fields.update(overrides)
    return SimpleNamespace(**fields)


class TestValues:
    def test_k(self):
        intr = intrinsics_from_camera_info(info())
        assert (intr.fx, intr.fy, intr.cx, intr.cy) == (615.0, 616.0, 320.5, 240.25)
        assert (intr.height, intr.width) == (480, 640) and intr.K.shape == (3, 3) and intr.K.dtype == np.float64
        assert intr.distortion_model == "plumb_bob" and intr.is_distorted
        np.testing.assert_array_equal(intr.D, D)

    def test_p_for_rectified_images(self):
        intr = intrinsics_from_camera_info(info(), matrix="p")
        assert (intr.fx, intr.fy, intr.cx, intr.cy) == (600.0, 601.0, 321.0, 241.0)
        assert not intr.is_distorted

    def test_ros1_upper_case_fields(self):
        msg = SimpleNamespace(height=480, width=640, K=K, P=P, D=[], distortion_model="")
        intr = intrinsics_from_camera_info(msg)
        assert intr.fx == 615.0 and not intr.is_distorted

    def test_binning_keeps_pixel_centres(self):
        intr = intrinsics_from_camera_info(info(binning_x=2, binning_y=4))
        # fx / 2; cx' = (cx - (2 - 1) / 2) / 2 = (320.5 - 0.5) / 2; cy' = (240.25 - 1.5) / 4
        np.testing.assert_allclose(intr.K, [[307.5, 0, 160.0], [0, 154.0, 59.6875], [0, 0, 1]])
        assert (intr.height, intr.width) == (120, 320)
        # A point projecting to full-resolution pixel u lands on binned pixel (u - (b - 1) / 2) / b.
        X = np.array([0.3, -0.2, 1.5])
        u_full = np.array(K).reshape(3, 3) @ X
        u_bin = intr.K @ X
        np.testing.assert_allclose(u_bin[:2] / u_bin[2], [(u_full[0] / u_full[2] - 0.5) / 2,
                                                          (u_full[1] / u_full[2] - 1.5) / 4])

    def test_roi_shifts_principal_point(self):
        roi = SimpleNamespace(x_offset=100, y_offset=40, width=200, height=120, do_rectify=False)
        intr = intrinsics_from_camera_info(info(roi=roi))
        assert (intr.cx, intr.cy, intr.width, intr.height) == (220.5, 200.25, 200, 120)

    def test_check_image_size(self):
        intr = intrinsics_from_camera_info(info())
        intr.check_image_size(480, 640)
        with pytest.raises(CameraInfoError, match="image is 320x240 but the camera info describes 640x480"):
            intr.check_image_size(240, 320)


class TestErrors:
    def test_all_zero_k_means_uncalibrated(self):
        with pytest.raises(CameraInfoError, match="no intrinsics \\(k is all zero\\): the camera is not calibrated"):
            intrinsics_from_camera_info(info(k=[0.0] * 9))

    @pytest.mark.parametrize("k, message", [
        ([615.0, 0, 320, 0, 616, 240, 0, 0], "k has 8 values, expected 9"),
        ([-615.0, 0, 320, 0, 616, 240, 0, 0, 1], "non-positive focal lengths"),
        ([615.0, 0, 320, 0, 0, 240, 0, 0, 1], "non-positive focal lengths"),
        ([615.0, 0, np.nan, 0, 616, 240, 0, 0, 1], "non-finite"),
        ([615.0, 0, 320, 0, 616, 240, 0, 0, 0], "last row"),
    ])
    def test_malformed_k(self, k, message):
        with pytest.raises(CameraInfoError, match=message):
            intrinsics_from_camera_info(info(k=k))

    def test_empty_size_and_bad_choice(self):
        with pytest.raises(CameraInfoError, match="image size is 0x480"):
            intrinsics_from_camera_info(info(width=0))
        with pytest.raises(CameraInfoError, match="p has 9 values"):
            intrinsics_from_camera_info(info(p=K), matrix="p")
        with pytest.raises(ValueError, match="'k' or 'p'"):
            intrinsics_from_camera_info(info(), matrix="q")
        with pytest.raises(CameraInfoError, match="no field 'k'"):
            intrinsics_from_camera_info(SimpleNamespace(height=1, width=1))


class TestRealMessages:
    def test_rosbags_camera_info(self):
        typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed (a robot without pip extras)")
        ts = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
        T = ts.types
        msg = T["sensor_msgs/msg/CameraInfo"](
            header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="c"),
            height=480, width=640, distortion_model="plumb_bob", d=np.array(D), k=np.array(K), r=np.eye(3).ravel(),
            p=np.array(P), binning_x=0, binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
        back = ts.deserialize_cdr(ts.serialize_cdr(msg, "sensor_msgs/msg/CameraInfo"), "sensor_msgs/msg/CameraInfo")
        assert intrinsics_from_camera_info(back).cx == 320.5

    def test_rclpy_camera_info(self):
        pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")
        from sensor_msgs.msg import CameraInfo

        with pytest.raises(CameraInfoError, match="not calibrated"):  # a default message is uncalibrated
            intrinsics_from_camera_info(CameraInfo(height=480, width=640))
        intr = intrinsics_from_camera_info(CameraInfo(height=480, width=640, k=K, d=D))
        assert intr.fy == 616.0
