"""The descriptor node under faults, over real DDS between processes (issue 19; the tests are
test/node/test_node_faults.py).

One `dense-descriptor node` (shipped model, default parameters) and, per fault, `dense-descriptor sim camera`
processes; this script subscribes to every output of the node (as a consumer would: all outputs are computed)
and to /diagnostics, and times each output from its input stamp (the camera's clock at publishing, this
machine's) to its arrival here.

1. Flood: the camera publishes --flood-rate Hz (ten times the normal 30 Hz) for --flood-seconds: frames
   published, processed and dropped while busy (the node's /diagnostics), output latency, the node's
   resident memory (VmRSS) once warm and at the end.
2. Restart: a 320x240 camera at 30 Hz stops; a second camera process starts at --restart-size (new camera
   info); the time from its first frame (its log line) to the first output at the new size. --restarts times.
3. Stalled subscriber: a camera at 30 Hz and `dense-descriptor bag record` of the node's outputs (reliable,
   as the node offers them); the recorder is stopped (SIGSTOP) for --stall-seconds, then continued and ended
   with Ctrl-C: output rate and latency here before and during the stop, what the recorder got.

    .venv/bin/python benchmarks/node_faults.py
    .venv/bin/python benchmarks/node_faults.py --flood-rate 600 --restarts 5 --json faults.json

Prints the numbers; --json writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from dense_descriptor_ros.cli_args import size_wh
from dense_descriptor_ros.launcher import Child, pipeline_env, rss_mb, start_child
from dense_descriptor_ros.pipeline.outputs import output_topics
from dense_descriptor_ros.runtime.model_files import default_model_path
from dense_descriptor_ros.sim.sequence import SequenceConfig, cached_sequence

CLI = [sys.executable, "-m", "dense_descriptor_ros.cli"]
NORMAL_HZ = 30.0
FIRST_SIZE = (320, 240)
STRIDE = 8  # the node's default map_stride
FRAMES = 8  # rendered frames per camera (looped)


def wait_line(child: Child, text: str, timeout: float = 60.0) -> str:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if (line := child.seen(text)) is not None:
            return line
        if child.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise SystemExit(f"{text!r} not seen from {child.name}:\n" + "\n".join(child.lines[-30:]))


def log_time(line: str) -> float:
    """Wall-clock time of a ROS log line ("[INFO] [1767000000.123456789] [name]: ...")."""
    return float(re.search(r"\[(\d+\.\d+)\]", line).group(1))


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Probe:
    """Subscribes to the node's outputs and /diagnostics; keeps (arrival wall time, stamp, width, height) of
    every descriptor map and the last diagnostics values."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from dense_descriptor_ros import msg as m

        self.rclpy = rclpy
        rclpy.init()
        self.node = rclpy.create_node(f"faults_probe_{os.getpid()}")
        topics = output_topics()
        self.maps: list[tuple[float, float, int, int]] = []
        self.diag: list[dict[str, str]] = []
        self._lock = threading.Lock()
        types = {"descriptors": m.DescriptorMap, "pca": Image, "keypoints": m.KeypointArray,
                 "correspondences": m.Correspondences}
        self.subs = [self.node.create_subscription(t, topics[k], lambda msg: None, 50) for k, t in types.items()
                     if k != "descriptors"]
        self.subs.append(self.node.create_subscription(m.DescriptorMap, topics["descriptors"], self._map, 50))
        self.subs.append(self.node.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 10))
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _map(self, msg) -> None:
        with self._lock:
            self.maps.append((time.time(), stamp_s(msg.header.stamp), msg.width, msg.height))

    def _diag(self, msg) -> None:
        if msg.status and any(kv.key == "frames_processed" for kv in msg.status[0].values):
            with self._lock:
                self.diag.append({kv.key: kv.value for kv in msg.status[0].values})

    def _run(self) -> None:
        while self._spin and self.rclpy.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def outputs(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, float, int, int]]:
        """(arrival, stamp, width, height) of descriptor maps that arrived in [since, until) (wall clock)."""
        with self._lock:
            return [o for o in self.maps if since <= o[0] < until]

    def wait(self, predicate, timeout: float, what: str) -> None:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if predicate():
                return
            time.sleep(0.02)
        raise SystemExit(f"timed out after {timeout} s waiting for {what}")

    def next_diagnostics(self) -> dict[str, str]:
        n = len(self.diag)
        self.wait(lambda: len(self.diag) > n, 10, "diagnostics")
        return self.diag[-1]

    def close(self) -> None:
        self._spin = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown()


