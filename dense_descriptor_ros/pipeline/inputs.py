"""ROS input messages -> a checked Frame, and the reference keypoints a model goes with.

Shared by the node (rclpy messages) and the rosbag tools (rosbags messages): the messages are duck-typed
(ros_core decodes both), so the same bytes give the same Frame whichever side read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..ros_core.camera_info import CameraInfoError, intrinsics_from_camera_info
from ..ros_core.image_codec import ImageCodecError, image_to_depth_raw, image_to_rgb
from ..ros_core.sync import stamp_to_ns
from .frame import Frame, FrameError, make_frame

__all__ = ["DECODE_ERRORS", "decode_frame", "load_reference_keypoints"]

#: What decode_frame raises for a frame the pipeline cannot use (the caller drops and counts the frame).
DECODE_ERRORS = (ImageCodecError, FrameError, CameraInfoError)


class _InputSettings(Protocol):
    """The fields decode_frame reads: NodeSettings and PipelineConfig both have them."""

    size_mismatch: str
    depth_min: float
    depth_max: float


def decode_frame(color_msg: Any, depth_msg: Any | None, info_msg: Any | None, settings: _InputSettings) -> Frame:
    """Decode one synchronised set of sensor_msgs (rclpy or rosbags) into a Frame.

    Args:
        color_msg: sensor_msgs/Image in a colour encoding (ros_core.COLOR_ENCODINGS); its header stamps
            and names the frame.
        depth_msg: sensor_msgs/Image 16UC1 / 32FC1 registered to the colour image, or None (2D only).
        info_msg: the colour camera's CameraInfo, or None (no intrinsics: 2D outputs only).
        settings: size_mismatch, depth_min, depth_max (NodeSettings or PipelineConfig).

    Raises:
        ImageCodecError: unsupported encoding or malformed image fields.
        CameraInfoError: uncalibrated / malformed camera info, or one of another image size.
        FrameError: depth that cannot be registered to the colour image.
    """
    K = None
    if info_msg is not None:
        intr = intrinsics_from_camera_info(info_msg)
        intr.check_image_size(int(color_msg.height), int(color_msg.width))
        K = intr.K
    depth, encoding = image_to_depth_raw(depth_msg) if depth_msg is not None else (None, None)
    # make_frame converts the raw depth to metres and checks its range in one pass
    return make_frame(image_to_rgb(color_msg), depth, K, stamp_to_ns(color_msg.header.stamp),
                      str(color_msg.header.frame_id), depth_encoding=encoding, size_mismatch=settings.size_mismatch,
                      depth_min=settings.depth_min, depth_max=settings.depth_max)


def load_reference_keypoints(keypoints_file: str, model_path: str | Path, model_id: str, backend: str):
    """The reference keypoints to locate with the model at `model_path`, or None (keypoint output off).

    `keypoints_file`: a path; "none" = no keypoints; "" = the shipped mug keypoints when the model is the
    shipped one (no keypoints otherwise). The file must come from the same model.

    Raises:
        ModelFileError: missing or unreadable keypoint file.
        ModelMismatchError (a ValueError): keypoints annotated with another model.
    """
    from ..matching.keypoints import ReferenceKeypoints
    from ..runtime.model_files import ModelFileError, default_keypoints_path, default_model_path

    if keypoints_file.lower() == "none":
        return None
    if not keypoints_file:
        default = default_keypoints_path()
        if not (Path(model_path).parent == default_model_path(backend).parent and default.is_file()):
            return None
        path: str | Path = default
    else:
        path = keypoints_file
    try:
        ref = ReferenceKeypoints.load(path)
    except FileNotFoundError as e:
        raise ModelFileError(f"keypoints_file {path} does not exist") from e
    except (ValueError, KeyError) as e:
        raise ModelFileError(f"keypoints_file {path} is not a keypoint file: {e}") from e
    ref.check_model(model_id)
    return ref
