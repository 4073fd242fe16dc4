"""ROS-free cores of the node: frame synchronisation, Image <-> numpy, CameraInfo -> intrinsics.

Nothing here imports rclpy; messages are duck-typed, so rclpy and rosbags messages both work.
"""

from .camera_info import CameraInfoError, Intrinsics, UncalibratedCameraError, intrinsics_from_camera_info
from .image_codec import (
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    ImageCodecError,
    ImageFields,
    MalformedImageError,
    UnsupportedEncodingError,
    depth_to_image,
    image_to_depth,
    image_to_rgb,
    rgb_to_image,
)
from .sync import ApproximateTimeSync, SyncedFrame, SyncStats, stamp_to_ns

__all__ = ["CameraInfoError", "Intrinsics", "UncalibratedCameraError", "intrinsics_from_camera_info",
           "COLOR_ENCODINGS", "DEPTH_ENCODINGS", "ImageCodecError", "ImageFields", "MalformedImageError",
           "UnsupportedEncodingError", "depth_to_image", "image_to_depth", "image_to_rgb", "rgb_to_image",
           "ApproximateTimeSync", "SyncedFrame", "SyncStats", "stamp_to_ns"]
