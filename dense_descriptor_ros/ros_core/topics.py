"""The descriptor node's name, input topics and diagnostics topic (no rclpy). Its outputs are one table next to the
pipeline's result type: `pipeline.outputs.OUTPUT_SPECS`."""

from __future__ import annotations

NODE_NAME = "dense_descriptor"
# Input topics (relative, remappable); the defaults are the RealSense driver's (ros2 launch
# realsense2_camera rs_launch.py align_depth.enable:=true) under the camera's namespace.
COLOR_TOPIC = "color/image_raw"
DEPTH_TOPIC = "aligned_depth_to_color/image_raw"
INFO_TOPIC = "color/camera_info"
DIAGNOSTICS_TOPIC = "/diagnostics"

