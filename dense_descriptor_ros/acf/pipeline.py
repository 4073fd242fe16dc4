"""`dense-descriptor pipeline`: simulated camera -> descriptor node -> handle-frame consumer, in one command.

`ros2 launch` is not available everywhere (not in the project venv), so this starts the three processes
itself, as launch/sim_pipeline.launch.py does on a robot:

    consumer   dense-descriptor acf --ground-truth OUT/ground_truth.json --out OUT
    node       dense-descriptor node --ros-args -p model_path:=... -p keypoints_file:=...
    camera     dense-descriptor sim camera --stamp-mode sequence --count FRAMES --wait-subscribers 1
               --save-ground-truth OUT/ground_truth.json

All three share one environment: the Fast DDS profile for large messages (launch/fastdds_large_messages.xml,
unless FASTDDS_DEFAULT_PROFILES_FILE is set already), ROS_DOMAIN_ID from --domain-id, and localhost-only
discovery unless ROS_AUTOMATIC_DISCOVERY_RANGE is set. The consumer and the node start together; the camera
starts once the consumer reports that the node's keypoints publisher matched (the node skips frames nobody
subscribes to), publishes FRAMES frames and exits. After --drain seconds for the last frames, the consumer
and the node get SIGINT (as Ctrl-C) and the consumer prints its summary, which includes the node's last
diagnostics. Children run in their own process groups, so a Ctrl-C reaches this process only and is
forwarded in order (camera, consumer, node). Their output is shown prefixed with their name. The exit
status is 0 when every child exited cleanly, 1 when one failed (or the node could not load its model),
2 for bad arguments, 130 after Ctrl-C or SIGTERM.

Nothing here imports rclpy: this is process supervision, plus (--keypoints first-frame) writing the keypoint
file the node starts with.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..cli_args import FIRST_FRAME, FIRST_FRAME_FILE, int_at_least, keypoints_or_first_frame, number_in, size_wh
from ..launcher import Child, pipeline_env, profile_path, start_child
from ..ros_core.topics import NODE_NAME
from .handle_frame import FILTER_METHODS

if TYPE_CHECKING:
    from ..node.params import NodeSettings

__all__ = ["register_pipeline", "register", "run_pipeline", "main", "child_commands", "pipeline_env", "profile_path",
           "PROG", "NODE_FAILURES"]

PROG = "dense-descriptor pipeline"
#: lines of the descriptor node's output that mean it will never process a frame
NODE_FAILURES = ("configure failed", "activate failed")
#: the camera logs this once it starts publishing (camera_node.SimCameraNode._ready)
CAMERA_STARTED = "publishing"
#: the consumer logs this once the node's keypoints publisher matched (consumer_node.KEYPOINTS_MATCHED; not
#: imported from there: that module imports rclpy)
KEYPOINTS_MATCHED = "keypoints publisher matched"
GROUND_TRUTH_FILE = "ground_truth.json"


_positive_int = int_at_least(1)
_domain_id = int_at_least(0, 232, "ROS_DOMAIN_ID")
_seconds = number_in(0.0)


def _node_param(text: str) -> str:
    if ":=" not in text or text.startswith(":="):
        raise argparse.ArgumentTypeError(f"expected NAME:=VALUE, got {text!r}")
    return text


def register_pipeline(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the top-level `pipeline` command."""
    p = subparsers.add_parser(
        "pipeline", help="simulated camera + descriptor node + handle-frame consumer, in one command",
        description="Start `sim camera` (a moving camera around a mug, ground truth saved), the descriptor node "
                    "and the `acf` consumer (mug handle frame from the node's 3D keypoints, scored against the "
                    "ground truth) with a shared Fast DDS profile and domain; stop after --frames camera frames "
                    "and print the consumer's summary and the node's diagnostics. On a robot, "
                    "launch/sim_pipeline.launch.py starts the same three nodes.",
        epilog="Example: dense-descriptor pipeline --frames 300 --out runs/pipeline "
               "(the shipped model), --keypoints first-frame (track the mug shown in frame 0), or "
               "--model my.onnx --keypoints my_mug_keypoints.json.")
    p.add_argument("--frames", type=_positive_int, default=300,
                   help="camera frames to publish before stopping (default 300: 10 s at 30 Hz)")
    p.add_argument("--sequence-frames", type=_positive_int, default=60,
                   help="frames along the camera's arc; the camera loops over them (default 60)")
    p.add_argument("--size", type=size_wh, default=(320, 240), help="camera image size WxH (default 320x240)")
    p.add_argument("--rate", type=float, default=30.0, help="camera frames per second (default 30)")
    p.add_argument("--seed", type=int, default=0, help="scene seed of the simulated sequence (default 0)")
    p.add_argument("--cache", type=Path, default=None, help="sim cache folder (default: sim camera's)")
    p.add_argument("--model", type=Path, default=None,
                   help="model file for the node (default: the shipped models/default model)")
    p.add_argument("--keypoints", type=keypoints_or_first_frame, default=None, metavar="FILE|first-frame",
                   help="mug keypoint file of that model (default: the shipped category-level one, with the shipped "
                        f"model only), or {FIRST_FRAME}: this mug's own keypoints annotated with the model in the "
                        f"sequence's first frame (ground-truth pixels), written to OUT/{FIRST_FRAME_FILE}, so the "
                        "node tracks the object it was shown once")
    p.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="inference backend (default onnx)")
    p.add_argument("--node-param", type=_node_param, action="append", default=[], metavar="NAME:=VALUE",
                   help="another descriptor node parameter (repeatable), e.g. resolution:=[160,120]")
    p.add_argument("--object-mask", action="store_true",
                   help="the consumer drops keypoints that the node's labels output (part probe) puts on the "
                        "background")
    p.add_argument("--filter", choices=FILTER_METHODS, default="none",
                   help="the consumer's temporal filter (default none)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the ground truth, acf_errors.csv/.png and acf_summary.json "
                        "(default: a temporary folder, removed at the end)")
    p.add_argument("--domain-id", type=_domain_id, default=None,
                   help="ROS_DOMAIN_ID of the three processes (default: $ROS_DOMAIN_ID, else 0)")
    p.add_argument("--startup-timeout", type=_seconds, default=180.0,
                   help="seconds for the camera to start publishing, model loading included (default 180)")
    p.add_argument("--drain", type=_seconds, default=2.0,
                   help="seconds to wait after the camera's last frame for the last keypoints (default 2)")
    p.add_argument("--quiet", action="store_true", help="do not show the children's output, only the summary")
    p.set_defaults(func=run_pipeline)
    return p


