"""`dense-descriptor sim camera` over real DDS: the command runs in its own process and this process
subscribes with rclpy, like the descriptor node would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")

from geometry_msgs.msg import PoseArray, PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import UInt32  # noqa: E402

from dense_descriptor_ros.cli import build_parser  # noqa: E402
from dense_descriptor_ros.ros_core.image_codec import image_to_depth, image_to_rgb  # noqa: E402
from dense_descriptor_ros.sim.sequence import SequenceConfig, cached_sequence  # noqa: E402

# rosidl_parser's lark imports the deprecated sre_parse/sre_constants; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_.*' is deprecated:DeprecationWarning")
DOMAIN = 100 + os.getpid() % 100
#: the command's defaults except size and frames: 6 frames at 160x120 render in under a second
CFG = SequenceConfig(size=(160, 120), frames=6, seed=3)
SEQ_ARGS = ["--size", "160x120", "--frames", "6", "--seed", "3", "--no-progress"]
CAMERA_TOPICS = ("color/image_raw", "aligned_depth_to_color/image_raw", "color/camera_info")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder holding the sequence of CFG (rendered here; the command must load it)."""
    root = tmp_path_factory.mktemp("camera_cache")
    return root, cached_sequence(CFG, root / "sim_sequences")


@pytest.fixture(scope="module")
def ros():
    """An rclpy context of its own on this module's domain, local discovery only."""
    old = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    node = rclpy.create_node("sim_camera_test", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)
    if old is None:
        os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    else:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = old


class Recorder:
    """Everything published under `ns`, keyed by topic and header stamp (ns)."""

    def __init__(self, node, ns: str, reliable: bool) -> None:
        self.node = node
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        self.by_stamp: dict[str, dict[int, object]] = defaultdict(dict)
        self.frame_index: list[int] = []
        self.subs = [node.create_subscription(t, f"{ns}/{name}", self._store(name), qos) for t, name in
                     ((Image, CAMERA_TOPICS[0]), (Image, CAMERA_TOPICS[1]), (CameraInfo, CAMERA_TOPICS[2]),
                      (PoseStamped, "ground_truth/camera_pose"), (PoseArray, "ground_truth/objects"))]
        self.subs.append(node.create_subscription(UInt32, f"{ns}/ground_truth/frame_index",
                                                  lambda m: self.frame_index.append(m.data), qos))

    def _store(self, name: str):
        def callback(msg) -> None:
            self.by_stamp[name][msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg
        return callback

    def synchronised(self) -> list[int]:
        """Stamps that arrived on all three camera topics."""
        return sorted(set.intersection(*(set(self.by_stamp[t]) for t in CAMERA_TOPICS)))

    def close(self) -> None:
        for s in self.subs:
            self.node.destroy_subscription(s)


def run_camera(ros, args: list[str], cwd: Path, stop_when=None, timeout: float = 30.0):
    """Run the command while spinning `ros`; SIGINT it once `stop_when()` holds. Returns (rc, out, err)."""
    node, executor = ros
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(DOMAIN), OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "dense_descriptor_ros.cli", "sim", "camera", *args]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    interrupted = False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
            if stop_when is not None and not interrupted and stop_when():
                proc.send_signal(signal.SIGINT)
                interrupted = True
        end = time.monotonic() + 0.5  # what is still in flight
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=10)
    assert time.monotonic() < deadline, f"the command did not finish in {timeout} s:\n{out}\n{err}"
    return proc.returncode, out, err


def check_camera_messages(seq, rec: Recorder, stamp: int, frame: int | None) -> int:
    """Encodings, sizes, CameraInfo and pixels of one synchronised set; returns the frame index it shows."""
    color, depth, info = (rec.by_stamp[t][stamp] for t in CAMERA_TOPICS)
    for msg in (color, depth, info):
        assert msg.header.frame_id == "camera_color_optical_frame"
        assert (msg.height, msg.width) == (seq.height, seq.width)
    assert (color.encoding, color.step) == ("rgb8", 3 * seq.width)
    np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), seq.K)
    np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, :3], seq.K)
    assert info.distortion_model == "plumb_bob" and not np.any(info.d)
    rgb = image_to_rgb(color)
    if frame is None:  # stamps say nothing: find the frame by its pixels
        frame = int(np.argmin([np.abs(rgb.astype(int) - f).sum() for f in seq.rgb]))
    np.testing.assert_array_equal(rgb, seq.rgb[frame])
    got = image_to_depth(depth)  # NaN where no reading
    want = seq.depth[frame]
    np.testing.assert_array_equal(np.isnan(got), want == 0)
    assert np.nanmax(np.abs(got - want)) <= 0.001
    return frame


def pose_matrix(pose) -> np.ndarray:
    x, y, z, w = pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = pose.position.x, pose.position.y, pose.position.z
    return T