def camera(env: dict[str, str], cache: Path, size: tuple[int, int], rate: float, count: int = 0) -> Child:
    return start_child("camera", [*CLI, "sim", "camera", "--size", f"{size[0]}x{size[1]}", "--frames", str(FRAMES),
                                  "--rate", str(rate), "--count", str(count), "--wait-subscribers", "1",
                                  "--cache", str(cache), "--no-progress"], env, show=False)


def ms(values) -> str:
    v = 1e3 * np.asarray(values)
    return f"p50 {np.median(v):.0f} ms, p95 {np.percentile(v, 95):.0f} ms, max {v.max():.0f} ms"


def flood(probe: Probe, node: Child, env: dict[str, str], cache: Path, rate: float, seconds: float) -> dict:
    cam = camera(env, cache, FIRST_SIZE, rate, count=round(rate * seconds))
    t_cam = time.time()
    probe.wait(lambda: len(probe.outputs(t_cam)) >= 10, 60, "outputs of the flood")
    d0, rss0, t0 = probe.next_diagnostics(), rss_mb(node.proc.pid), time.time()
    rss = [rss0]
    while cam.proc.poll() is None:
        time.sleep(0.5)
        rss.append(rss_mb(node.proc.pid))
    d1, rss1 = probe.next_diagnostics(), rss_mb(node.proc.pid)
    cam.stop()
    m = re.search(r"published (\d+) frames \(([\d.]+) Hz achieved", "\n".join(cam.lines))
    published, hz = int(m.group(1)), float(m.group(2))
    t1 = log_time(wait_line(cam, "on each camera topic: publishing")) + (published - 1) / hz  # its last frame
    got = probe.outputs(t0, t1 + 1.0)
    lat = np.array([a - s for a, s, _, _ in got])
    arrivals = [t0, *[a for a, *_ in got if a <= t1], t1]
    out = {"rate_hz": rate, "seconds": seconds, "published": published, "achieved_hz": hz, "window_s": t1 - t0,
           "processed": int(d1["frames_processed"]) - int(d0["frames_processed"]),
           "dropped_busy": int(d1["frames_dropped_busy"]) - int(d0["frames_dropped_busy"]),
           "received": len(got), "latency_ms_p50": 1e3 * float(np.median(lat)),
           "latency_ms_p95": 1e3 * float(np.percentile(lat, 95)), "latency_ms_max": 1e3 * float(lat.max()),
           "longest_gap_ms": 1e3 * max(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)),
           "rss_mb_before": rss0, "rss_mb_after": rss1, "rss_mb_max": max(rss), "rss_mb_every_0.5s": rss}
    print(f"flood: {published} frames of {FIRST_SIZE[0]}x{FIRST_SIZE[1]} at {hz:.0f} Hz (target {rate:g}); "
          f"over {out['window_s']:.1f} s once warm the node processed {out['processed']} "
          f"({out['processed'] / out['window_s']:.1f} Hz), dropped {out['dropped_busy']} while busy; outputs "
          f"received here {len(got)}")
    print(f"flood: latency stamp -> output received {ms(lat)}; longest gap between outputs "
          f"{out['longest_gap_ms']:.0f} ms; node RSS {rss0:.1f} MB once warm -> {rss1:.1f} MB at the end "
          f"(max {out['rss_mb_max']:.1f})")
    return out


