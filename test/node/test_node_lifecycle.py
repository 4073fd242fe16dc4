"""The node's lifecycle over real DDS: a missing or corrupt model file fails configure with a clear error
and the node stays up to be configured again; a missing GPU falls back to CPU with a warning, or fails
activate when the parameters require it; deactivate stops the outputs; --no-autostart waits."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition

from dense_descriptor_ros.runtime.part_probe import PartProbe

from ..conftest import textured_image
from .rosgraph import Probe, start_node
from .test_node_bad_input import model_files  # noqa: F401 - the shared fixture

pytest.importorskip("rclpy")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOMAIN = 160 + os.getpid() % 40
IMG = textured_image(np.random.default_rng(2), 120, 160)
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])


@pytest.fixture(scope="module")
def probe():
    p = Probe(DOMAIN)
    yield p
    p.close()


def frames_until_descriptors(probe: Probe, timeout: float = 20.0) -> None:
    import time

    n = len(probe.get("descriptors"))
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and len(probe.get("descriptors")) <= n:
        probe.publish(IMG, np.full((120, 160), 0.5, np.float32), K, probe.now_ns())
        time.sleep(0.05)
    assert len(probe.get("descriptors")) > n, "no descriptors"


def next_status(probe: Probe, timeout: float = 10.0):
    """The node's next /diagnostics status (it publishes in every state, every diagnostics_period)."""
    n = len(probe.get("diagnostics"))
    probe.wait_for(lambda: len(probe.get("diagnostics")) > n, timeout, "diagnostics")
    return probe.get("diagnostics")[-1].status[0]


def test_bad_model_files_fail_configure_and_the_node_stays_up(probe, model_files):  # noqa: F811
    from diagnostic_msgs.msg import DiagnosticStatus

    node = start_node(DOMAIN, "-p", "model_path:=/nonexistent/model.onnx", "-p", "keypoints_file:=none")
    try:
        node.wait_for_line("configure failed: model file /nonexistent/model.onnx does not exist", 60)
        assert node.alive() and probe.lifecycle_state() == "unconfigured"
        # monitors see why, not a stale node
        status = next_status(probe)
        assert status.level == DiagnosticStatus.ERROR and "configure failed: model file" in status.message
        # a corrupt file: clear error again, still up
        assert probe.set_parameters({"model_path": str(model_files / "corrupt.onnx")})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("is not a readable dense_descriptor_ros model")
        # a directory is not reported as missing
        (model_files / "dir.onnx").mkdir(exist_ok=True)
        assert probe.set_parameters({"model_path": str(model_files / "dir.onnx")})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("dir.onnx is a directory, not a model file")
        # wrong file type for the backend
        assert probe.set_parameters({"model_path": str(model_files / "m.safetensors")})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("backend onnx needs a .onnx model file")
        # fixed: configure and activate work, outputs flow
        assert probe.set_parameters({"model_path": str(model_files / "m.onnx")})[0].successful
        assert probe.transition(Transition.TRANSITION_CONFIGURE)
        assert probe.transition(Transition.TRANSITION_ACTIVATE)
        assert probe.lifecycle_state() == "active"
        frames_until_descriptors(probe)
        # deactivate: no more outputs; the node unsubscribes
        assert probe.transition(Transition.TRANSITION_DEACTIVATE)
        probe.wait_for(lambda: probe.pub["color"].get_subscription_count() == 0, 10, "the node to unsubscribe")
        # torch backend with the .safetensors file, through a cleanup/configure cycle
        assert probe.transition(Transition.TRANSITION_CLEANUP)
        assert probe.set_parameters({"backend": "torch", "model_path": str(model_files / "m.safetensors")})[0] \
            .successful
        assert probe.transition(Transition.TRANSITION_CONFIGURE)
        assert probe.transition(Transition.TRANSITION_ACTIVATE)
        frames_until_descriptors(probe)
        node.wait_for_line("on torch [cpu fp32")
        assert node.alive()
    finally:
        assert node.stop() == 0, node.output[-2000:]


def test_keypoint_file_errors_fail_configure(probe, model_files, tmp_path):  # noqa: F811
    bad = tmp_path / "kp.json"
    bad.write_text("{not json")
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", f"keypoints_file:={bad}")
    try:
        node.wait_for_line("configure failed: keypoints_file", 60)
        assert probe.set_parameters({"keypoints_file": str(tmp_path / "missing.json")})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("missing.json does not exist")
        # JSON allows NaN: such a file used to pass configure and then drop every frame
        data = json.loads((model_files / "kp.json").read_text())
        data["keypoints"][0]["descriptor"][0] = float("nan")
        (tmp_path / "nan.json").write_text(json.dumps(data))
        assert probe.set_parameters({"keypoints_file": str(tmp_path / "nan.json")})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("descriptors of ['a'] are not finite")
        assert probe.set_parameters({"keypoints_file": str(tmp_path)})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("is a directory, not a keypoint file")
        assert node.alive() and probe.lifecycle_state() == "unconfigured"
    finally:
        node.stop()


