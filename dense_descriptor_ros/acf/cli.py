"""`dense-descriptor acf`: run the handle-frame consumer (also `ros2 run dense_descriptor_ros acf_consumer`).

Flags set the defaults of the node's ROS parameters; `--ros-args -p name:=value` overrides them (a launch
file's parameters arrive that way). `dense-descriptor pipeline` starts it together with the simulated
camera and the descriptor node.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from ..cli_args import int_at_least
from .consumer import RELIABILITIES, ConsumerOptions, HandleFrameConsumer
from .handle_frame import FILTER_METHODS

__all__ = ["register", "run", "PROG"]

PROG = "dense-descriptor acf"
_D = ConsumerOptions()


_non_negative_int = int_at_least(0)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "acf", help="mug handle frame from the node's keypoints, scored against simulator ground truth",
        description="An example downstream consumer: subscribes to the descriptor node's KeypointArray, "
                    "estimates the mug handle's affordance coordinate frame (origin, grasp axis, approach) from "
                    "the 3D keypoints and publishes it on ~/handle_pose. Given the ground truth of "
                    "`dense-descriptor sim camera --stamp-mode sequence --save-ground-truth PATH` it reports the "
                    "frame's error once per second and in a summary at the end (--count N, Ctrl-C or SIGTERM). "
                    "Flags set the defaults of the node's ROS parameters; ROS arguments go last, after --ros-args.")
    p.add_argument("--keypoints-topic", default=_D.keypoints_topic,
                   help=f"KeypointArray topic (default {_D.keypoints_topic})")
    p.add_argument("--ground-truth", type=Path, default=None, metavar="PATH",
                   help="ground-truth JSON of `sim camera --save-ground-truth` (may appear later); default: none, "
                        "frames are published but not scored")
    p.add_argument("--filter", choices=FILTER_METHODS, default=_D.filter,
                   help=f"temporal filter of the frames (default {_D.filter})")
    p.add_argument("--alpha", type=float, default=_D.filter_alpha,
                   help=f"ema filter: weight of the newest frame (default {_D.filter_alpha})")
    p.add_argument("--window", type=_non_negative_int, default=_D.filter_window,
                   help=f"median filter: frames (default {_D.filter_window})")
    p.add_argument("--max-gap", type=_non_negative_int, default=_D.filter_max_gap,
                   help=f"frames without an estimate that the filters bridge (default {_D.filter_max_gap})")
    p.add_argument("--min-score", type=float, default=_D.min_score,
                   help=f"keypoints scored below this count as missing (default {_D.min_score:g})")
    p.add_argument("--labels-topic", default=_D.labels_topic, metavar="TOPIC",
                   help="the descriptor node's label image (e.g. /dense_descriptor/labels): keypoints on background "
                        "pixels count as missing (default: no object mask)")
    p.add_argument("--reliability", choices=RELIABILITIES, default=_D.qos_reliability,
                   help=f"QoS reliability of the keypoints subscription (default {_D.qos_reliability})")
    p.add_argument("--log-period", type=float, default=_D.log_period,
                   help=f"seconds between progress lines, 0 = none (default {_D.log_period:g})")
    p.add_argument("--count", type=_non_negative_int, default=0, help="stop after N keypoint messages (0: never)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="write acf_errors.csv, acf_errors.png and acf_summary.json here at the end")
    p.set_defaults(func=run)
    return p


def _error(text: str) -> int:
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)
    return 2


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.exceptions import NameValidationException, ParameterException

    from ..node.spin import spin_until_done
    from .consumer_node import AcfConsumerNode

    opts = ConsumerOptions(keypoints_topic=args.keypoints_topic,
                           ground_truth_file=str(args.ground_truth) if args.ground_truth else "",
                           filter=args.filter, filter_alpha=args.alpha, filter_window=args.window,
                           filter_max_gap=args.max_gap, min_score=args.min_score, labels_topic=args.labels_topic,
                           qos_reliability=args.reliability,
                           log_period=args.log_period, count=args.count)
    try:
        opts.validate()
    except ValueError as e:
        return _error(str(e))
    ros_args = list(getattr(args, "ros_args", None) or [])
    try:
        rclpy.init(args=["dense-descriptor", *ros_args])
    except Exception as e:  # rcl rejects malformed ROS arguments with an RCLError
        return _error(f"cannot initialise ROS with {' '.join(ros_args) or 'no arguments'}: {e}")
    node = None
    finished = interrupted = False
    try:
        node = AcfConsumerNode(opts)
        finished = spin_until_done(node)
        if finished:
            node.flush()
    except (ValueError, ParameterException, NameValidationException) as e:  # bad values given with --ros-args -p
        return _error(str(e))
    except KeyboardInterrupt:  # rclpy chains SIGINT to Python's handler: it can land anywhere, even in __init__
        interrupted = True
    finally:
        # Stopping now: a second Ctrl-C or a supervisor's SIGTERM (`dense-descriptor pipeline` sends one after a
        # grace period) must not cut the summary short. Seen under load: an interrupt escaped this block and the
        # consumer printed no summary.
        held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        if node is not None or interrupted:
            # interrupted before the node existed: no message was processed; summarise that all the same
            lines = node.finish(args.out) if node is not None else HandleFrameConsumer(opts).finish(args.out)
            print(f"acf summary ({'done' if finished else 'stopped'}):", flush=True)
            for line in lines:
                print(f"  {line}", flush=True)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in held.items():
            if handler is not None:  # None: a handler not installed from Python (rclpy's), gone with shutdown
                signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `acf` on its own (`python -m dense_descriptor_ros.acf.cli ...`); ROS arguments after --ros-args."""
    from ..cli import main as cli_main

    return cli_main(["acf", *(sys.argv[1:] if argv is None else argv)], (__name__,))


if __name__ == "__main__":
    sys.exit(main())
