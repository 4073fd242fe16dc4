"""`dense-descriptor sim camera`: a simulated RGB-D camera on ROS 2 topics (see sim/camera_node.py).

The sequence is rendered once per setting (cached under CACHE/sim_sequences) and then published at
the frame rate. ROS arguments go last, after --ros-args (`dense-descriptor` passes them to rclpy.init):
`dense-descriptor sim camera --rate 15 --ros-args -r __ns:=/cam -p stamp_mode:=sequence`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli_args import int_at_least, number_in, size_wh
from .categories import CATEGORIES

__all__ = ["register_camera", "run_camera", "default_cache_dir"]

PROG = "dense-descriptor sim camera"
#: image area above which the default Fast DDS transport (512 KB shared-memory segments) drops frames
LARGE_IMAGE_BYTES = 320 * 240 * 3


def default_cache_dir() -> Path:
    """$DENSE_DESCRIPTOR_CACHE, or ~/.cache/dense_descriptor_ros."""
    return Path(os.environ.get("DENSE_DESCRIPTOR_CACHE", Path.home() / ".cache" / "dense_descriptor_ros"))


_positive_int = int_at_least(1)
_non_negative_int = int_at_least(0)


_rate = number_in(0.0, 1000.0, lo_open=True, name="rate", unit=" Hz")


def register_camera(sim_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `camera` subcommand to the `sim` group's subparsers."""
    c = sim_subparsers.add_parser(
        "camera", help="publish a simulated RGB-D camera on ROS 2 topics",
        description="Render a camera moving on an arc around a mug on a table (once; cached) and publish it "
                    "on ROS 2 at a fixed rate: color/image_raw (rgb8), aligned_depth_to_color/image_raw, "
                    "color/camera_info, and ground truth on ground_truth/{camera_pose,objects,frame_index}. "
                    "ROS arguments (remapping, parameters) go last, after --ros-args.",
        epilog="With --stamp-mode sequence the stamp of the i-th published frame is START + i / RATE, so the "
               "frame index of any message is round((stamp - START) * RATE) % FRAMES. Images larger than "
               "320x240 need a Fast DDS profile with large shared-memory segments on both sides, e.g. "
               "FASTDDS_DEFAULT_PROFILES_FILE=launch/fastdds_large_messages.xml.")
    c.add_argument("--size", type=size_wh, default=(320, 240), help="image size WxH (default 320x240)")
    c.add_argument("--frames", type=_positive_int, default=60, help="frames along the arc (default 60)")
    c.add_argument("--seed", type=_non_negative_int, default=0, help="scene seed (default 0)")
    c.add_argument("--object-seed", type=_non_negative_int, default=0,
                   help="object library seed, as in `sim generate` (default 0)")
    c.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="instance pool of the objects (default test: instances held out from training)")
    c.add_argument("--categories", nargs="+", choices=(*CATEGORIES, "distractor"), metavar="CATEGORY",
                   help=f"objects around the mug, from {', '.join((*CATEGORIES, 'distractor'))} "
                        "(default: 1-3 picked by the seed)")
    c.add_argument("--arc", type=float, default=40.0, help="degrees of azimuth swept by the camera (default 40)")
    c.add_argument("--rate", type=_rate, default=30.0, help="frames per second (default 30)")
    c.add_argument("--no-loop", action="store_true", help="stop after the last frame instead of starting again")
    c.add_argument("--count", type=_non_negative_int, default=0, help="stop after N published frames (0: never)")
    c.add_argument("--depth-encoding", choices=("16UC1", "32FC1"), default="16UC1",
                   help="16UC1 millimetres (0 = none) or 32FC1 metres (NaN = none) (default 16UC1)")
    c.add_argument("--stamp-mode", choices=("now", "sequence"), default="now",
                   help="header stamps: the clock at publishing, or START + i / RATE (default now)")
    c.add_argument("--stamp-start", type=float, default=1.0,
                   help="START, the first stamp in seconds with --stamp-mode sequence (default 1.0)")
    c.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort",
                   help="QoS reliability of the camera topics (default best_effort)")
    c.add_argument("--wait-subscribers", type=_non_negative_int, default=0, metavar="N",
                   help="start publishing once each camera topic has N subscribers (default 0: at once)")
    c.add_argument("--cache", type=Path, default=None,
                   help="cache folder (default $DENSE_DESCRIPTOR_CACHE or ~/.cache/dense_descriptor_ros); "
                        "sequences go to its sim_sequences/")
    c.add_argument("--save-ground-truth", type=Path, metavar="PATH",
                   help="write a JSON with K, per-frame camera poses, objects and keypoints")
    c.add_argument("--no-progress", action="store_true", help="no progress bar while rendering")
    c.set_defaults(func=run_camera)
    return c


