"""The `dense-descriptor` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import sys

# Modules that each add one subcommand (or group) through `register(subparsers)`.
COMMAND_MODULES = (
    "dense_descriptor_ros.train.cli",
    "dense_descriptor_ros.pretrain.cli",
    "dense_descriptor_ros.sim.cli",
    "dense_descriptor_ros.eval.cli",
    "dense_descriptor_ros.probe.cli",
    "dense_descriptor_ros.train.matcher_cli",
    "dense_descriptor_ros.eval.rotation_cli",
    "dense_descriptor_ros.runtime.cli",
    "dense_descriptor_ros.sim.reference_cli",  # the keypoints group (matching/cli.py) with from-sim
    "dense_descriptor_ros.node.cli",
    "dense_descriptor_ros.acf.cli",
    "dense_descriptor_ros.acf.pipeline",
    "dense_descriptor_ros.bag.cli",
    "dense_descriptor_ros.demo",
)


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dense-descriptor",
        description="Self-supervised dense visual descriptors for robot manipulation: train, evaluate, "
                    "export, simulate, and run them on ROS 2.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split off ROS arguments (`--ros-args ...` to the end, as `ros2 run` and launch pass them): they go
    to rclpy.init untouched, the rest to argparse."""
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []


def main(argv: list[str] | None = None, modules: tuple[str, ...] = COMMAND_MODULES) -> int:
    """Run a command line. `modules`: the command modules to build the parser from; a module run on its own
    (`python -m dense_descriptor_ros.bag.cli`) passes only itself, so start-up imports nothing else (the
    training commands import torch)."""
    # NumPy's BLAS only sees small products here (matching, lifting): one thread. Two OpenBLAS threads
    # on a 2-core machine that also runs inference made them 2x slower (1.2 vs 2.0 ms for a 300 x 4800
    # distance matrix). Must be set before NumPy loads; an explicit setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # A crash in native code (rclpy, ONNX Runtime, pybullet teardown) then leaves every thread's Python stack on
    # stderr instead of a bare "exited with status -11" (seen twice at shutdown under the full test suite's load).
    if not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)
    argv, ros_args = split_ros_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser(modules).parse_args(argv)
    args.ros_args = ros_args  # ROS commands pass these to rclpy.init; the others ignore them
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
