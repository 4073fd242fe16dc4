"""`bag play` -> `dense-descriptor node` -> `bag record` across processes over real DDS reproduces what `bag
process` computes offline from the same bag; the recorder also keeps the played bytes unchanged, /clock
follows the bag's time, and --count / Ctrl-C end recordings with complete bags."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from dense_descriptor_ros.bag.io import BagReader
from dense_descriptor_ros.bag.process import OUTPUT_TOPICS, ProcessOptions, process_bag
from dense_descriptor_ros.node.params import NodeSettings
from dense_descriptor_ros.pipeline.outputs import descriptor_map_from_msg

from ..node.rosgraph import Process, ros_env, start_node
from .conftest import decoded, keypoint_table, messages

pytest.importorskip("rclpy")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOMAIN = 215 + os.getpid() % 17  # 215-231: clear of the node (110-159) and camera (100-199) tests
BAG = [sys.executable, "-m", "dense_descriptor_ros.bag.cli"]
INPUTS = ["/color/image_raw", "/aligned_depth_to_color/image_raw", "/color/camera_info"]
RATE = 0.5  # half speed: 15 frames/s, which the node keeps up with on a busy 2-core machine


def test_play_node_record_reproduces_bag_process(sample_bag, model_files, tmp_path):
    env = ros_env(DOMAIN)
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}",
                      "-p", f"keypoints_file:={model_files / 'kp.json'}")
    recorded, counted = tmp_path / "recorded", tmp_path / "counted"
    recorder = Process([*BAG, "record", str(recorded), OUTPUT_TOPICS["keypoints"], OUTPUT_TOPICS["descriptors"],
                        *INPUTS, "/clock", "--storage", "sqlite3"], env)
    counter = Process([*BAG, "record", str(counted), "clock", "--count", "5", "--duration", "60"], env)
    player = None
    try:
        node.wait_for_line("active:", timeout=90)
        recorder.wait_for_line(f"recording {OUTPUT_TOPICS['keypoints']}", timeout=30)
        recorder.wait_for_line(f"recording {OUTPUT_TOPICS['descriptors']}", timeout=30)
        # reliable: the node's best-effort subscriptions match it too, and the recorder then records reliably;
        # two subscribers (the node and the recorder) on every input before the first message
        player = Process([*BAG, "play", str(sample_bag), "--rate", str(RATE), "--clock", "--wait-subscribers", "2",
                          "--qos-reliability", "reliable", "--topics", *INPUTS], env)
        assert player.proc.wait(timeout=60) == 0, player.output
        assert "published: /color/image_raw 30" in player.output
        counter.wait_for_line("stopped (5 messages on every topic)", timeout=20)
        time.sleep(1.0)  # the node's last frames
    finally:
        rc = recorder.stop()
        counter.stop()
        node.stop()
        if player is not None:
            player.stop()
    assert rc == 0 and "stopped (interrupted)" in recorder.output, recorder.output
    assert counter.proc.returncode == 0 and len(messages(counted, "/clock")) == 5

    # the same pipeline offline
    expected_bag = tmp_path / "processed"
    settings = NodeSettings(model_path=str(model_files / "m.onnx"), keypoints_file=str(model_files / "kp.json"))
    process_bag(sample_bag, expected_bag, settings, ProcessOptions(progress=False), log=lambda *a: None)
    expected = keypoint_table(decoded(expected_bag, OUTPUT_TOPICS["keypoints"]))
    got = keypoint_table(decoded(recorded, OUTPUT_TOPICS["keypoints"]))
    assert len(got) >= 20, f"only {len(got)} of 30 frames came back:\n{node.output[-2000:]}"
    assert set(got) <= set(expected)
    both_3d = only_offline = 0
    for stamp, kp in got.items():
        ref = expected[stamp]
        np.testing.assert_allclose(kp[:, :2], ref[:, :2], atol=1e-3, equal_nan=True)  # pixels, found or not
        np.testing.assert_allclose(kp[:, 5], ref[:, 5], atol=1e-4)  # scores
        ok = np.isfinite(kp[:, 4]) & np.isfinite(ref[:, 4])
        np.testing.assert_allclose(kp[ok, 2:5], ref[ok, 2:5], atol=1e-4)
        assert not (np.isfinite(kp[:, 4]) & ~np.isfinite(ref[:, 4])).any()
        both_3d += int(ok.sum())
        only_offline += int((~np.isfinite(kp[:, 4]) & np.isfinite(ref[:, 4])).sum())
    # 3D wherever bag process has it, except perhaps a first frame the node saw before any camera info
    assert both_3d >= 10 and only_offline <= 3
    exp_maps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec: m
                for m in decoded(expected_bag, OUTPUT_TOPICS["descriptors"])}
    for m in decoded(recorded, OUTPUT_TOPICS["descriptors"]):
        ref = exp_maps[m.header.stamp.sec * 10**9 + m.header.stamp.nanosec]
        np.testing.assert_allclose(descriptor_map_from_msg(m).astype(np.float32),
                                   descriptor_map_from_msg(ref).astype(np.float32), atol=2e-3)

    # the recorder kept every played message, bytes unchanged (Fast DDS pads the CDR payload with zeros to a
    # multiple of 4 bytes), in order; /clock carried the bag's time
    assert "recording /color/image_raw (sensor_msgs/msg/Image, reliable" in recorder.output, recorder.output
    for topic in INPUTS:
        rec, orig = ([raw for _, raw in messages(bag, topic)] for bag in (recorded, sample_bag))
        assert len(rec) == len(orig) == 30, topic
        for a, b in zip(rec, orig, strict=True):
            assert a[:len(b)] == b and a[len(b):] == bytes(len(a) - len(b)) and len(a) - len(b) < 4, topic
    clock = decoded(recorded, "/clock")
    with BagReader(sample_bag) as r:
        start, end = r.start_ns, r.end_ns
    t = np.array([c.clock.sec * 10**9 + c.clock.nanosec for c in clock])
    assert len(t) >= 10 and (np.diff(t) > 0).all() and start <= t[0] and t[-1] <= end + 2 * 10**8
    with BagReader(recorded) as r:
        assert r.storage == "sqlite3"
        q = r.topics[OUTPUT_TOPICS["keypoints"]].offered_qos
        assert q and q[0].reliability.name == "RELIABLE"


def test_play_and_record_report_bad_arguments(sample_bag, tmp_path):
    import subprocess

    env = ros_env(DOMAIN)
    p = subprocess.run([*BAG, "play", str(sample_bag), "--topics", "/nope"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "has no topic /nope" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*BAG, "play", str(tmp_path / "missing")], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "does not exist" in p.stderr
    (tmp_path / "exists").mkdir()
    p = subprocess.run([*BAG, "record", str(tmp_path / "exists"), "/x", "--duration", "1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "exists already" in p.stderr


def test_play_loop_start_remap_and_an_absent_topic(short_bags, tmp_path):
    """--start skips the bag's first frames, --remap renames, --loop replays until Ctrl-C; a recorder whose
    topic never appears still leaves a complete (empty) bag."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    env = ros_env(DOMAIN)
    empty = Process([*BAG, "record", str(tmp_path / "empty"), "/never", "--duration", "2"], env)
    os.environ.update(env)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    node = rclpy.create_node("play_probe", context=ctx)
    got: list[int] = []
    node.create_subscription(Image, "/remapped", lambda m: got.append(m.header.stamp.sec * 10**9
                                                                      + m.header.stamp.nanosec),
                             qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spinning = True

    def spin():
        while spinning:
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    player = Process([*BAG, "play", str(short_bags["mcap"]), "--loop", "--start", "0.05", "--topics",
                      "/color/image_raw", "--remap", "/color/image_raw:=/remapped", "--wait-subscribers", "1"], env)
    try:
        player.wait_for_line("pass 3", timeout=40)
    finally:
        rc = player.stop()
        spinning = False
        thread.join(timeout=2)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert rc == 0 and "stopped" in player.output and "/color/image_raw -> /remapped" in player.output
    stamps = sorted(set(s for s, _ in messages(short_bags["mcap"], "/color/image_raw")))
    expected = [s for s in stamps if s >= stamps[0] + 5 * 10**7]  # frames 2.. (33 ms apart)
    assert set(got) == set(expected) and len(got) >= 2 * len(expected)
    assert empty.proc.wait(timeout=30) == 0 and "never appeared" in empty.output
    with BagReader(tmp_path / "empty") as r:
        assert r.message_count == 0


def test_play_and_record_start_without_torch():
    """The ROS commands stay light: no torch import (about 3 s) before they publish or record."""
    import subprocess

    code = ("import sys, dense_descriptor_ros.bag.cli, dense_descriptor_ros.bag.play, dense_descriptor_ros.bag.record;"
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_replay_qos_follows_the_record_and_keeps_reliable_history_for_repairs():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from dense_descriptor_ros.bag.io import qos_profile
    from dense_descriptor_ros.bag.rclpy_io import RELIABLE_REPLAY_DEPTH, qos_from_recorded

    camera = [qos_profile(reliable=False, depth=5)]  # as the sample bag records its sensor topics
    q = qos_from_recorded(camera, "sensor_msgs/msg/Image", "/color/image_raw")
    assert (q.reliability, q.depth, q.durability) == (ReliabilityPolicy.BEST_EFFORT, 5, DurabilityPolicy.VOLATILE)
    # forced reliable: the recorded depth 5 would overwrite a lost frame before Fast DDS resends it
    q = qos_from_recorded(camera, "sensor_msgs/msg/Image", "/color/image_raw", "reliable")
    assert (q.reliability, q.depth) == (ReliabilityPolicy.RELIABLE, RELIABLE_REPLAY_DEPTH)
    q = qos_from_recorded([qos_profile(reliable=True, depth=500, transient_local=True)], "std_msgs/msg/String", "/a")
    assert (q.reliability, q.depth, q.durability) == (ReliabilityPolicy.RELIABLE, 500,
                                                      DurabilityPolicy.TRANSIENT_LOCAL)
    q = qos_from_recorded([], "sensor_msgs/msg/CameraInfo", "/tf_static")
    assert (q.reliability, q.depth, q.durability) == (ReliabilityPolicy.BEST_EFFORT, 10,
                                                      DurabilityPolicy.TRANSIENT_LOCAL)
    q = qos_from_recorded([], "tf2_msgs/msg/TFMessage", "/tf", "auto")
    assert (q.reliability, q.depth) == (ReliabilityPolicy.RELIABLE, RELIABLE_REPLAY_DEPTH)
