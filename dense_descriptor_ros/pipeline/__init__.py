"""The per-frame RGB-D pipeline shared by the ROS node and the rosbag tools (no rclpy here)."""

from .config import PipelineConfig
from .frame import Frame, FrameError, make_frame
from .inputs import DECODE_ERRORS, bad_input_reason, decode_frame, load_reference_keypoints
from .processor import CorrespondenceResult, FrameProcessor, FrameResult, KeypointResult, Wanted, resample_map

__all__ = ["PipelineConfig", "Frame", "FrameError", "make_frame", "DECODE_ERRORS", "bad_input_reason", "decode_frame",
           "load_reference_keypoints", "CorrespondenceResult", "FrameProcessor",
           "FrameResult", "KeypointResult", "Wanted", "resample_map"]
