"""`bag record` under SIGKILL and with splits, over real DDS between processes: a publisher in this process
counts what it sent, the recorder is killed mid-stream, `bag recover` rebuilds the bag, and what comes back
is every message sent up to the flush bound before the kill; a split bag played and recorded with splits
round-trips message for message."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dense_descriptor_ros.bag.io import BagReader

from ..node.rosgraph import Process, ros_env
from .test_split import split_copy

pytest.importorskip("rclpy")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOMAIN = 200 + os.getpid() % 15  # 200-214: no other test file uses these
BAG = [sys.executable, "-m", "dense_descriptor_ros.bag.cli"]
TOPIC = "/crash/image"
RATE_HZ = 30.0
FLUSH_S = 0.5  # bag record's default --flush-interval
BOUND_S = 1.0  # what the docs promise a kill can lose: the flush interval plus delivery and one loop pass


class Publisher:
    """An rclpy node in this process publishing numbered 160x120 images, reliable."""

    def __init__(self) -> None:
        os.environ.update(ros_env(DOMAIN))
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.rclpy, self.Image = rclpy, Image
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=DOMAIN)
        self.node = rclpy.create_node(f"crash_pub_{os.getpid()}", context=self.ctx)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, TOPIC, qos)
        self.sent = 0

    def message(self, i: int):
        m = self.Image(height=120, width=160, encoding="mono8", step=160)
        m.header.frame_id = str(i)
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(i, 1000)
        m.data = bytes([i % 251]) * (160 * 120)
        return m

    def wait_for_subscriber(self, timeout: float = 20.0) -> None:
        t_end = time.monotonic() + timeout
        while self.pub.get_subscription_count() < 1:
            assert time.monotonic() < t_end, "the recorder never subscribed"
            time.sleep(0.05)

    def publish_for(self, seconds: float) -> None:
        t0, n0 = time.monotonic(), self.sent
        while time.monotonic() - t0 < seconds:
            self.pub.publish(self.message(self.sent))
            self.sent += 1
            time.sleep(max(0.0, t0 + (self.sent - n0) / RATE_HZ - time.monotonic()))

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.ctx)


def _frames(bag: Path) -> list[int]:
    with BagReader(bag) as r:
        return [int(r.deserialize(raw, t).header.frame_id) for _, t, _, raw in r.messages([TOPIC])]


@pytest.mark.parametrize(("storage", "extra"), [("mcap", []), ("sqlite3", []), ("mcap", ["--max-bag-duration", "1"])],
                         ids=["mcap", "sqlite3", "mcap-split"])
def test_sigkill_mid_stream_then_recover_returns_all_but_the_flush_bound(tmp_path, storage, extra):
    env = ros_env(DOMAIN)
    out = tmp_path / "rec"
    recorder = Process([*BAG, "record", str(out), TOPIC, "--storage", storage, *extra], env)
    pub = Publisher()
    try:
        recorder.wait_for_line(f"recording {TOPIC}", timeout=60)
        pub.wait_for_subscriber()
        pub.publish_for(3.3)
        sent = pub.sent
        recorder.proc.send_signal(signal.SIGKILL)
        recorder.proc.wait(timeout=10)
    finally:
        recorder.stop()
        pub.close()
    assert recorder.proc.returncode == -signal.SIGKILL
    partial = Path(re.search(r"writing (\S+) \(renamed", recorder.output).group(1))
    assert partial.is_dir() and not out.exists()
    if "--max-bag-duration" in extra:  # the closed splits are complete files on their own; the open one is not
        files = sorted(partial.glob("*.mcap"))
        assert len(files) >= 3, files
        for f in files[:-1]:
            with BagReader(f) as r:
                assert r.message_count > 0
    p = subprocess.run([*BAG, "recover", str(partial)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    got = _frames(out)
    # reliable, in order: a prefix of what was sent, each message intact
    assert got == list(range(len(got)))
    with BagReader(out) as r:
        for _, t, _, raw in r.messages([TOPIC]):
            m = r.deserialize(raw, t)
            assert bytes(m.data) == bytes([int(m.header.frame_id) % 251]) * (160 * 120)
    lost_s = (sent - len(got)) / RATE_HZ
    print(f"\n{storage} {' '.join(extra)}: sent {sent} before the kill, recovered {len(got)}, lost {sent - len(got)} "
          f"({lost_s:.2f} s of data)")
    assert len(got) >= 0.95 * (sent - RATE_HZ * BOUND_S), p.stdout


def test_a_split_bag_plays_and_records_as_split(tmp_path, sample_bag):
    """play reads a split bag; record --max-bag-size writes one; every message arrives unchanged."""
    env = ros_env(DOMAIN)
    src = split_copy(sample_bag, tmp_path / "src", max_duration_ns=333_333_000)
    topics = ["/color/image_raw", "/color/camera_info"]
    recorder = Process([*BAG, "record", str(tmp_path / "rec"), *topics, "--max-size", "0.5", "--storage",
                        "sqlite3"], env)
    player = Process([*BAG, "play", str(src), "--wait-subscribers", "1", "--qos-reliability", "reliable",
                      "--topics", *topics], env)
    try:
        assert player.proc.wait(timeout=90) == 0, player.output
        recorder.wait_for_line("closed rec_", timeout=10)
        time.sleep(1.0)
    finally:
        rc = recorder.stop()
        player.stop()
    assert rc == 0, recorder.output
    with BagReader(tmp_path / "rec") as r:
        assert len(r.files) >= 3 and r.storage == "sqlite3"
    for t in topics:
        with BagReader(src) as a, BagReader(tmp_path / "rec") as b:
            orig = [bytes(raw) for _, _, _, raw in a.messages([t])]
            rec = [bytes(raw) for _, _, _, raw in b.messages([t])]
        assert len(rec) == len(orig) == 30, t
        for x, y in zip(rec, orig, strict=True):  # Fast DDS pads to a multiple of 4 bytes
            assert x[:len(y)] == y and len(x) - len(y) < 4
