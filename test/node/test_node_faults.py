"""The node under faults, over real DDS between processes (issue 19): a camera that floods it at ten times the
normal rate, a camera that dies and comes back as a new process with another resolution and camera info, and a
reliable subscriber that stalls. Time that jumps backwards (a bag looping with its own clock) is
test_node_lifecycle.py::test_a_bag_looping_with_its_own_clock.

One node (the shipped model, default parameters) serves the module; every test starts its own
`dense-descriptor sim camera` processes. Latency is input stamp (the camera's clock at publishing: this
machine's) to the probe receiving the output. benchmarks/node_faults.py prints the same numbers."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from dense_descriptor_ros.launcher import rss_mb
from dense_descriptor_ros.runtime.model_files import default_model_path
from dense_descriptor_ros.sim.sequence import SequenceConfig, cached_sequence

from .rosgraph import CLI, NODE, Probe, Process, diagnostic_values, ros_env, start_node

pytest.importorskip("rclpy")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOMAIN = 50 + os.getpid() % 7  # 50-56: no other test file uses these
NORMAL = 30.0  # Hz, the camera's normal rate
FLOOD_RATE, FLOOD_S = 300.0, 10.0  # ten times the normal rate, for ten seconds
SMALL, LARGE = (320, 240), (640, 480)  # the camera's resolution before and after its restart
STRIDE = 8  # the node's default map_stride: a DescriptorMap is ceil(W / 8) x ceil(H / 8)
# Bounds that hold on a loaded 2-core machine (measured there: see docs/ros_node.md, "Under faults") and that
# a queueing node misses by far: at 300 Hz, 10 s of queued 320x240 RGB-D frames are ~1.1 GB and seconds of
# latency.
MIN_FLOOD_HZ = 100.0  # the camera must reach this for the flood to be one
MAX_FLOOD_LATENCY_S = 1.0  # every output in the flood's second half
MAX_OUTPUT_GAP_S = 1.0  # outputs keep flowing: no longer silence during the flood or the stall
MAX_RSS_GROWTH_MB = 50.0
MAX_RESUME_S = 1.0  # new camera's first frame -> first output at its resolution (the "within a second")
MIN_STALL_RATE_FRACTION = 0.6  # healthy subscriber's output rate while another is stopped, against before


def time_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_s(msg) -> float:
    return time_s(msg.header.stamp)


def wall(t_monotonic: float) -> float:
    """A monotonic time as time.time() (what the camera stamps with)."""
    return t_monotonic + time.time() - time.monotonic()


def monotonic(t_wall: float) -> float:
    return t_wall - time.time() + time.monotonic()


def log_time(line: str) -> float:
    """The wall-clock time of a ROS log line ("[INFO] [1767000000.123456789] [name]: ...")."""
    m = re.search(r"\[(\d+\.\d+)\]", line)
    assert m, f"no time in {line!r}"
    return float(m.group(1))


def camera(cache: Path, size: tuple[int, int], rate: float, count: int = 0) -> Process:
    """A simulated camera process (frames rendered by the module fixture) that starts once the node listens."""
    return Process([*CLI, "sim", "camera", "--size", f"{size[0]}x{size[1]}", "--frames", "8", "--rate", str(rate),
                    "--count", str(count), "--wait-subscribers", "1", "--cache", str(cache), "--no-progress"],
                   ros_env(DOMAIN))


def achieved_hz(cam: Process) -> tuple[int, float]:
    """(frames published, rate achieved) from the camera's last line."""
    m = re.search(r"published (\d+) frames \(([\d.]+) Hz achieved", cam.output)
    assert m, cam.output[-2000:]
    return int(m.group(1)), float(m.group(2))


def outputs(probe: Probe, key: str, since: float, until: float = float("inf")) -> list[tuple[float, object]]:
    """(arrival, message) of `key` received in [since, until) (monotonic)."""
    return [(t, m) for t, m in probe.timed(key) if since <= t < until]


def latencies_s(timed: list[tuple[float, object]]) -> np.ndarray:
    return np.array([wall(t) - stamp_s(m) for t, m in timed])


def max_gap_s(times: list[float], since: float, until: float) -> float:
    """Longest interval of [since, until] without an arrival."""
    edges = [since, *[t for t in times if since <= t <= until], until]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def next_diagnostics(probe: Probe) -> dict[str, str]:
    n = len(probe.get("diagnostics"))
    probe.wait_for(lambda: len(probe.get("diagnostics")) > n, 10, "diagnostics")
    return diagnostic_values(probe.get("diagnostics")[-1])


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    cache = tmp_path_factory.mktemp("seq_cache")
    for size in (SMALL, LARGE):  # rendered here once; the camera processes load them
        cached_sequence(SequenceConfig(size=size, frames=8), cache / "sim_sequences")
    node = start_node(DOMAIN, "-p", f"model_path:={default_model_path('onnx')}", "-p", "diagnostics_period:=0.5")
    probe = Probe(DOMAIN)
    try:
        node.wait_for_line("active:", timeout=60)
        probe.wait_for(lambda: all(s.get_publisher_count() > 0 for s in probe.subs.values()), 20,
                       "the node's publishers")
        yield node, probe, cache
    finally:
        probe.close()
        assert node.stop() == 0, node.output[-3000:]