def test_part_probe_errors_fail_configure(probe, model_files, tmp_path):  # noqa: F811
    """A probe file that is not one, or one fitted on another model, fails configure and names the parameter."""
    (tmp_path / "junk.st").write_bytes(b"junk")
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", "keypoints_file:=none",
                      "-p", f"part_probe_file:={tmp_path / 'junk.st'}")
    try:
        node.wait_for_line("configure failed: part_probe_file:", 60)
        other = PartProbe(np.zeros((2, 16), np.float32), np.zeros(2, np.float32), ["background", "a/b"],
                          {"id": "0123456789abcdef"})
        other.save(tmp_path / "other.st")
        assert probe.set_parameters({"part_probe_file": str(tmp_path / "other.st")})[0].successful
        assert not probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line("fitted on model 0123456789abcdef")
        assert node.alive() and probe.lifecycle_state() == "unconfigured"
    finally:
        node.stop()


def test_correspondences_from_the_learned_matcher(probe, model_files):  # noqa: F811
    """correspondence_method matcher: refused at configure without a matcher file (this model ships none) and live
    while none is loaded; with one, the node publishes its correspondences."""
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", "keypoints_file:=none",
                      "-p", "correspondence_method:=matcher")
    try:
        node.wait_for_line("configure failed: correspondence_method 'matcher' needs a matcher_file", 60)
        assert probe.set_parameters({"correspondence_method": "descriptor"})[0].successful
        assert probe.transition(Transition.TRANSITION_CONFIGURE) and probe.transition(Transition.TRANSITION_ACTIVATE)
        refused = probe.set_parameters({"correspondence_method": "matcher"})[0]
        assert not refused.successful and "matcher_file" in refused.reason
        assert probe.transition(Transition.TRANSITION_DEACTIVATE) and probe.transition(Transition.TRANSITION_CLEANUP)
        assert probe.set_parameters({"matcher_file": str(model_files / "matcher.onnx"),
                                     "correspondence_method": "matcher",
                                     "correspondence_min_confidence": 0.0})[0].successful
        assert probe.transition(Transition.TRANSITION_CONFIGURE)
        node.wait_for_line(f"matcher: {model_files / 'matcher.onnx'}")
        assert probe.transition(Transition.TRANSITION_ACTIVATE)
        probe.wait_for_subscribers()
        probe.clear()
        frames_until_descriptors(probe)
        frames_until_descriptors(probe)
        probe.wait_for(lambda: probe.get("correspondences"), 10.0, "correspondences")
        msg = probe.get("correspondences")[-1]
        assert len(msg.scores) > 0 and all(0.0 <= s <= 1.0 for s in msg.scores)
        # live switch back to descriptor matching: accepted, frame A starts again
        assert probe.set_parameters({"correspondence_method": "descriptor"})[0].successful
        assert node.alive()
    finally:
        node.stop()


@pytest.mark.skipif(bool(os.environ.get("CUDA_VISIBLE_DEVICES")) and __import__("torch").cuda.is_available(),
                    reason="this machine has a GPU: the fallback cannot happen")