register = register_pipeline  # the COMMAND_MODULES interface of dense_descriptor_ros.cli


def child_commands(args: argparse.Namespace, out_dir: Path, python: str = sys.executable) -> dict[str, list[str]]:
    """The three command lines, in start order (consumer, node, camera)."""
    gt = out_dir / GROUND_TRUTH_FILE
    w, h = args.size
    consumer = [python, "-m", "dense_descriptor_ros.acf.cli", "--ground-truth", str(gt), "--out", str(out_dir),
                "--filter", args.filter]
    if args.object_mask:
        consumer += ["--labels-topic", f"/{NODE_NAME}/labels"]  # pipeline/outputs.py OUTPUT_SPECS
    params = [f"backend:={args.backend}"]
    if args.model is not None:
        params.append(f"model_path:={args.model}")
    if args.keypoints is not None:
        params.append(f"keypoints_file:={args.keypoints}")
    params += args.node_param
    node = [python, "-m", "dense_descriptor_ros.cli", "node", "--ros-args"]
    for prm in params:
        node += ["-p", prm]
    camera = [python, "-m", "dense_descriptor_ros.sim.camera_cli", "--size", f"{w}x{h}",
              "--frames", str(args.sequence_frames), "--seed", str(args.seed), "--rate", f"{args.rate:g}",
              "--count", str(args.frames), "--stamp-mode", "sequence", "--wait-subscribers", "1",
              "--save-ground-truth", str(gt), "--no-progress"]
    if args.cache is not None:
        camera += ["--cache", str(args.cache)]
    return {"consumer": consumer, "node": node, "camera": camera}


def _check_model(args: argparse.Namespace) -> str | None:
    """Why the node could not start with these model arguments (None: fine)."""
    for what, path in (("--model", args.model), ("--keypoints", args.keypoints)):
        if isinstance(path, Path) and not path.is_file():
            return f"{what} {path} does not exist"
    if args.model is not None and args.keypoints is not None:
        return None
    from ..runtime.model_files import default_keypoints_path, default_model_path  # imports torch: only if needed

    shipped = default_model_path(args.backend)
    if args.model is None and not shipped.is_file():
        return (f"the shipped model {shipped} is not there; pass --model PATH --keypoints PATH "
                "(models/README.md)")
    model = args.model or shipped
    if args.keypoints is None and not (model.resolve().parent == shipped.resolve().parent
                                       and default_keypoints_path().is_file()):
        return "--keypoints is needed with --model: the shipped mug keypoints go with the shipped model only"
    return None