def test_sequence_stamps_count_and_ground_truth(ros, cache, tmp_path):
    root, seq = cache
    rec = Recorder(ros[0], "/sim_cam_a", reliable=False)
    gt_path = tmp_path / "gt" / "truth.json"
    rc, out, err = run_camera(ros, [*SEQ_ARGS, "--cache", str(root), "--count", "30", "--rate", "30",
                                    "--stamp-mode", "sequence", "--wait-subscribers", "1",
                                    "--save-ground-truth", str(gt_path),
                                    "--ros-args", "-r", "__ns:=/sim_cam_a", "-p", "stamp_start:=2.5"], tmp_path)
    rec.close()
    assert rc == 0, err
    assert "Traceback" not in err
    assert "loaded 6 frames 160x120" in out  # the cached sequence, not a new rendering
    assert "done: published 30 frames" in out

    stamps = rec.synchronised()
    assert len(stamps) >= 25, {t: len(v) for t, v in rec.by_stamp.items()}
    rate, start = 30.0, 2.5
    published = []
    for stamp in stamps:
        i = round((stamp * 1e-9 - start) * rate)
        assert stamp == round(start * 1e9) + round(i * 1e9 / rate)  # exactly start + i / rate
        published.append(i)
        frame = check_camera_messages(seq, rec, stamp, i % seq.frames)
        pose = rec.by_stamp["ground_truth/camera_pose"][stamp]
        assert pose.header.frame_id == "world"
        np.testing.assert_allclose(pose_matrix(pose.pose), seq.T_world_camera[frame], atol=1e-9)
        objects = rec.by_stamp["ground_truth/objects"][stamp]
        assert objects.header.frame_id == "world" and len(objects.poses) == len(seq.objects)
        for p, o in zip(objects.poses, seq.objects, strict=True):
            np.testing.assert_allclose(pose_matrix(p), o["T_world_object"], atol=1e-9)
    assert len(set(published)) == len(published) and set(published) <= set(range(30))
    assert rec.frame_index[:12] == [i % seq.frames for i in range(12)]  # reliable: all of them, in order

    gt = json.loads(gt_path.read_text())
    np.testing.assert_allclose(gt["K"], seq.K)
    np.testing.assert_allclose(gt["T_world_camera"], seq.T_world_camera)
    assert gt["keypoints"] == seq.keypoints and len(gt["objects"]) == len(seq.objects)
    assert (gt["publishing"]["stamp_start"], gt["publishing"]["rate"]) == (2.5, 30.0)  # after the ROS parameter


def test_now_stamps_float_depth_reliable_and_ctrl_c(ros, cache, tmp_path):
    root, seq = cache
    rec = Recorder(ros[0], "/sim_cam_b", reliable=True)
    t0 = time.time_ns()
    rc, out, err = run_camera(ros, [*SEQ_ARGS, "--cache", str(root), "--depth-encoding", "32FC1",
                                    "--reliability", "reliable", "--wait-subscribers", "1",
                                    "--ros-args", "-r", "__ns:=/sim_cam_b"], tmp_path,
                              stop_when=lambda: len(rec.synchronised()) >= 25)
    t1 = time.time_ns()
    rec.close()
    assert rc == 0, err  # Ctrl-C is the normal way to stop a camera
    assert "Traceback" not in err
    assert "stopped: published" in out and "Hz achieved" in out
    stamps = rec.synchronised()
    assert len(stamps) >= 25
    assert t0 < stamps[0] and stamps[-1] < t1  # clock time at publishing
    frames = []
    for stamp in stamps:
        assert rec.by_stamp[CAMERA_TOPICS[1]][stamp].encoding == "32FC1"
        frames.append(check_camera_messages(seq, rec, stamp, None))
    # published in order, looping
    assert frames[:12] == [(frames[0] + k) % seq.frames for k in range(12)]
    # a reliable subscriber that keeps up loses nothing between the first and the last frame it saw
    color = sorted(rec.by_stamp[CAMERA_TOPICS[0]])
    assert len(color) == len(stamps)


class TestArguments:
    def parse(self, *argv: str):
        return build_parser().parse_args(["sim", "camera", *argv])

    def test_defaults(self):
        a = self.parse()
        assert (a.size, a.frames, a.rate, a.count, a.no_loop) == ((320, 240), 60, 30.0, 0, False)
        assert (a.depth_encoding, a.stamp_mode, a.reliability) == ("16UC1", "now", "best_effort")

    @pytest.mark.parametrize("argv", [["--size", "10x10"], ["--rate", "0"], ["--frames", "0"], ["--count", "-1"],
                                      ["--depth-encoding", "16UC3"], ["--stamp-mode", "later"],
                                      ["--categories", "spoon"], ["--reliability", "sometimes"]])
    def test_bad_arguments(self, argv, capsys):
        with pytest.raises(SystemExit) as e:
            self.parse(*argv)
        assert e.value.code == 2
        assert "sim camera: error" in capsys.readouterr().err