def _error(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 2


def run_camera(args: argparse.Namespace) -> int:
    from .sequence import SequenceConfig, cached_sequence, sequence_cache_path

    cfg = SequenceConfig(size=tuple(args.size), frames=args.frames, seed=args.seed, object_seed=args.object_seed,
                         split=args.split, categories=tuple(args.categories) if args.categories else None,
                         arc_deg=args.arc)
    try:
        cfg.validate()
    except ValueError as e:
        return _error(str(e))
    cache = (args.cache or default_cache_dir()) / "sim_sequences"
    try:
        seq = cached_sequence(cfg, cache, progress=not args.no_progress, log=print)
    except RuntimeError as e:
        return _error(str(e))
    except OSError as e:
        return _error(f"cannot use the cache folder {cache}: {e}")
    if seq.width * seq.height * 3 > LARGE_IMAGE_BYTES and not (
            os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
        print(f"note: {seq.width}x{seq.height} images exceed Fast DDS's default 512 KB shared-memory segments; "
              "if frames are lost, set FASTDDS_DEFAULT_PROFILES_FILE=launch/fastdds_large_messages.xml for the "
              "publisher and the subscribers", file=sys.stderr)
    return _publish(seq, args, str(sequence_cache_path(cfg, cache)))


def _save_ground_truth(seq, path: Path, opts, sequence_file: str) -> None:
    """The sequence's ground truth plus how it is published (options after ROS parameter overrides)."""
    from .format import write_json
    from .sequence import ground_truth_dict

    gt = ground_truth_dict(seq)
    gt["publishing"] = {"rate": opts.rate, "stamp_mode": opts.stamp_mode, "stamp_start": opts.stamp_start,
                        "loop": opts.loop, "frames": seq.frames, "sequence_file": sequence_file,
                        "frame_index": "round((stamp - stamp_start) * rate) % frames (stamp_mode sequence)"}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, gt)


def _publish(seq, args: argparse.Namespace, sequence_file: str) -> int:
    import rclpy
    from rclpy.exceptions import ParameterException

    from ..node.spin import spin_until_done
    from .camera_node import CameraNodeOptions, SimCameraNode

    opts = CameraNodeOptions(rate=args.rate, loop=not args.no_loop, count=args.count,
                             depth_encoding=args.depth_encoding, stamp_mode=args.stamp_mode,
                             stamp_start=args.stamp_start, reliability=args.reliability,
                             wait_subscribers=args.wait_subscribers)
    # `dense-descriptor` (cli.main) splits off "--ros-args ..." and hands it over here untouched
    ros_args = list(getattr(args, "ros_args", None) or [])
    try:
        rclpy.init(args=["dense-descriptor", *ros_args])
    except Exception as e:  # rcl rejects malformed ROS arguments with an RCLError
        return _error(f"cannot initialise ROS with {' '.join(ros_args) or 'no arguments'}: {e}")
    node = None
    finished = False
    try:
        node = SimCameraNode(seq, opts)
        if args.save_ground_truth:
            try:
                _save_ground_truth(seq, args.save_ground_truth, node.options, sequence_file)
            except OSError as e:
                return _error(f"cannot write {args.save_ground_truth}: {e}")
            print(f"ground truth written to {args.save_ground_truth}", flush=True)
        finished = spin_until_done(node)
    except (ValueError, ParameterException) as e:  # bad parameter values given with --ros-args -p
        return _error(str(e))
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            _report(node, finished)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _report(node, finished: bool) -> None:
    rate = node.achieved_rate
    how = "done" if finished else "stopped"
    achieved = f"{rate:.2f} Hz achieved" if rate is not None else "rate not measured"
    print(f"{how}: published {node.published} frames ({achieved}, target {node.options.rate:g} Hz)", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run `sim camera` on its own (`python -m dense_descriptor_ros.sim.camera_cli ...`, or an executable
    for `ros2 run`); ROS arguments after --ros-args as with `dense-descriptor`."""
    from ..cli import main as cli_main

    return cli_main(["sim", "camera", *(sys.argv[1:] if argv is None else argv)], ("dense_descriptor_ros.sim.cli",))


if __name__ == "__main__":
    sys.exit(main())
