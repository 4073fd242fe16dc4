"""A downstream consumer of the descriptor node: the mug handle's affordance coordinate frame (ACF).

`handle_frame` (pure NumPy) builds the frame from named 3D keypoints and scores it; `evaluation` (pure
NumPy) reads the simulator's ground truth and keeps the error log; `consumer_node` is the rclpy node
(`dense-descriptor acf`); `pipeline` starts camera, descriptor node and consumer together
(`dense-descriptor pipeline`). Importing this package does not import rclpy.
"""

from .evaluation import ErrorLog, ErrorSummary, FrameRecord, SequenceGroundTruth, format_summary
from .handle_frame import (
    FILTER_METHODS,
    FrameFilterConfig,
    HandleFrame,
    HandleFrameFilter,
    estimate_handle_frame,
    frame_errors,
    truth_handle_frame,
)

__all__ = ["HandleFrame", "estimate_handle_frame", "truth_handle_frame", "frame_errors", "FrameFilterConfig",
           "HandleFrameFilter", "FILTER_METHODS", "SequenceGroundTruth", "ErrorLog", "ErrorSummary", "FrameRecord",
           "format_summary"]
