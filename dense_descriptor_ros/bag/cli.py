"""`dense-descriptor bag ...`: inspect, process, replay, record and make rosbag2 files (docs/rosbag_tools.md).

Imports stay lazy: `bag play` and `bag record` start in a fraction of a second (no torch), and `bag
process` loads the model only after the bag and its topics were checked. Also runnable on its own:
`python -m dense_descriptor_ros.bag.cli play ...` (ROS arguments after --ros-args, as with
`dense-descriptor`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_args import int_at_least, number_in

__all__ = ["register", "main"]

PROG = "dense-descriptor bag"


_positive_float = number_in(0.0, lo_open=True)
_non_negative_float = number_in(0.0)


_non_negative_int = int_at_least(0)


def _param(text: str) -> tuple[str, object]:
    """'name=value' with a YAML value (numbers, true/false, [320, 240], strings)."""
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return name.strip(), ("" if parsed is None else parsed)


def _remap(text: str) -> tuple[str, str]:
    src, sep, dst = text.partition(":=")
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f"expected FROM:=TO, got {text!r}")
    return src if src.startswith("/") else f"/{src}", dst if dst.startswith("/") else f"/{dst}"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bag` group."""
    p = subparsers.add_parser("bag", help="rosbag2 tools: info, process, play, record, recover, sample",
                              description="rosbag2 files (sqlite3 or mcap) without a ROS installation: inspect "
                                          "them, run the descriptor pipeline over them offline, replay and record "
                                          "them on live topics, recover what a killed recording left, and make "
                                          "the simulated sample (docs/rosbag_tools.md).")
    sub = p.add_subparsers(dest="bag_command", metavar="SUBCOMMAND")
    sub.required = True

    i = sub.add_parser("info", help="topics, types, counts, rates, duration, storage",
                       description="What a bag holds: storage and compression, duration, and per topic its type, "
                                   "message count, rate (from the log times) and recorded QoS.")
    i.add_argument("bag", type=Path, metavar="IN", help="rosbag2 folder, or a bare .mcap / .db3 file")
    i.add_argument("--no-rates", action="store_true", help="only the index (no pass over the messages)")
    i.set_defaults(func=run_info)

    pr = sub.add_parser(
        "process", help="run the descriptor pipeline over a bag, offline",
        description="Read colour, depth and camera info from IN, run the node's per-frame pipeline on every "
                    "synchronised frame (same parameters, same code) and write OUT with the node's outputs "
                    "(/dense_descriptor/descriptors, .../descriptors/pca, .../keypoints, .../correspondences) "
                    "stamped with the input headers and logged at the input's log times. OUT appears only "
                    "when complete.",
        epilog="Pipeline parameters are the node's (config/descriptor_node.yaml): --params-file FILE and / or "
               "--param name=value, e.g. --param resolution=[640,480] --param correspondence_mode=reference.")
    pr.add_argument("bag", type=Path, metavar="IN", help="input rosbag2 (folder or .mcap / .db3 file)")
    pr.add_argument("out", type=Path, metavar="OUT", help="output rosbag2 folder (must not exist)")
    pr.add_argument("--model", help="model file (.onnx, or .safetensors with the torch backend); default: the "
                                    "node's model_path parameter (empty = the shipped model)")
    pr.add_argument("--keypoints", help="reference keypoint file; 'none' = no keypoints; default: the node's "
                                        "keypoints_file parameter")
    pr.add_argument("--color-topic", help="default: the topic ending in color/image_raw")
    pr.add_argument("--depth-topic", help="default: the topic ending in aligned_depth_to_color/image_raw; "
                                          "'none' = no depth (2D outputs)")
    pr.add_argument("--info-topic", help="default: the topic ending in color/camera_info; 'none' = no intrinsics")
    pr.add_argument("--include-inputs", action="store_true", help="copy the input topics into OUT too")
    pr.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="OUT's storage (default mcap)")
    pr.add_argument("--compression", choices=("auto", "zstd", "none"), default="auto",
                    help="auto (default): zstd chunks for mcap, none for sqlite3")
    pr.add_argument("--params-file", type=Path, help="a node parameter file (YAML with ros__parameters)")
    pr.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                    help="a node parameter (repeatable); applied after --params-file")
    pr.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (once the new one is done)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.set_defaults(func=run_process)

    pl = sub.add_parser(
        "play", help="publish a bag's messages on live topics at the recorded rate",
        description="Publish the bag's messages (their serialised bytes, unchanged) with rclpy publishers of "
                    "the recorded types, timed by the log times. ROS arguments go after --ros-args.")
    pl.add_argument("bag", type=Path, metavar="IN")
    pl.add_argument("--rate", type=_positive_float, default=1.0, help="playback speed factor (default 1)")
    pl.add_argument("--loop", action="store_true", help="start again at the end (Ctrl-C stops)")
    pl.add_argument("--start", type=_non_negative_float, default=0.0, metavar="S",
                    help="skip the first S seconds of the bag")
    pl.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: all)")
    pl.add_argument("--remap", type=_remap, action="append", default=[], metavar="FROM:=TO",
                    help="publish bag topic FROM as TO (repeatable)")
    pl.add_argument("--clock", action="store_true", help="publish /clock with the bag's time (use_sim_time)")
    pl.add_argument("--clock-rate", type=_positive_float, default=40.0, help="/clock messages per second of "
                                                                              "play time (default 40)")
    pl.add_argument("--qos-reliability", choices=("auto", "best_effort", "reliable"), default="auto",
                    help="auto (default): as recorded, else best effort for sensor_msgs and reliable otherwise; "
                         "the node subscribes best effort unless its qos_reliability is reliable")
    pl.add_argument("--wait-subscribers", type=_non_negative_int, default=0, metavar="N",
                    help="start once every played topic has N subscribers (default 0: at once)")
    pl.add_argument("--wait-timeout", type=_positive_float, default=30.0, metavar="S",
                    help="with --wait-subscribers: give up (error) after S seconds (default 30)")
    pl.add_argument("--quiet", action="store_true", help="no per-loop report")
    pl.set_defaults(func=run_play)

    rc = sub.add_parser(
        "record", help="record live topics into a rosbag2",
        description="Subscribe (serialised, no decoding) to TOPIC... with their types found in the ROS graph "
                    "(topics that appear later are picked up) and write a rosbag2. Ctrl-C, --duration or "
                    "--count stop it with a complete bag; a killed recorder's bag is rebuilt by `bag recover`. "
                    "ROS arguments go after --ros-args.")
    rc.add_argument("out", type=Path, metavar="OUT", help="output rosbag2 folder (must not exist)")
    rc.add_argument("topics", nargs="+", metavar="TOPIC")
    rc.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    rc.add_argument("--compression", choices=("auto", "zstd", "none"), default="auto",
                    help="auto (default): zstd chunks for mcap, none for sqlite3")
    rc.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    rc.add_argument("--count", type=_non_negative_int, default=0, metavar="N",
                    help="stop once every topic has N messages (0: no limit)")
    rc.add_argument("--qos-reliability", choices=("auto", "best_effort", "reliable"), default="auto",
                    help="auto (default): reliable if every publisher offers it, else best effort")
    rc.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    rc.add_argument("--max-bag-duration", "--max-duration", dest="max_bag_duration", type=_positive_float,
                    metavar="S", help="split: start a new file every S seconds of log time (rosbag2's option)")
    size = rc.add_mutually_exclusive_group()
    size.add_argument("--max-bag-size", type=int_at_least(1), metavar="BYTES",
                      help="split: start a new file once the current one holds BYTES bytes (rosbag2's option)")
    size.add_argument("--max-size", type=_positive_float, metavar="MB",
                      help="split: the same in megabytes (10^6 bytes)")
    rc.add_argument("--flush-interval", type=_positive_float, default=0.5, metavar="S",
                    help="write out what was received every S seconds (default 0.5): a killed recorder loses "
                         "at most that much; `bag recover` rebuilds its bag")
    rc.set_defaults(func=run_record)

    rv = sub.add_parser(
        "recover", help="rebuild a complete bag from what a killed recording left",
        description="Read every complete record of IN (a bag folder, the hidden .NAME.partial-*/NAME folder a "
                    "killed `bag record` leaves, or a lone .mcap / .db3) and write them as a complete, readable "
                    "rosbag2 (metadata.yaml, mcap summary and footer), one output file per input file. mcap: "
                    "streamed to the last complete record; sqlite3: a copy of the database with its journal, "
                    "rolled back by SQLite to its last commit. IN is not changed. Prints what was recovered "
                    "and where each file was cut.")
    rv.add_argument("bag", type=Path, metavar="IN")
    rv.add_argument("--out", "-o", type=Path, metavar="OUT",
                    help="the bag to write; default: for .NAME.partial-*/NAME the NAME the recording was "
                         "meant to have (next to the hidden folder), else IN_recovered")
    rv.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    rv.set_defaults(func=run_recover)

    sm = sub.add_parser(
        "sample", help="make the simulated sample bag (deterministic)",
        description="Render (or load from the cache) the simulated camera's sequence of a mug and write it as a "
                    "rosbag2 with colour (rgb8), depth (16UC1), camera info and ground-truth camera poses, as "
                    "`sim camera` publishes them, plus ground_truth.json. The shipped data_sample/sim_mug is "
                    "this command with its defaults.")
    sm.add_argument("out", type=Path, metavar="OUT")
    sm.add_argument("--frames", type=int, default=30, help="frames (default 30)")
    from ..cli_args import size_wh

    sm.add_argument("--size", type=size_wh, default=(320, 240), help="WxH (default 320x240)")
    sm.add_argument("--seed", type=_non_negative_int, default=0, help="scene seed (default 0)")
    sm.add_argument("--rate", type=_positive_float, default=30.0, help="frames per second of the stamps")
    sm.add_argument("--depth-encoding", choices=("16UC1", "32FC1"), default="16UC1")
    sm.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    sm.add_argument("--cache", type=Path, help="rendered-sequence cache (default: sim camera's)")
    sm.add_argument("--overwrite", action="store_true")
    sm.set_defaults(func=run_sample)


