"""`dense-descriptor demo`: the main job. The shipped model in the descriptor node, fed by the bundled
sample bag replayed over real topics; its outputs are recorded and scored against the simulator's
ground truth, and pictured.

    node     dense-descriptor node --ros-args -p model_path:=models/default/model.onnx -p keypoints_file:=...
    record   dense-descriptor bag record OUT/outputs_<run> /dense_descriptor/... /diagnostics
    play     dense-descriptor bag play data_sample/sim_mug --wait-subscribers 1

By default the node runs twice over the bag: with the mug's own keypoints annotated in the bag's first frame
(what a robot shown the object once tracks; OUT/mug_keypoints_first_frame.json), then with the shipped
category-level mug keypoints. Prints a summary (frames, node latency, correspondences against the known
camera motion, and per run the keypoints found with their pixel / 3D errors and the mug handle's frame
against the ground truth) and writes summary.json, descriptors_pca.png, keypoints.png, correspondences.png
and keypoints_category.png to --out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from ..cli_args import FIRST_FRAME, FIRST_FRAME_FILE, keypoints_or_first_frame
from ..launcher import Child, pipeline_env, start_child

REPO = Path(__file__).resolve().parents[2]
SAMPLE_BAG = REPO / "data_sample" / "sim_mug"
PROG = "dense-descriptor demo"
#: what each node run's keypoints are
PASS_TITLES = {"tracked": "keypoints of this mug, annotated at the ground truth in the bag's first frame",
               "category": "the shipped category-level mug keypoints (averaged over the training mugs that show each)",
               "given": "the given keypoint file"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="the main job: the node on the sample bag, scored and pictured",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--bag", type=Path, default=SAMPLE_BAG, help="bag to play (default: the sample bag)")
    p.add_argument("--ground-truth", type=Path, default=None,
                   help="its ground truth JSON (default: ground_truth.json in the bag folder)")
    p.add_argument("--model", type=Path, default=None, help="model (default: the shipped one)")
    p.add_argument("--keypoints", type=keypoints_or_first_frame, default=None, metavar="FILE|first-frame",
                   help="one node run with this keypoint file, or first-frame: the mug's keypoints annotated in the "
                        "bag's first frame (default: two runs, first-frame and then the shipped mug keypoints)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1: 30 Hz)")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID of the demo's processes")
    p.add_argument("--verbose", action="store_true", help="show the processes' output")
    p.set_defaults(func=run)


def _wait(child: Child, text: str, timeout: float) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if child.seen(text):
            return
        if child.proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = "\n".join(child.lines[-15:])
    raise RuntimeError(f"{child.name} did not report {text!r}:\n{tail}")


def _record_pass(args: argparse.Namespace, model: Path, keypoints: Path, recorded: Path, env: dict[str, str]) -> None:
    """One node run over the bag: start the node and the recorder, play, stop. Raises RuntimeError."""
    from .report import OUTPUT_TOPICS  # the topics the report reads back (imported here: report loads cv2 and bags)

    cli = [sys.executable, "-m", "dense_descriptor_ros.cli"]
    node_cmd = [*cli, "node", "--ros-args", "-p", f"model_path:={model}", "-p", f"keypoints_file:={keypoints}"]
    record_cmd = [*cli, "bag", "record", str(recorded), *OUTPUT_TOPICS.values()]
    play_cmd = [*cli, "bag", "play", str(args.bag), "--rate", f"{args.rate:g}", "--wait-subscribers", "1",
                "--topics", "/color/image_raw", "/aligned_depth_to_color/image_raw", "/color/camera_info", "--quiet"]
    shutil.rmtree(recorded, ignore_errors=True)
    children: dict[str, Child] = {}
    try:
        print(f"{PROG}: starting the descriptor node ({model.name}, {keypoints.name})", flush=True)
        children["node"] = start_child("node", node_cmd, env, args.verbose)
        _wait(children["node"], "active:", 120)
        children["record"] = start_child("record", record_cmd, env, args.verbose)
        for topic in OUTPUT_TOPICS.values():  # subscribed to every output before the first frame
            _wait(children["record"], f"recording {topic} ", 60)
        print(f"{PROG}: playing {args.bag} through real topics", flush=True)
        children["play"] = start_child("play", play_cmd, env, args.verbose)
        if children["play"].proc.wait(120) != 0:
            raise RuntimeError("bag play failed:\n" + "\n".join(children["play"].lines[-15:]))
        time.sleep(1.5)  # the last frames' outputs and one more diagnostics message
    except (RuntimeError, KeyboardInterrupt):
        for c in reversed(list(children.values())):
            c.stop()
        raise
    codes = {name: children[name].stop() for name in ("record", "node")}
    if codes["record"] != 0:
        raise RuntimeError(f"bag record exited with {codes['record']}:\n" + "\n".join(children["record"].lines[-15:]))


def run(args: argparse.Namespace) -> int:
    from ..runtime.model_files import default_keypoints_path, default_model_path

    model = args.model or default_model_path("onnx")
    gt = args.ground_truth or args.bag / "ground_truth.json"
    if args.keypoints is None:  # the default: both
        passes = {"tracked": FIRST_FRAME, "category": default_keypoints_path()}
    else:
        passes = {"tracked" if args.keypoints == FIRST_FRAME else "given": args.keypoints}
    files = [p for p in passes.values() if isinstance(p, Path)]
    for what, path in (("model", model), *(("keypoint file", p) for p in files), ("bag", args.bag),
                       ("ground truth", gt)):
        if not path.exists():
            print(f"{PROG}: error: {what} {path} does not exist", file=sys.stderr)
            return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    domain = args.domain_id if args.domain_id is not None else 50 + os.getpid() % 50
    env = pipeline_env(domain)
    env.setdefault("OMP_NUM_THREADS", "1")
    from .report import first_frame_keypoints, keypoints_picture, pictures, score, write_summary

    t0 = time.monotonic()
    summaries, written = {}, []
    try:
        for name, keypoints in passes.items():
            if keypoints == FIRST_FRAME:
                from ..node.params import NodeSettings
                from ..runtime.extractor import DescriptorExtractor

                # as the node (default parameters) will see the frames; its threads never spin
                ex = DescriptorExtractor.load(model, NodeSettings().extractor_config(warmup_iters=0))
                keypoints = out / FIRST_FRAME_FILE
                first_frame_keypoints(ex, args.bag, gt).save(keypoints)
                del ex
            recorded = out / f"outputs_{name}"
            _record_pass(args, model, keypoints, recorded, env)
            summaries[name], data = score(args.bag, recorded, gt)
            # the first run draws every picture, the others only their keypoints
            written += [keypoints_picture(data, out / f"keypoints_{name}.png")] if written else pictures(data, out)
    except (RuntimeError, ValueError, OSError, KeyboardInterrupt) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    written.insert(0, write_summary(summaries, out))
    print(f"{PROG}: done in {time.monotonic() - t0:.0f} s")
    head = next(iter(summaries.values()))
    for line in head.lines()[:2] + head.lines()[-1:]:
        print("  " + line)
    for name, summary in summaries.items():
        print(f"  {PASS_TITLES[name]}:")
        for line in summary.keypoint_lines():
            print("    " + line)
    print(f"  wrote {', '.join(str(p) for p in written)}; node outputs recorded in "
          f"{', '.join(str(out / f'outputs_{n}') for n in summaries)}")
    return 0
