"""The ROS 2 shell: the descriptor node (rclpy) and its ROS-free parameter table and statistics.

Import `dense_descriptor_ros.node.descriptor_node` for the node itself (it imports rclpy); `params` and
`stats` are pure Python.
"""

from .params import NodeSettings, parameter_table
from .stats import STAGES, NodeStats, WindowStats

__all__ = ["NodeSettings", "parameter_table", "NodeStats", "STAGES", "WindowStats"]
