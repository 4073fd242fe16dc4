"""ROS input messages -> a checked Frame, and the reference keypoints a model goes with.

Shared by the node (rclpy messages) and the rosbag tools (rosbags messages): the messages are duck-typed
(ros_core decodes both), so the same bytes give the same Frame whichever side read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from ..ros_core.camera_info import CameraInfoError, UncalibratedCameraError, intrinsics_from_camera_info
from ..ros_core.image_codec import ImageCodecError, UnsupportedEncodingError, image_to_depth_raw, image_to_rgb
from ..ros_core.sync import stamp_to_ns
from .frame import Frame, FrameError, make_frame

__all__ = ["DECODE_ERRORS", "bad_input_reason", "decode_frame", "load_reference_keypoints"]

#: What decode_frame raises for a frame the pipeline cannot use (the caller drops and counts the frame).
DECODE_ERRORS = (ImageCodecError, FrameError, CameraInfoError)

#: The `reason` decode_frame gives its errors (diagnostics count dropped frames per reason).
REASONS = {
    "color_encoding": "colour image in an unsupported encoding",
    "color_malformed": "colour image whose fields contradict each other (empty, step, data length)",
    "depth_encoding": "depth image in an unsupported encoding",
    "depth_malformed": "depth image whose fields contradict each other (step, data length)",
    "depth_size": "depth image that cannot be registered to the colour image (size or aspect ratio)",
    "camera_info": "malformed camera info (sizes, non-finite or non-positive focal lengths)",
    "camera_info_size": "camera info of another image size than the colour image",
}


def bad_input_reason(error: Exception) -> str:
    """The REASONS key of an error from decode_frame (the class name for any other error)."""
    return getattr(error, "reason", type(error).__name__)


@contextmanager
def _reason(stream: str) -> Iterator[None]:
    """Tag a decode error with what failed: `<stream>_encoding` / `<stream>_malformed` for images, `stream`
    for the rest."""
    try:
        yield
    except DECODE_ERRORS as e:
        if not hasattr(e, "reason"):
            kind = "" if not isinstance(e, ImageCodecError) else (
                "_encoding" if isinstance(e, UnsupportedEncodingError) else "_malformed")
            e.reason = stream + kind
        raise


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

    An uncalibrated camera info (all-zero K, what such drivers publish) is treated as no camera info, and an
    empty (0x0) depth image as no depth: 2D outputs, with the reason in `Frame.notes`.

    Raises:
        ImageCodecError: unsupported encoding or malformed image fields.
        CameraInfoError: malformed camera info, or one of another image size.
        FrameError: depth that cannot be registered to the colour image.
        Each with a `reason` (a REASONS key, see bad_input_reason). The colour image is checked first: its
        own faults are not reported as a camera info of another size.
    """
    notes = []
    with _reason("color"):
        rgb = image_to_rgb(color_msg)
    K = None
    if info_msg is not None:
        try:
            with _reason("camera_info"):
                intr = intrinsics_from_camera_info(info_msg)
            with _reason("camera_info_size"):
                intr.check_image_size(rgb.shape[0], rgb.shape[1])
            K = intr.K
        except UncalibratedCameraError:
            notes.append("the camera info has an all-zero K (an uncalibrated camera): 2D outputs only")
    depth = encoding = None
    if depth_msg is not None:
        if int(depth_msg.height) == 0 or int(depth_msg.width) == 0:
            notes.append(f"the depth image is empty ({int(depth_msg.width)}x{int(depth_msg.height)}): "
                         "2D outputs only")
        else:
            with _reason("depth"):
                depth, encoding = image_to_depth_raw(depth_msg)
    # make_frame converts the raw depth to metres and checks its range in one pass
    with _reason("depth_size"):
        frame = make_frame(rgb, depth, K, stamp_to_ns(color_msg.header.stamp), str(color_msg.header.frame_id),
                           depth_encoding=encoding, size_mismatch=settings.size_mismatch,
                           depth_min=settings.depth_min, depth_max=settings.depth_max)
    frame.notes = notes
    return frame


