"""End-to-end latency and memory of the descriptor node over real DDS, against bare inference.

Three processes, as on a robot: `dense-descriptor sim camera` publishes a rendered RGB-D sequence (colour,
depth, camera info) at --rate; `dense-descriptor node` processes it; this script subscribes to every
output of the node and measures, per frame, input stamp -> last output received (the camera stamps
with its clock at publish time; all processes share this machine's clock). It samples the node's
resident memory, and finally runs the same pipeline in-process on the same frames ("bare": no DDS, no
message decoding or building, no other processes) for the overhead ratio.

    .venv/bin/python benchmarks/node_latency.py                      # 300 frames at 640x480, 30 Hz
    .venv/bin/python benchmarks/node_latency.py --frames 1000        # soak: memory growth over 1000 frames

Prints a table; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_descriptor_ros.cli_args import size_wh  # noqa: E402
from dense_descriptor_ros.launcher import pipeline_env, rss_mb  # noqa: E402
from dense_descriptor_ros.node.stats import STAGES  # noqa: E402
from dense_descriptor_ros.pipeline.outputs import output_topics  # noqa: E402
from dense_descriptor_ros.runtime.model_files import default_model_path  # noqa: E402

OUTPUTS = tuple(output_topics())


def wait_line(proc: subprocess.Popen, lines: list[str], text: str, timeout: float) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if any(text in s for s in lines):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"{text!r} not seen; output:\n" + "\n".join(lines[-30:]))


def start(args: list[str], e: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    p = subprocess.Popen(args, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: [lines.append(s.rstrip()) for s in p.stdout], daemon=True).start()
    return p, lines


def bare(model: Path, seq, resolution: tuple[int, int], threads: int, keypoints: Path | None, n: int,
         outputs: tuple[str, ...], part_probe: Path | None = None) -> dict:
    """The same pipeline in-process on the same frames: extraction alone, and the outputs measured."""
    from dense_descriptor_ros.matching.keypoints import ReferenceKeypoints
    from dense_descriptor_ros.node.params import NodeSettings
    from dense_descriptor_ros.pipeline import FrameProcessor, Wanted, make_frame

    s = NodeSettings(resolution=resolution, num_threads=threads)
    from dense_descriptor_ros.runtime import DescriptorExtractor

    ex = DescriptorExtractor.load(model, s.extractor_config())
    ref = ReferenceKeypoints.load(keypoints) if keypoints else None
    from dense_descriptor_ros.runtime.part_probe import PartProbe

    proc = FrameProcessor(ex, ref, s.pipeline_config(), PartProbe.load(part_probe) if part_probe else None)
    wanted = Wanted(**{k: k in outputs for k in OUTPUTS})
    t_ext, t_all = [], []
    for i in range(n):
        f = i % len(seq.rgb)
        t0 = time.perf_counter()
        ex.extract(seq.rgb[f])
        t_ext.append((time.perf_counter() - t0) * 1e3)
        frame = make_frame(seq.rgb[f], seq.depth[f], seq.K, i, "cam")
        t0 = time.perf_counter()
        proc.process(frame, wanted)
        t_all.append((time.perf_counter() - t0) * 1e3)
    return {"extract_ms_p50": float(np.median(t_ext[5:])), "pipeline_ms_p50": float(np.median(t_all[5:])),
            "pipeline_ms_p95": float(np.percentile(t_all[5:], 95))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=default_model_path("onnx"))
    ap.add_argument("--keypoints", type=Path, default=None, help="keypoint file (default: the shipped one if "
                                                                 "the model is the shipped one)")
    ap.add_argument("--size", type=size_wh, default=(640, 480), help="camera image size WxH")
    ap.add_argument("--resolution", type=size_wh, default=(320, 240), help="node processing resolution WxH")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--frames", type=int, default=300, help="frames published")
    ap.add_argument("--warmup", type=int, default=30, help="first frames left out of the statistics")
    ap.add_argument("--outputs", nargs="+", choices=OUTPUTS, default=list(OUTPUTS),
                    help="node outputs to subscribe to (the node computes only these; default: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"model {args.model} not found (pass --model)")
    kp = args.keypoints
    if kp is None and (args.model.parent / "mug_keypoints.json").is_file():
        kp = args.model.parent / "mug_keypoints.json"
    # the part probe of the labels output (issue #15): the one beside the model, as the node finds the shipped one
    part_probe = args.model.parent / "part_probe.safetensors"
    part_probe = part_probe if part_probe.is_file() else None

    from dense_descriptor_ros.sim.sequence import SequenceConfig, cached_sequence

    cache = Path(os.environ.get("DENSE_DESCRIPTOR_CACHE", Path.home() / ".cache" / "dense_descriptor_ros"))
    seq = cached_sequence(SequenceConfig(size=args.size, frames=60), cache / "sim_sequences", progress=True)

    domain = 200 + os.getpid() % 30
    e = pipeline_env(domain)
    cli = [sys.executable, "-m", "dense_descriptor_ros.cli"]
    node, node_lines = start([*cli, "node", "--ros-args", "-p", f"model_path:={args.model}",
                              "-p", f"keypoints_file:={kp or 'none'}", "-p", f"num_threads:={args.threads}",
                              "-p", f"part_probe_file:={part_probe or 'none'}",
                              "-p", f"resolution:=[{args.resolution[0]}, {args.resolution[1]}]"], e)
    wait_line(node, node_lines, "active:", 120)

    os.environ.update(e)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    probe = rclpy.create_node("latency_probe")
    arrivals: dict[int, dict[str, int]] = defaultdict(dict)

    def keep(key):
        def cb(msg):
            st = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            arrivals[st][key] = probe.get_clock().now().nanoseconds
        return cb

    from dense_descriptor_ros.node.descriptor_node import message_class
    from dense_descriptor_ros.pipeline.outputs import OUTPUT_TYPES

    topics = output_topics()
    subs = [probe.create_subscription(message_class(OUTPUT_TYPES[k]), topics[k], keep(k), 50) for k in args.outputs]
    from diagnostic_msgs.msg import DiagnosticArray

    diag: dict[str, str] = {}
    subs.append(probe.create_subscription(DiagnosticArray, "/diagnostics",
                                          lambda m: diag.update({kv.key: kv.value for kv in m.status[0].values}), 10))
    ex = SingleThreadedExecutor()
    ex.add_node(probe)
    cam, cam_lines = start([*cli, "sim", "camera", "--size", f"{args.size[0]}x{args.size[1]}", "--frames", "60",
                            "--rate", str(args.rate), "--count", str(args.frames), "--wait-subscribers", "1",
                            "--cache", str(cache / "sim_sequences"), "--no-progress"], e)
    rss = []
    t_end = time.monotonic() + args.frames / args.rate + 60
    next_rss = 0.0
    while cam.poll() is None and time.monotonic() < t_end:
        ex.spin_once(timeout_sec=0.01)
        if time.monotonic() >= next_rss:
            rss.append((len(arrivals), rss_mb(node.pid)))
            next_rss = time.monotonic() + 1.0
    for _ in range(100):  # the last outputs
        ex.spin_once(timeout_sec=0.01)
    rss.append((len(arrivals), rss_mb(node.pid)))
    node.send_signal(2)
    node.wait(20)
    del subs
    probe.destroy_node()
    rclpy.try_shutdown()

    stamps = sorted(arrivals)
    expected = {k for k in args.outputs if (kp or k != "keypoints") and (part_probe or k != "labels")}
    complete = [s for s in stamps if set(arrivals[s]) == expected
                or (s == stamps[0] and set(arrivals[s]) == expected - {"correspondences"})]
    lat = np.array([(max(arrivals[s].values()) - s) / 1e6 for s in complete[args.warmup:]])
    first = args.outputs[0]
    first_desc = np.array([(arrivals[s][first] - s) / 1e6 for s in complete[args.warmup:] if first in arrivals[s]])
    steady = [r for n, r in rss if n >= args.warmup]
    b = bare(args.model, seq, args.resolution, args.threads, kp, min(200, args.frames), tuple(args.outputs),
             part_probe)
    out = {
        "published": args.frames, "processed": len(stamps), "complete": len(complete),
        "rate_hz": args.rate, "size": list(args.size), "resolution": list(args.resolution),
        "latency_ms_p50": float(np.median(lat)), "latency_ms_p95": float(np.percentile(lat, 95)),
        "descriptors_latency_ms_p50": float(np.median(first_desc)),
        "output_rate_hz": len(stamps) / (args.frames / args.rate),
        "rss_mb_start": steady[0] if steady else float("nan"), "rss_mb_end": steady[-1] if steady else float("nan"),
        **b,
        "node_ms_p50": float(diag.get("node_ms_p50", "nan")), "node_ms_p95": float(diag.get("node_ms_p95", "nan")),
        "node_process_ms_p50": float(diag.get("process_ms_p50", "nan")),
        "node_dropped_busy": int(diag.get("frames_dropped_busy", "0")),
        **{f"node_{k}_ms_p50": float(diag.get(f"{k}_ms_p50", "nan")) for k in STAGES},
    }
    out["overhead_vs_bare_pipeline"] = out["latency_ms_p50"] / b["pipeline_ms_p50"] - 1.0
    print(f"camera {args.size[0]}x{args.size[1]} at {args.rate:g} Hz, node at {args.resolution[0]}x"
          f"{args.resolution[1]}, {args.threads} threads, model {args.model.name}, outputs {' '.join(args.outputs)}")
    print(f"frames published {args.frames}, processed {len(stamps)} ({out['output_rate_hz']:.1f} Hz), "
          f"all outputs received for {len(complete)}")
    print(f"end-to-end latency (stamp -> last output received): p50 {out['latency_ms_p50']:.1f} ms, "
          f"p95 {out['latency_ms_p95']:.1f} ms; {first} alone p50 {out['descriptors_latency_ms_p50']:.1f} ms")
    print(f"bare in-process: extraction p50 {b['extract_ms_p50']:.1f} ms, whole pipeline p50 "
          f"{b['pipeline_ms_p50']:.1f} ms (p95 {b['pipeline_ms_p95']:.1f})")
    print(f"inside the node (its /diagnostics, last {min(300, len(stamps))} frames): inputs received -> outputs "
          f"published p50 {out['node_ms_p50']:.1f} ms (p95 {out['node_ms_p95']:.1f}), of which the pipeline p50 "
          f"{out['node_process_ms_p50']:.1f} ms; frames dropped while busy {out['node_dropped_busy']}")
    print("node stages p50 (ms): " + ", ".join(f"{k} {out[f'node_{k}_ms_p50']:.2f}" for k in STAGES)
          + f", pipeline {out['node_process_ms_p50']:.2f}")
    out["node_overhead_vs_own_pipeline"] = out["node_ms_p50"] / out["node_process_ms_p50"] - 1.0
    print(f"the node's own overhead (inputs received -> published, over its pipeline on the same frames): "
          f"{100 * out['node_overhead_vs_own_pipeline']:+.0f}%; over the bare pipeline (quiet machine): "
          f"{100 * (out['node_ms_p50'] / b['pipeline_ms_p50'] - 1):+.0f}%; end to end over the bare pipeline: "
          f"{100 * out['overhead_vs_bare_pipeline']:+.0f}%")
    print(f"node memory (RSS) after warm-up {out['rss_mb_start']:.1f} MB -> at the end {out['rss_mb_end']:.1f} MB "
          f"({out['rss_mb_end'] - out['rss_mb_start']:+.1f} MB over {len(stamps)} frames)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