def test_a_flood_drops_old_frames_and_keeps_latency_and_memory_bounded(graph):
    """300 Hz for 10 s: the node processes the newest frame when it is free and drops the rest (counted as
    frames_dropped_busy) instead of queueing them, so outputs keep flowing, latency stays that of one frame
    and memory stays flat."""
    node, probe, cache = graph
    cam = camera(cache, SMALL, FLOOD_RATE, count=int(FLOOD_RATE * FLOOD_S))
    try:
        t_cam = time.monotonic()
        probe.wait_for(lambda: len(outputs(probe, "descriptors", t_cam)) >= 10, 30, "outputs of the flood")
        d0, rss0, t0 = next_diagnostics(probe), rss_mb(node.proc.pid), time.monotonic()
        assert cam.proc.wait(FLOOD_S + 30) == 0, cam.output[-2000:]
        d1, rss1 = next_diagnostics(probe), rss_mb(node.proc.pid)
    finally:
        cam.stop()
    published, hz = achieved_hz(cam)
    # the camera's last frame (its first one, from its log, plus the frames at the rate it achieved)
    t1 = monotonic(log_time(cam.wait_for_line("on each camera topic: publishing")) + (published - 1) / hz)
    got = outputs(probe, "descriptors", t0, t1 + MAX_FLOOD_LATENCY_S)
    processed = int(d1["frames_processed"]) - int(d0["frames_processed"])
    dropped = int(d1["frames_dropped_busy"]) - int(d0["frames_dropped_busy"])
    print(f"flood: {published} frames at {hz:.0f} Hz; in {t1 - t0:.1f} s the node processed {processed}, dropped "
          f"{dropped} busy, the probe got {len(got)}; RSS {rss0:.1f} -> {rss1:.1f} MB")
    assert hz >= MIN_FLOOD_HZ, f"the camera reached only {hz:.0f} Hz: not a flood"
    # here ~4 frames dropped per frame processed; half a frame is enough to show that the flood outran the node
    assert processed > 0 and dropped >= processed / 2, "the node did not drop the frames that came while it was busy"
    assert len(got) >= processed // 2
    gap = max_gap_s([t for t, _ in got], t0, t1)
    late = latencies_s([(t, m) for t, m in got if t >= (t0 + t1) / 2])
    print(f"flood: latency in the second half p50 {1e3 * np.median(late):.0f} ms, max {1e3 * late.max():.0f} ms; "
          f"longest gap between outputs {1e3 * gap:.0f} ms")
    assert gap <= MAX_OUTPUT_GAP_S
    assert late.max() <= MAX_FLOOD_LATENCY_S, "latency grew during the flood: frames are queued"
    assert rss1 - rss0 <= MAX_RSS_GROWTH_MB
    assert node.alive()