def node_settings(args: argparse.Namespace) -> NodeSettings:
    """The descriptor node's settings as this command configures it (--backend, then the --node-param values).

    Raises ValueError for a parameter the node does not have or a bad value, as the node would."""
    import yaml

    from ..node.params import NodeSettings

    values = {"backend": args.backend}
    for prm in args.node_param:
        name, _, value = prm.partition(":=")
        values[name] = yaml.safe_load(value)
    return NodeSettings.from_params(values)


def first_frame_keypoints(args: argparse.Namespace, out_dir: Path) -> tuple[Path, str]:
    """Annotate the sequence's mug in its first frame as the node will see it (its model, backend and processing
    resolution; --keypoints first-frame). The sequence is rendered (and cached) here if needed, so the camera
    then loads it.

    Returns the keypoint file and a line saying what it holds. Raises ValueError (or OSError) when it cannot.
    """
    from ..runtime.extractor import DescriptorExtractor
    from ..runtime.model_files import default_model_path
    from ..sim.camera_cli import default_cache_dir
    from ..sim.reference_keypoints import sequence_keypoints
    from ..sim.sequence import SequenceConfig, cached_sequence

    settings = node_settings(args)
    cfg = SequenceConfig(size=tuple(args.size), frames=args.sequence_frames, seed=args.seed)
    seq = cached_sequence(cfg, (args.cache or default_cache_dir()) / "sim_sequences",
                          log=lambda line: print(f"{PROG}: {line}", flush=True))
    model = args.model or default_model_path(args.backend)
    # the node's inference settings (no spinning threads: the camera, node and consumer need the cores next;
    # the session goes at return)
    ex = DescriptorExtractor.load(model, settings.extractor_config(warmup_iters=0))
    ref = sequence_keypoints(ex, seq, 0)
    path = out_dir / FIRST_FRAME_FILE
    ref.save(path)
    w, h = settings.resolution
    size = f"{w}x{h}" if w else "the camera's size"
    return path, (f"keypoints: {len(ref.names)} of the mug annotated in frame 0 ({', '.join(ref.names)}) at "
                  f"{size}, written to {path}")


class _Interrupted(Exception):
    """SIGINT or SIGTERM to the pipeline."""


def _on_signal(signum, frame) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def _summary_lines(out_dir: Path, consumer: Child) -> list[str]:
    """The consumer's summary: from its acf_summary.json, else from its printed output."""
    try:
        return list(json.loads((out_dir / "acf_summary.json").read_text())["lines"])
    except (OSError, ValueError, KeyError):
        lines = consumer.lines
        start = next((i for i, line in enumerate(lines) if line.startswith("acf summary")), None)
        return [line.strip() for line in lines[start + 1:]] if start is not None else []


