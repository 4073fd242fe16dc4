"""The descriptor node's name, inputs and outputs (no rclpy): one table for the node, `bag process` (which writes
what the node would publish), the demo and the benchmarks."""

from __future__ import annotations

NODE_NAME = "dense_descriptor"
# Input topics (relative, remappable); the defaults are the RealSense driver's (ros2 launch
# realsense2_camera rs_launch.py align_depth.enable:=true) under the camera's namespace.
COLOR_TOPIC = "color/image_raw"
DEPTH_TOPIC = "aligned_depth_to_color/image_raw"
INFO_TOPIC = "color/camera_info"
# Outputs, in the node's private namespace (`~/` + name).
OUTPUTS = {"descriptors": "descriptors", "pca": "descriptors/pca", "keypoints": "keypoints",
           "correspondences": "correspondences"}
OUTPUT_TYPES = {"descriptors": "dense_descriptor_ros/msg/DescriptorMap", "pca": "sensor_msgs/msg/Image",
                "keypoints": "dense_descriptor_ros/msg/KeypointArray",
                "correspondences": "dense_descriptor_ros/msg/Correspondences"}
# History depth of the (reliable) output publishers.
OUTPUT_QOS_DEPTH = {"descriptors": 2, "pca": 2, "keypoints": 10, "correspondences": 5}
DIAGNOSTICS_TOPIC = "/diagnostics"


def output_topics(node: str = f"/{NODE_NAME}") -> dict[str, str]:
    """Absolute output topic names of the node with fully qualified name `node` (default: root namespace)."""
    return {k: f"{node.rstrip('/')}/{v}" for k, v in OUTPUTS.items()}