def test_a_camera_restarted_with_another_resolution(graph):
    """The camera process stops; a new one publishes 640x480 with its own camera info. The node, not restarted,
    resumes within a second of the new camera's first frame, with outputs at the new size whose 3D points use
    the new intrinsics."""
    node, probe, cache = graph
    cam = camera(cache, SMALL, NORMAL)
    try:
        t_a = time.monotonic()
        probe.wait_for(lambda: len(outputs(probe, "descriptors", t_a)) >= 5, 30, "outputs of the first camera")
    finally:
        assert cam.stop() == 0, cam.output[-2000:]
    old, new = (SMALL[0] // STRIDE, SMALL[1] // STRIDE), (LARGE[0] // STRIDE, LARGE[1] // STRIDE)
    assert {(m.width, m.height) for _, m in outputs(probe, "descriptors", t_a)} == {old}
    time.sleep(1.0)  # no camera
    cam = camera(cache, LARGE, NORMAL)
    try:
        t_first = log_time(cam.wait_for_line("on each camera topic: publishing", 30))
        probe.wait_for(lambda: sum((m.width, m.height) == new for _, m in probe.timed("descriptors")) >= 5, 10,
                       "outputs at the new resolution")
        probe.wait_for(lambda: sum(time_s(c.stamp_a) >= t_first for c in probe.get("correspondences")) >= 5, 10,
                       "correspondences between frames of the new camera")
    finally:
        assert cam.stop() == 0, cam.output[-2000:]
    first_new = min(t for t, m in probe.timed("descriptors") if (m.width, m.height) == new)
    resume = wall(first_new) - t_first
    print(f"restart: first output at {LARGE[0]}x{LARGE[1]} {1e3 * resume:.0f} ms after the new camera's first frame")
    assert resume <= MAX_RESUME_S
    # 3D points of pairs within the new camera lie on the rays of their pixels under the new K: the old K (half
    # the focal lengths and centre) would put them 2x off
    K = cached_sequence(SequenceConfig(size=LARGE, frames=8), cache / "sim_sequences").K
    errors = []
    for c in probe.get("correspondences"):
        if time_s(c.stamp_a) < t_first:
            continue
        n = len(c.scores)
        valid = np.asarray(c.points_valid, bool)
        pb = np.asarray(c.points_b, np.float64).reshape(n, 3)[valid]
        uv = np.asarray(c.pixels_b, np.float64).reshape(n, 2)[valid]
        proj = pb[:, :2] / pb[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        errors += np.linalg.norm(proj - uv, axis=1).tolist()
    assert len(errors) >= 20 and np.median(errors) < 1.0, (len(errors), np.median(errors) if errors else None)
    assert node.alive()


def test_a_stalled_subscriber_does_not_slow_the_others(graph, tmp_path):
    """A reliable subscriber (`dense-descriptor bag record` of the node's outputs) is stopped with SIGSTOP for
    5 s: the node's reliable writers keep only their last qos_depth messages for it instead of blocking, so the
    probe (another subscriber) keeps its rate and latency; after SIGCONT the recorder gets new messages and
    exits cleanly with a complete bag."""
    from dense_descriptor_ros.bag.io import BagReader

    node, probe, cache = graph
    topics = [f"{NODE}/descriptors", f"{NODE}/descriptors/pca", f"{NODE}/keypoints", f"{NODE}/correspondences"]
    cam = camera(cache, SMALL, NORMAL)
    rec = Process([*CLI, "bag", "record", str(tmp_path / "bag"), *topics], ros_env(DOMAIN))
    try:
        for t in topics:
            assert "reliable" in rec.wait_for_line(f"recording {t} ", 30)
        probe.wait_for(lambda: probe.node.count_subscribers(topics[0]) >= 2, 10, "the recorder to subscribe")
        t_a = time.monotonic()
        probe.wait_for(lambda: len(outputs(probe, "descriptors", t_a)) >= 5, 30, "outputs")
        t_a = time.monotonic()
        time.sleep(2.0)
        t_s = time.monotonic()
        os.kill(rec.proc.pid, signal.SIGSTOP)
        time.sleep(5.0)
        t_c = time.monotonic()
        os.kill(rec.proc.pid, signal.SIGCONT)
        time.sleep(2.0)
        assert rec.stop() == 0, rec.output[-2000:]
    finally:
        if rec.proc.poll() is None:
            os.kill(rec.proc.pid, signal.SIGCONT)
        rec.stop()
        cam.stop()
    before, stalled = outputs(probe, "descriptors", t_a, t_s), outputs(probe, "descriptors", t_s, t_c)
    rate_before, rate_stalled = len(before) / (t_s - t_a), len(stalled) / (t_c - t_s)
    lat_before, lat_stalled = latencies_s(before), latencies_s(stalled)
    gap = max_gap_s([t for t, _ in stalled], t_s, t_c)
    print(f"stall: healthy subscriber {rate_before:.1f} Hz before, {rate_stalled:.1f} Hz while the recorder is "
          f"stopped; latency p50 {1e3 * np.median(lat_before):.0f} -> {1e3 * np.median(lat_stalled):.0f} ms, max "
          f"{1e3 * lat_before.max():.0f} -> {1e3 * lat_stalled.max():.0f} ms; longest gap {1e3 * gap:.0f} ms")
    assert rate_before >= 5.0 and rate_stalled >= MIN_STALL_RATE_FRACTION * rate_before
    assert gap <= MAX_OUTPUT_GAP_S
    assert np.median(lat_stalled) <= 2 * np.median(lat_before) + 0.1
    with BagReader(tmp_path / "bag") as r:
        stamps = np.array([stamp_s(r.deserialize(raw, t)) for _, t, _, raw in r.messages([topics[0]])])
    in_stall = int(((stamps > wall(t_s) + 0.2) & (stamps < wall(t_c))).sum())
    resumed = int((stamps > wall(t_c)).sum())
    print(f"stall: recorder got {len(stamps)}, {in_stall} of the frames of its stop, {resumed} after SIGCONT")
    # the node's writers kept no backlog for it (KEEP_LAST qos_depth = 5 per topic; measured: 1 message)
    assert in_stall <= 15
    assert resumed >= 10, f"the recorder got {resumed} new frames after SIGCONT"
    assert node.alive()