def run_pipeline(args: argparse.Namespace) -> int:
    if not 0 < args.rate <= 1000:
        print(f"{PROG}: error: --rate must be in (0, 1000], got {args.rate}", file=sys.stderr)
        return 2
    problem = _check_model(args)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="ddr_pipeline_")
        out_dir = Path(tmp.name)
    else:
        out_dir = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
    # a ground truth left by an earlier run would be read before the camera writes this run's
    (out_dir / GROUND_TRUTH_FILE).unlink(missing_ok=True)
    (out_dir / "acf_summary.json").unlink(missing_ok=True)
    if args.keypoints == FIRST_FRAME:
        try:
            args.keypoints, line = first_frame_keypoints(args, out_dir)
        except (ValueError, OSError, RuntimeError) as e:
            print(f"{PROG}: error: --keypoints {FIRST_FRAME}: {e}", file=sys.stderr)
            if tmp is not None:
                tmp.cleanup()
            return 2
        print(f"{PROG}: {line}", flush=True)
    env = pipeline_env(args.domain_id)
    cmds = child_commands(args, out_dir)
    children: dict[str, Child] = {}
    failure: str | None = None
    interrupted = False
    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"{PROG}: ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID', '0')}, Fast DDS profile "
              f"{env.get('FASTDDS_DEFAULT_PROFILES_FILE') or env.get('FASTRTPS_DEFAULT_PROFILES_FILE') or 'none'}, "
              f"output in {out_dir}", flush=True)
        children["consumer"] = start_child("consumer", cmds["consumer"], env, not args.quiet)
        children["node"] = start_child("node", cmds["node"], env, not args.quiet)
        # the camera starts once the node's keypoints reach the consumer: the node drops frames nobody
        # subscribes to, so an earlier start would lose the first second or two
        failure = _wait_for(children, "consumer", KEYPOINTS_MATCHED, args.startup_timeout)
        if failure is None:
            children["camera"] = start_child("camera", cmds["camera"], env, not args.quiet)
            failure = _supervise(children, args)
    except _Interrupted as e:
        interrupted = True
        print(f"{PROG}: {e}: stopping", file=sys.stderr, flush=True)
    finally:
        for s in old_handlers:  # a second Ctrl-C must not cut the orderly stop short (it kills after a timeout)
            signal.signal(s, signal.SIG_IGN)
        try:
            codes = _stop_all(children)
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
    for name, code in codes.items():
        if code != 0 and failure is None and not interrupted:
            failure = f"{name} exited with status {code}"
    if "consumer" in children:
        lines = _summary_lines(out_dir, children["consumer"])
        if tmp is not None and lines:  # the files go with the temporary folder
            lines = [line for line in lines if not line.startswith("wrote ")] + [
                "no --out: the error CSV, plot and summary JSON were not kept"]
        print("pipeline summary:" if lines else "pipeline summary: the consumer printed none", flush=True)
        for line in lines:
            print(f"  {line}", flush=True)
    if tmp is not None:
        tmp.cleanup()
    if interrupted:
        return 130
    if failure:
        print(f"{PROG}: failed: {failure}", file=sys.stderr, flush=True)
        if args.quiet:  # their output was not shown: show how each ended
            for name, child in children.items():
                print(f"--- last lines of {name} ---\n" + "\n".join(child.lines[-20:]), file=sys.stderr, flush=True)
        return 1
    return 0


def _early_exit(children: dict[str, Child], allowed: tuple[str, ...] = ()) -> str | None:
    for name, child in children.items():
        if name not in allowed and child.proc.poll() is not None:
            return f"{name} exited early with status {child.proc.returncode}"
    node = children.get("node")
    if node is not None:
        for text in NODE_FAILURES:
            line = node.seen(text)
            if line:
                return f"the descriptor node cannot run: {line.strip()}"
    return None


def _wait_for(children: dict[str, Child], name: str, text: str, timeout: float) -> str | None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if children[name].seen(text):
            return None
        problem = _early_exit(children)
        if problem:
            return problem
        time.sleep(0.05)
    return f"{name} did not print {text!r} within {timeout:g} s"


def _supervise(children: dict[str, Child], args: argparse.Namespace) -> str | None:
    """Until the camera is done and the drain time passed; a failure's description, or None."""
    camera = children["camera"]
    t_start = time.monotonic()
    started = False
    while True:
        problem = _early_exit(children, allowed=("camera",))
        if problem:
            return problem
        if camera.proc.poll() is not None:
            if camera.proc.returncode != 0:
                return f"camera exited with status {camera.proc.returncode}"
            break
        if not started:
            started = camera.seen(CAMERA_STARTED) is not None
            if not started and time.monotonic() - t_start > args.startup_timeout:
                return (f"the camera did not start publishing within {args.startup_timeout:g} s "
                        "(does the descriptor node subscribe to color/image_raw?)")
        time.sleep(0.05)
    t_end = time.monotonic() + args.drain
    while time.monotonic() < t_end:
        problem = _early_exit(children, allowed=("camera",))
        if problem:
            return problem
        time.sleep(0.05)
    return None


def _stop_all(children: dict[str, Child]) -> dict[str, int]:
    """SIGINT to each child still running, in the order camera, consumer (prints its summary), node."""
    codes = {}
    for name in ("camera", "consumer", "node"):
        if name in children:
            codes[name] = children[name].stop()
    return codes


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline on its own: `python -m dense_descriptor_ros.acf.pipeline ...`."""
    from ..cli import main as cli_main

    return cli_main(["pipeline", *(sys.argv[1:] if argv is None else argv)], (__name__,))


if __name__ == "__main__":
    sys.exit(main())
