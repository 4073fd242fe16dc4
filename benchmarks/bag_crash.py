"""How much a killed `bag record` loses, and what its flushes cost.

1. Kills: this script publishes 320x240 colour (rgb8) and depth (16UC1) at --rate over real DDS, as `sim camera`
   does, while `dense-descriptor bag record` records both; after a random 2-5 s it sends the recorder SIGKILL,
   runs `bag recover` on the hidden partial folder and counts, per kill, the messages this publisher sent that
   the recovered bag lacks (in seconds of data: lost messages / 2 topics / rate).
2. Flushes: in this process, a BagWriter gets the same messages at the same rate and is flushed every
   --flush-interval; the time of each flush (mcap: close the chunk, zstd, write, fsync; sqlite3: commit) is
   what the recorder's loop spends on it.

    .venv/bin/python benchmarks/bag_crash.py                          # 10 kills each for mcap and sqlite3
    .venv/bin/python benchmarks/bag_crash.py --kills 3 --storage mcap
    .venv/bin/python benchmarks/bag_crash.py --size 80x60         # small messages: the flush interval decides

Prints a table; --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_descriptor_ros.bag.io import BagReader, BagWriter  # noqa: E402
from dense_descriptor_ros.bag.recover import recover_bag  # noqa: E402

TOPICS = ("/bench/color/image_raw", "/bench/aligned_depth_to_color/image_raw")
W, H = 320, 240  # --size


def env_for(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               FASTDDS_DEFAULT_PROFILES_FILE=str(REPO / "launch" / "fastdds_large_messages.xml"),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    return env


class Camera:
    """Colour + depth publishers (reliable, depth 100) with frame numbers in frame_id."""

    def __init__(self, domain: int) -> None:
        os.environ.update(env_for(domain))
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.rclpy, self.Image = rclpy, Image
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node(f"bench_camera_{os.getpid()}", context=self.ctx)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = [self.node.create_publisher(Image, t, qos) for t in TOPICS]
        rng = np.random.default_rng(0)
        self.color = rng.integers(0, 255, (H, W, 3), np.uint8).tobytes()  # noise: zstd cannot shrink it
        self.depth = rng.integers(300, 3000, (H, W), np.uint16).tobytes()

    def frame(self, i: int):
        c = self.Image(height=H, width=W, encoding="rgb8", step=3 * W, data=self.color)
        d = self.Image(height=H, width=W, encoding="16UC1", step=2 * W, data=self.depth)
        for m in (c, d):
            m.header.frame_id = str(i)
        return c, d

    def matched(self) -> bool:
        return all(p.get_subscription_count() >= 1 for p in self.pubs)

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.ctx)


def one_kill(cam: Camera, storage: str, rate: float, seconds: float, flush: float, work: Path, k: int,
             env: dict[str, str]) -> dict:
    out = work / f"kill{k}_{storage}"
    rec = subprocess.Popen([sys.executable, "-m", "dense_descriptor_ros.cli", "bag", "record", str(out), *TOPICS,
                            "--storage", storage, "--flush-interval", str(flush)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(rec.stdout), daemon=True).start()
    t_end = time.monotonic() + 60
    # the recorder says it subscribed to both (a killed recorder's readers stay matched for a while: the
    # publishers' subscription count alone cannot tell), then a moment for the match on this side
    while not (cam.matched() and all(any(f"recording {t}" in x for x in lines) for t in TOPICS)):
        if time.monotonic() > t_end or rec.poll() is not None:
            rec.kill()
            raise RuntimeError("the recorder did not subscribe:\n" + "".join(lines))
        time.sleep(0.05)
    time.sleep(1.0)
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        for p, m in zip(cam.pubs, cam.frame(sent), strict=True):
            p.publish(m)
        sent += 1
        time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
    rec.send_signal(signal.SIGKILL)
    rec.wait()
    time.sleep(0.2)
    partial = next(Path(m.group(1)) for m in (re.search(r"writing (\S+) \(renamed", x) for x in lines) if m)
    t = time.monotonic()
    s = recover_bag(partial, work / f"rec{k}_{storage}", log=lambda *a: None)
    recover_s = time.monotonic() - t
    got = sum(s.counts.values())
    with BagReader(s.out) as r:
        frames = [int(r.deserialize(raw, typ).header.frame_id) for _, typ, _, raw in r.messages([TOPICS[0]])]
    assert frames == list(range(len(frames))), "not a prefix of what was sent"
    size = sum(f.stat().st_size for f in partial.iterdir() if f.is_file())
    return {"storage": storage, "published_s": seconds, "sent_messages": 2 * sent, "recovered": got,
            "lost_messages": 2 * sent - got, "lost_s": (2 * sent - got) / 2 / rate,
            "recover_s": recover_s, "partial_mb": size / 1e6}


def flush_costs(storage: str, rate: float, flush: float, n: int, work: Path) -> list[float]:
    """ms per flush of `flush` seconds of colour + depth frames (written as fast as possible between)."""
    from dense_descriptor_ros.bag.io import new_typestore

    store = new_typestore()
    rng = np.random.default_rng(1)
    color, depth = rng.integers(0, 255, W * H * 3, np.uint8), rng.integers(300, 3000, W * H, np.uint16)
    t = store.types
    msgs = [bytes(store.serialize_cdr(t["sensor_msgs/msg/Image"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="0"),
        height=H, width=W, encoding=e, is_bigendian=0, step=s, data=d.view(np.uint8)), "sensor_msgs/msg/Image"))
        for e, s, d in (("rgb8", 3 * W, color), ("16UC1", 2 * W, depth))]
    per_flush = max(1, round(flush * rate))
    out = []
    with BagWriter(work / f"flush_{storage}", storage) as w:
        conns = [w.add_topic(x, "sensor_msgs/msg/Image") for x in TOPICS]
        ts = 0
        for _ in range(n):
            for _ in range(per_flush):
                for c, m in zip(conns, msgs, strict=True):
                    w.write(c, ts, m)
                ts += int(1e9 / rate)
            t0 = time.perf_counter()
            w.flush()
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--storage", choices=("mcap", "sqlite3", "both"), default="both")
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    ap.add_argument("--flush-interval", type=float, default=0.5, help="the recorder's (default 0.5 s)")
    ap.add_argument("--domain", type=int, default=57, help="ROS_DOMAIN_ID (default 57)")
    ap.add_argument("--size", default="320x240", help="WxH of both images (default 320x240)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the numbers here")
    a = ap.parse_args()
    global W, H
    W, H = (int(v) for v in a.size.lower().split("x"))
    storages = ("mcap", "sqlite3") if a.storage == "both" else (a.storage,)
    rng = np.random.default_rng(a.seed)
    env = env_for(a.domain)
    results, flushes = [], {}
    with tempfile.TemporaryDirectory(prefix="bag_crash_") as d:
        work = Path(d)
        for storage in storages:
            flushes[storage] = flush_costs(storage, a.rate, a.flush_interval, 20, work)
        cam = Camera(a.domain)
        try:
            for k in range(a.kills):
                for storage in storages:
                    r = one_kill(cam, storage, a.rate, float(rng.uniform(2.0, 5.0)), a.flush_interval, work, k, env)
                    results.append(r)
                    print(f"kill {k} {storage:7s}: published {r['published_s']:.2f} s, sent {r['sent_messages']}, "
                          f"recovered {r['recovered']}, lost {r['lost_messages']} = {r['lost_s']:.3f} s of data "
                          f"(recover {r['recover_s']:.2f} s for {r['partial_mb']:.1f} MB)", flush=True)
        finally:
            cam.close()
    print(f"\n{W}x{H} colour + depth at {a.rate:g} Hz, flush interval {a.flush_interval:g} s, {a.kills} kills each")
    print("| storage | lost, median (s of data) | lost, max | recovered share, min | flush ms median | flush ms max |")
    print("|---|---|---|---|---|---|")
    for storage in storages:
        rs = [r for r in results if r["storage"] == storage]
        lost = np.array([r["lost_s"] for r in rs])
        share = min(r["recovered"] / r["sent_messages"] for r in rs)
        f = np.array(flushes[storage])
        print(f"| {storage} | {np.median(lost):.3f} | {lost.max():.3f} | {share:.3f} | {np.median(f):.1f} | "
              f"{f.max():.1f} |")
    if a.json:
        a.json.write_text(json.dumps({"kills": results, "flush_ms": flushes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