def _error(command: str, msg: str, code: int = 2) -> int:
    print(f"{PROG} {command}: error: {msg}", file=sys.stderr)
    return code


# ---------------------------------------------------------------------------------------------- info
def run_info(args: argparse.Namespace) -> int:
    from .info import bag_summary, format_summary
    from .io import BagError

    try:
        print(format_summary(bag_summary(args.bag, rates=not args.no_rates)))
    except BagError as e:
        return _error("info", str(e))
    return 0


# ------------------------------------------------------------------------------------------- process
def _settings(args: argparse.Namespace):
    """NodeSettings from the defaults, --params-file, --param, --model and --keypoints (in that order)."""
    from ..node.params import NodeSettings

    values: dict = {}
    if args.params_file:
        import yaml

        try:
            doc = yaml.safe_load(args.params_file.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read --params-file {args.params_file}: {e}") from None
        sections = [v["ros__parameters"] for v in doc.values() if isinstance(v, dict) and "ros__parameters" in v]
        if not sections:
            raise ValueError(f"{args.params_file} has no ros__parameters section")
        for s in sections:
            values.update(s)
    values.update(dict(args.param))
    if args.model is not None:
        values["model_path"] = args.model
        if "backend" not in values and Path(args.model).suffix in (".safetensors", ".pt"):
            values["backend"] = "torch"  # a PyTorch model file: the only backend that reads it
    if args.keypoints is not None:
        values["keypoints_file"] = args.keypoints
    settings, _ = NodeSettings().with_changes(values)
    return settings


def run_process(args: argparse.Namespace) -> int:
    from .io import BagError

    try:
        settings = _settings(args)
    except (ValueError, TypeError) as e:
        return _error("process", f"bad parameter: {e}")
    from ..runtime.extractor import BackendFallbackError
    from ..runtime.model_files import ModelFileError
    from .process import ProcessOptions, process_bag

    opts = ProcessOptions(color_topic=args.color_topic, depth_topic=args.depth_topic, info_topic=args.info_topic,
                          include_inputs=args.include_inputs, storage=args.storage, compression=args.compression,
                          overwrite=args.overwrite, progress=not args.no_progress)
    try:
        summary = process_bag(args.bag, args.out, settings, opts)
    except BagError as e:
        return _error("process", f"{e}; {args.out} not written")
    except BackendFallbackError as e:  # the extractor's hint names its API; users here set --param require_device
        return _error("process", f"{e.reason} (require_device is true; --param require_device=false falls back to "
                                 f"the CPU with a warning); {args.out} not written")
    except (ModelFileError, ValueError) as e:
        return _error("process", f"{e}; {args.out} not written")
    except KeyboardInterrupt:
        print(f"interrupted: {args.out} not written", file=sys.stderr)
        return 130
    print(summary.format())
    if summary.frames_processed == 0:
        return _error("process", "no frame could be processed (see the reasons above)", 1)
    return 0


# ---------------------------------------------------------------------------------------- play/record
def run_play(args: argparse.Namespace) -> int:
    from .io import BagError
    from .play import PlayOptions, play_bag

    opts = PlayOptions(rate=args.rate, loop=args.loop, start_s=args.start, topics=args.topics,
                       remap=dict(args.remap), clock=args.clock, clock_rate=args.clock_rate,
                       reliability=args.qos_reliability, wait_subscribers=args.wait_subscribers,
                       wait_timeout_s=args.wait_timeout, report=not args.quiet)
    try:
        return play_bag(args.bag, opts, ros_args=list(getattr(args, "ros_args", None) or []))
    except BagError as e:
        return _error("play", str(e))


def run_record(args: argparse.Namespace) -> int:
    from .io import BagError
    from .record import RecordOptions, record_bag

    max_size = args.max_bag_size or (int(args.max_size * 1e6) if args.max_size else 0)
    opts = RecordOptions(storage=args.storage, compression=args.compression, duration_s=args.duration,
                         count=args.count, reliability=args.qos_reliability, overwrite=args.overwrite,
                         max_bag_duration_s=args.max_bag_duration or 0.0, max_bag_size=max_size,
                         flush_interval_s=args.flush_interval)
    try:
        return record_bag(args.out, args.topics, opts, ros_args=list(getattr(args, "ros_args", None) or []))
    except BagError as e:
        return _error("record", f"{e}")


def run_recover(args: argparse.Namespace) -> int:
    from .io import BagError
    from .recover import recover_bag

    try:
        summary = recover_bag(args.bag, args.out, overwrite=args.overwrite,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    except BagError as e:
        return _error("recover", str(e))
    except OSError as e:
        return _error("recover", f"{e}")
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    print(summary.format())
    print(f"{args.bag} is left as it was; remove it once {summary.out} is checked")
    return 0


# -------------------------------------------------------------------------------------------- sample
def run_sample(args: argparse.Namespace) -> int:
    from .io import BagError
    from .sample import SampleOptions, write_sample_bag

    opts = SampleOptions(frames=args.frames, size=tuple(args.size), seed=args.seed, rate=args.rate,
                         depth_encoding=args.depth_encoding, storage=args.storage)
    try:
        out = write_sample_bag(args.out, opts, cache=args.cache, overwrite=args.overwrite)
    except (BagError, ValueError, RuntimeError) as e:
        return _error("sample", str(e))
    from .info import bag_summary, format_summary

    print(format_summary(bag_summary(out)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m dense_descriptor_ros.bag.cli SUBCOMMAND ...` (ROS arguments after --ros-args)."""
    from ..cli import main as cli_main

    return cli_main(["bag", *(sys.argv[1:] if argv is None else argv)], (__name__,))


if __name__ == "__main__":
    sys.exit(main())