def restart(probe: Probe, env: dict[str, str], cache: Path, size: tuple[int, int], times: int) -> dict:
    """Alternately the first size and `size`: each new camera process is a new resolution."""
    resume, sizes = [], [FIRST_SIZE, size]
    cam = camera(env, cache, FIRST_SIZE, NORMAL_HZ)
    t = time.time()
    probe.wait(lambda: len(probe.outputs(t)) >= 5, 60, "outputs of the first camera")
    for i in range(times):
        cam.stop()
        time.sleep(1.0)
        new = sizes[(i + 1) % 2]
        cells = (-(-new[0] // STRIDE), -(-new[1] // STRIDE))
        cam = camera(env, cache, new, NORMAL_HZ)
        t_first = log_time(wait_line(cam, "on each camera topic: publishing"))
        probe.wait(lambda c=cells, t=t_first: any((w, h) == c for _, _, w, h in probe.outputs(t)), 10,
                   f"outputs at {new[0]}x{new[1]}")
        first = min(a for a, _, w, h in probe.outputs(t_first) if (w, h) == cells)
        resume.append(first - t_first)
        print(f"restart {i + 1}: camera {sizes[i % 2][0]}x{sizes[i % 2][1]} -> new process at {new[0]}x{new[1]}: "
              f"first output at the new size {1e3 * resume[-1]:.0f} ms after its first frame")
    cam.stop()
    r = 1e3 * np.array(resume)
    print(f"restart: {times} restarts, first frame -> first output at the new size p50 {np.median(r):.0f} ms, "
          f"max {r.max():.0f} ms")
    return {"restarts": times, "resume_ms": r.tolist(), "resume_ms_p50": float(np.median(r)),
            "resume_ms_max": float(r.max())}


def stall(probe: Probe, env: dict[str, str], cache: Path, seconds: float, tmp: Path) -> dict:
    from dense_descriptor_ros.bag.io import BagReader

    topics = list(output_topics().values())
    cam = camera(env, cache, FIRST_SIZE, NORMAL_HZ)
    rec = start_child("recorder", [*CLI, "bag", "record", str(tmp / "stall_bag"), *topics], env, show=False)
    for t in topics:
        wait_line(rec, f"recording {t} ")
    t = time.time()
    probe.wait(lambda: len(probe.outputs(t)) >= 5, 60, "outputs")
    time.sleep(1.0)
    t_a = time.time()
    time.sleep(seconds)
    t_s = time.time()
    os.kill(rec.proc.pid, signal.SIGSTOP)
    time.sleep(seconds)
    t_c = time.time()
    os.kill(rec.proc.pid, signal.SIGCONT)
    time.sleep(2.0)
    rc = rec.stop()
    cam.stop()
    with BagReader(tmp / "stall_bag") as r:
        stamps = np.array([stamp_s(r.deserialize(raw, ty).header.stamp) for _, ty, _, raw in r.messages([topics[0]])])
    out = {"seconds": seconds, "recorder_exit": rc, "recorder_messages": len(stamps),
           "recorder_from_stop": int(((stamps > t_s + 0.2) & (stamps < t_c)).sum()),
           "recorder_after_cont": int((stamps > t_c).sum())}
    for name, (a, b) in {"before": (t_a, t_s), "stopped": (t_s, t_c)}.items():
        got = probe.outputs(a, b)
        lat = np.array([x - s for x, s, _, _ in got])
        out[f"{name}_hz"] = len(got) / (b - a)
        out[f"{name}_latency_ms_p50"] = 1e3 * float(np.median(lat))
        out[f"{name}_latency_ms_p95"] = 1e3 * float(np.percentile(lat, 95))
        print(f"stall: healthy subscriber {name:7s} {out[f'{name}_hz']:.1f} Hz, latency {ms(lat)}")
    print(f"stall: the recorder (stopped {seconds:g} s) got {out['recorder_messages']} descriptor maps: "
          f"{out['recorder_from_stop']} of its stop, {out['recorder_after_cont']} in 2 s after SIGCONT; "
          f"exit status after Ctrl-C {rc}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flood-rate", type=float, default=300.0, help="camera rate of the flood [Hz] (default 300)")
    ap.add_argument("--flood-seconds", type=float, default=10.0)
    ap.add_argument("--restart-size", type=size_wh, default=(640, 480), help="the restarted camera's size WxH")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--stall-seconds", type=float, default=5.0)
    ap.add_argument("--domain", type=int, default=58, help="ROS_DOMAIN_ID (default 58: no test uses it)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="node_faults_") as tmp_dir:
        tmp = Path(tmp_dir)
        cache = tmp / "cache"
        for size in {FIRST_SIZE, tuple(args.restart_size)}:
            cached_sequence(SequenceConfig(size=size, frames=FRAMES), cache / "sim_sequences")
        env = pipeline_env(args.domain)
        env.setdefault("OMP_NUM_THREADS", "1")
        os.environ.update(env)
        node = start_child("node", [*CLI, "node", "--ros-args", "-p", f"model_path:={default_model_path('onnx')}",
                                    "-p", "diagnostics_period:=0.5"], env, show=False)
        probe = None
        try:
            print(wait_line(node, "active:", 120).split("]: ", 1)[-1])
            probe = Probe()
            probe.wait(lambda: probe.node.count_publishers(output_topics()["descriptors"]) > 0, 30,
                       "the node's publishers")
            print(f"machine: {os.cpu_count()} cores; node: shipped model, default parameters (processing at "
                  f"320x240, 2 threads)")
            out = {"flood": flood(probe, node, env, cache, args.flood_rate, args.flood_seconds),
                   "restart": restart(probe, env, cache, tuple(args.restart_size), args.restarts),
                   "stall": stall(probe, env, cache, args.stall_seconds, tmp)}
        finally:
            if probe is not None:
                probe.close()
            rc = node.stop()
        print(f"node: one process throughout, exit status {rc} after Ctrl-C")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
