"""`dense-descriptor node`: run the descriptor node (also `ros2 run dense_descriptor_ros descriptor_node`)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "node", help="run the ROS 2 descriptor node",
        description="RGB-D in, descriptor maps / PCA image / named 3D keypoints / correspondences out "
                    "(docs/ros_node.md). ROS arguments follow --ros-args, e.g. "
                    "--ros-args --params-file config/descriptor_node.yaml -r __ns:=/camera "
                    "-p dense_descriptor:model_path:=models/default/model.onnx")
    p.add_argument("--no-autostart", action="store_true",
                   help="stay unconfigured and wait for lifecycle transitions (a lifecycle manager or "
                        "`ros2 lifecycle set`); default: configure and activate at start")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.lifecycle import TransitionCallbackReturn

    from .descriptor_node import DescriptorNode
    from .spin import spin_until_done

    rclpy.init(args=["dense-descriptor", *getattr(args, "ros_args", [])])
    node = None
    try:
        try:
            node = DescriptorNode()
        except ValueError as e:  # a bad parameter value from the command line or the params file
            print(f"dense-descriptor node: {e}", file=sys.stderr)
            return 2
        if not args.no_autostart:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error("not configured; fix the parameters and configure again "
                                        "(lifecycle service ~/change_state)")
        if spin_until_done(node):  # the lifecycle shutdown transition: the node is finalized, the process ends
            node.get_logger().info("finalized (shutdown transition): exiting")
            t_end = time.monotonic() + 0.5  # the change_state reply and the transition event still go out
            while time.monotonic() < t_end and rclpy.ok():
                rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node._release()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