def _companion_file(setting: str, default: Path, model_path: str | Path, backend: str) -> Path | None:
    """The file a parameter names: "none" = None; "" = `default` when the model is the shipped one and the
    file is there (None otherwise); anything else = that path."""
    from ..runtime.model_files import default_model_path

    if setting.lower() == "none":
        return None
    if setting:
        return Path(setting)
    if Path(model_path).parent == default_model_path(backend).parent and default.is_file():
        return default
    return None


def load_reference_keypoints(keypoints_file: str, model_path: str | Path, model_id: str, backend: str):
    """The reference keypoints to locate with the model at `model_path`, or None (keypoint output off).

    `keypoints_file`: a path; "none" = no keypoints; "" = the shipped mug keypoints when the model is the
    shipped one (no keypoints otherwise). The file must come from the same model.

    Raises:
        ModelFileError: missing or unreadable keypoint file.
        ModelMismatchError (a ValueError): keypoints annotated with another model.
    """
    from ..matching.keypoints import ReferenceKeypoints
    from ..runtime.model_files import ModelFileError, default_keypoints_path

    path = _companion_file(keypoints_file, default_keypoints_path(), model_path, backend)
    if path is None:
        return None
    try:
        ref = ReferenceKeypoints.load(path)
    except FileNotFoundError as e:
        raise ModelFileError(f"keypoints_file {path} does not exist") from e
    except (ValueError, KeyError) as e:
        raise ModelFileError(f"keypoints_file {path} is not a keypoint file: {e}") from e
    ref.check_model(model_id)
    return ref


def load_part_probe(part_probe_file: str, model_path: str | Path, model_id: str, backend: str,
                    descriptor_dim: int):
    """The part probe of the labels output for the model at `model_path`, or None (labels off).

    `part_probe_file` as `keypoints_file` in `load_reference_keypoints` ("" = the shipped probe with the
    shipped model). The probe must have been fitted on the same model, at its descriptor dimension.

    Raises:
        ModelFileError: missing or unreadable file, or a probe of another model or dimension.
    """
    from ..runtime.model_files import ModelFileError, default_part_probe_path
    from ..runtime.part_probe import PartProbe, ProbeFileError

    path = _companion_file(part_probe_file, default_part_probe_path(), model_path, backend)
    if path is None:
        return None
    try:
        probe = PartProbe.load(path)
        probe.check_model(model_id)
    except ProbeFileError as e:
        raise ModelFileError(f"part_probe_file: {e}") from e
    if probe.descriptor_dim != descriptor_dim:
        raise ModelFileError(f"part_probe_file {path} has D={probe.descriptor_dim}, the model D={descriptor_dim}")
    return probe


def resolve_matcher_file(matcher_file: str, model_path: str | Path, model_id: str, backend: str,
                         method: str) -> Path | None:
    """The learned matcher's file for correspondence_method "matcher", checked (not loaded), or None.

    `matcher_file` as `keypoints_file` in `load_reference_keypoints` ("" = the shipped matcher with the shipped
    model, for the backend: matcher.onnx on ONNX Runtime, matcher.safetensors on PyTorch). It must have been trained
    on the same model. Resolved whenever there is one, so that the method can be switched at run time; load it with
    `matcher.runtime.LearnedMatcher`.

    Raises:
        ModelFileError: a missing or unreadable file, a matcher of another model, or method "matcher" without one.
    """
    from ..matcher.runtime import MatcherMismatchError, read_matcher_info
    from ..runtime.model_files import ModelFileError, default_matcher_path

    path = _companion_file(matcher_file, default_matcher_path(backend), model_path, backend)
    if path is None:
        if method == "matcher":
            raise ModelFileError("correspondence_method 'matcher' needs a matcher_file (none given and no shipped "
                                 "matcher for this model)")
        return None
    try:
        info = read_matcher_info(path)
    except FileNotFoundError as e:
        raise ModelFileError(f"matcher_file {path} does not exist") from e
    except ValueError as e:
        raise ModelFileError(f"matcher_file: {e}") from e
    if info.descriptor_model_id != model_id:
        raise ModelFileError(str(MatcherMismatchError(f"matcher_file {path} was trained on descriptor model "
                                                      f"{info.descriptor_model_id}, the model is {model_id}")))
    return path