@pytest.mark.parametrize("backend, model", [("onnx", "m.onnx"), ("torch", "m.safetensors")])
def test_missing_gpu(probe, model_files, backend, model):  # noqa: F811
    """device cuda without a GPU: a warning and CPU; with require_device an error at activate."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the fallback cannot happen")
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / model}", "-p", f"backend:={backend}",
                      "-p", "device:=cuda", "-p", "keypoints_file:=none")
    try:
        node.wait_for_line("set require_device to make this an error", 60)
        node.wait_for_line("active:")
        assert probe.transition(Transition.TRANSITION_DEACTIVATE)
        assert probe.set_parameters({"require_device": True})[0].successful
        assert not probe.transition(Transition.TRANSITION_ACTIVATE)
        line = node.wait_for_line("activate failed")
        assert "set require_device:=false" in line and "on_fallback" not in line, line
        assert node.alive() and probe.lifecycle_state() == "inactive"
    finally:
        node.stop()


def test_no_autostart_waits_unconfigured(probe, model_files):  # noqa: F811
    from diagnostic_msgs.msg import DiagnosticStatus

    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", cli_args=("--no-autostart",))
    try:
        assert probe.lifecycle_state() == "unconfigured"  # waits for the service
        assert probe.pub["color"].get_subscription_count() == 0
        status = next_status(probe)  # /diagnostics in every state: monitors show the state, not "stale"
        assert (status.level, status.message) == (DiagnosticStatus.OK, "unconfigured")
        assert probe.transition(Transition.TRANSITION_CONFIGURE)
        assert probe.lifecycle_state() == "inactive"
        status = next_status(probe)
        assert (status.level, status.message) == (DiagnosticStatus.OK, "inactive")
        assert {kv.key: kv.value for kv in status.values}["state"] == "inactive"
    finally:
        node.stop()


def test_integers_for_float_parameters_and_wrong_types(probe, model_files):  # noqa: F811
    """`-p keypoint_min_confidence:=0` is an integer to ROS: the node takes it as 0.0 (at start and live); a
    string for a number is a clear error, not a traceback."""
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", "keypoint_min_confidence:=0",
                      "-p", "depth_max:=5")
    try:
        node.wait_for_line("active:", timeout=60)
        assert "Traceback" not in node.output
        frames_until_descriptors(probe)
        # they read back as the floats they mean, not as integers
        values = probe.get_parameters(["keypoint_min_confidence", "depth_max"])
        assert values == {"keypoint_min_confidence": 0.0, "depth_max": 5.0}
        assert all(isinstance(v, float) for v in values.values()), values
        assert probe.set_parameters({"keypoint_min_confidence": 1})[0].successful  # live, an integer again
        value = probe.get_parameters(["keypoint_min_confidence"])["keypoint_min_confidence"]
        assert isinstance(value, float) and value == 1.0
        refused = probe.set_parameters({"keypoint_min_confidence": "high"})[0]
        assert not refused.successful and "keypoint_min_confidence must be float" in refused.reason
    finally:
        node.stop()
    bad = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", "depth_max:=far")
    try:
        assert bad.proc.wait(60) == 2
        assert "parameter depth_max must be float, got 'far'" in bad.output and "Traceback" not in bad.output
    finally:
        bad.stop()


@pytest.mark.parametrize("param, message", [
    ("keypoint_min_confidence:=2.0", "keypoint_min_confidence must be in [0, 1], got 2.0"),
    ("keypoint_min_confidence:=-0.5", "keypoint_min_confidence must be in [0, 1], got -0.5"),
    ("map_stride:=0", "map_stride must be >= 1, got 0"),
    ("map_stride:=abc", "parameter map_stride must be int, got 'abc'"),
    ("correspondence_max:=0", "correspondence_max must be >= 1"),
    ("resolution:=abc", "parameter resolution must be a list of integers, got 'abc'"),
    ("require_device:=maybe", "parameter require_device must be bool, got 'maybe'"),
])
def test_bad_start_up_parameters_are_one_line_errors(model_files, param, message):  # noqa: F811
    """Out-of-range or wrong-type values on the command line: one line naming the parameter, exit 2 (rclpy's own
    range and type checks used to raise a 20-line traceback and exit 1)."""
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", param)
    try:
        assert node.proc.wait(60) == 2, node.output
        assert message in node.output and "Traceback" not in node.output, node.output
        assert len(node.output.strip().splitlines()) == 1, node.output
    finally:
        node.stop()


def test_shutdown_transition_ends_the_process(probe, model_files):  # noqa: F811
    """After the lifecycle shutdown transition (finalized) the process exits by itself, with 0."""
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", "keypoints_file:=none")
    try:
        node.wait_for_line("active:", timeout=60)
        assert probe.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert node.proc.wait(10) == 0, node.output[-2000:]
        assert "finalized" in node.output
    finally:
        node.stop()


def test_a_bag_looping_with_its_own_clock(probe, model_files):  # noqa: F811
    """The sample bag (1 s) played in a loop with /clock to a node with use_sim_time: every loop steps time back
    0.97 s. The node warns, resets its synchronisation and goes on processing every loop (it went silent after
    the first one), frame A of the correspondences is never later than frame B, and /diagnostics keeps its
    period (it is on the steady clock)."""
    from .rosgraph import CLI, REPO, Process, ros_env

    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p", "keypoints_file:=none",
                      "-p", "use_sim_time:=true")
    play = None
    try:
        node.wait_for_line("active:", timeout=60)
        probe.clear()
        # no /clock yet: ROS time stands at 0, and a ROS-time timer would never fire
        probe.wait_for(lambda: len(probe.get("diagnostics")) >= 2, 10, "diagnostics before any /clock")
        play = Process([*CLI, "bag", "play", str(REPO / "data_sample" / "sim_mug"), "--loop", "--clock",
                        "--wait-subscribers", "1", "--topics", "/color/image_raw",
                        "/aligned_depth_to_color/image_raw", "/color/camera_info", "--quiet"], ros_env(DOMAIN))
        probe.wait_for(lambda: len({m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                                    for m in probe.get("descriptors")}) >= 20 and len(probe.get("descriptors")) >= 75,
                       60, "outputs over more than two loops of the bag")
        node.wait_for_line("time jumped backwards")
        assert node.alive() and play.alive()
        for msg in probe.get("correspondences"):
            b = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            a = msg.stamp_a.sec * 10**9 + msg.stamp_a.nanosec
            assert a <= b, f"frame A {a} is later than frame B {b}"
        assert len(probe.get("diagnostics")) >= 2
    finally:
        if play is not None:
            play.stop()
        assert node.stop() == 0, node.output[-2000:]
