"""The node over real DDS against bad input: each case gets a clear, throttled error (or warning), is
counted in /diagnostics, and the node keeps running and serves the next good frame.

One node process serves the module; tests run in file order (the first one needs a node that has never
seen a camera info message)."""

from __future__ import annotations

import array
import os

import numpy as np
import pytest
import torch

from dense_descriptor_ros.matcher.config import MatcherConfig
from dense_descriptor_ros.matcher.export import export_matcher_onnx
from dense_descriptor_ros.matcher.io import MatcherInfo
from dense_descriptor_ros.matcher.model import MatcherNet
from dense_descriptor_ros.matching.keypoints import annotate_keypoints, model_identity
from dense_descriptor_ros.models import build_model
from dense_descriptor_ros.models.config import ModelConfig
from dense_descriptor_ros.models.io import save_model
from dense_descriptor_ros.runtime import DescriptorExtractor, ExtractorConfig, export_onnx
from dense_descriptor_ros.runtime.part_probe import PartProbe

from ..conftest import textured_image
from .rosgraph import Probe, diagnostic_values, start_node

pytest.importorskip("rclpy")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
DOMAIN = 110 + os.getpid() % 50


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A small real model (untrained: these tests are about input handling) and keypoints for it."""
    d = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    net = build_model(ModelConfig(name="lite", normalize=True, decoder_channels=16, width_mult=0.5)).eval()
    save_model(net, d / "m.safetensors")
    export_onnx(net, d / "m.onnx")
    ex = DescriptorExtractor.from_model(net, ExtractorConfig(warmup_iters=0))
    img = textured_image(np.random.default_rng(0), H, W)
    ref = annotate_keypoints(ex.extract(img), {"a": (40.0, 30.0), "b": (120.0, 90.0)}, model_identity(ex.info),
                             "thing", "ref.png")
    ref.save(d / "kp.json")
    w = np.zeros((2, 16), np.float32)
    w[1, 0] = 1.0  # "thing/part" where channel 0 is positive
    PartProbe(w, np.zeros(2, np.float32), ["background", "thing/part"], {"id": ex.info.model_id}).save(d / "probe.st")
    (d / "corrupt.onnx").write_bytes(b"\x08\x07 this is not a protobuf" * 10)
    # an (untrained) learned matcher for this model, reading the images too, as the node loads it: ONNX
    torch.manual_seed(0)
    matcher = MatcherNet(MatcherConfig(descriptor_dim=16, d_model=16, layers=1, heads=2, fine_dim=8, image_channels=8))
    export_matcher_onnx(matcher, MatcherInfo(ex.info.model_id, ex.info.stride), d / "matcher.onnx")
    return d


@pytest.fixture(scope="module")
def graph(model_files):
    node = start_node(DOMAIN, "-p", f"model_path:={model_files / 'm.onnx'}", "-p",
                      f"keypoints_file:={model_files / 'kp.json'}", "-p", "resolution:=[0, 0]",
                      "-p", f"part_probe_file:={model_files / 'probe.st'}",
                      "-p", "diagnostics_period:=0.5", "-p", "keypoint_min_confidence:=0.0",
                      "-p", "keypoint_max_distance:=2.0")
    probe = Probe(DOMAIN)
    try:
        node.wait_for_line("active:", timeout=60)
        probe.wait_for_subscribers()
        probe.wait_for(lambda: all(s.get_publisher_count() > 0 for s in probe.subs.values()), 20,
                       "the node's publishers")
        yield node, probe
    finally:
        probe.close()
        node.stop()


IMG = textured_image(np.random.default_rng(1), H, W)
DEPTH = np.full((H, W), 0.7, np.float32)


def send_until(probe: Probe, key: str, n: int = 1, timeout: float = 20.0, **frame) -> list:
    """Publish the frame (fresh stamps) every 50 ms until `n` new messages arrive on output `key`."""
    before = len(probe.get(key))
    import time

    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        probe.publish(stamp_ns=probe.now_ns(), **{"rgb": IMG, "depth_m": DEPTH, "K": K, **frame})
        time.sleep(0.05)
        if len(probe.get(key)) >= before + n:
            return probe.get(key)[before:]
    raise AssertionError(f"no {key} output within {timeout} s")


def publish_for(probe: Probe, seconds: float = 0.6, **frame) -> None:
    import time

    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        probe.publish(stamp_ns=probe.now_ns(), **{"rgb": IMG, "depth_m": DEPTH, "K": K, **frame})
        time.sleep(0.05)


def latest_diagnostics(probe: Probe, after: int) -> dict[str, str]:
    probe.wait_for(lambda: len(probe.get("diagnostics")) > after, 10, "diagnostics")
    return diagnostic_values(probe.get("diagnostics")[-1])


def test_missing_camera_info_gives_2d_outputs_with_a_warning(graph):
    node, probe = graph
    kps = send_until(probe, "keypoints", K=None)
    assert all(k.pixel_valid and not k.position_valid for m in kps for k in m.keypoints)
    node.wait_for_line("no camera info")
    # once camera info arrives, keypoints get 3D positions
    kps = send_until(probe, "keypoints", n=3)
    assert kps[-1].keypoints[0].position_valid
    assert abs(kps[-1].keypoints[0].position.z - 0.7) < 1e-3


def test_outputs_carry_the_input_header(graph):
    node, probe = graph
    probe.clear()
    stamp = probe.now_ns()
    probe.publish(IMG, DEPTH, K, stamp, frame_id="my_optical_frame")
    probe.wait_for(lambda: all(probe.get(k) for k in ("descriptors", "keypoints", "pca", "labels")), 10,
                   "outputs of the frame")
    for key in ("descriptors", "keypoints", "pca", "labels"):
        h = probe.get(key)[0].header
        assert (h.stamp.sec * 10**9 + h.stamp.nanosec, h.frame_id) == (stamp, "my_optical_frame"), key
    d = probe.get("descriptors")[0]
    assert (d.height, d.width, d.dimension, d.stride, d.dtype) == (15, 20, 16, 8, d.DTYPE_FLOAT16)


def test_uncalibrated_camera_gives_2d_outputs_with_a_warning(graph):
    """camera_info with an all-zero K (what uncalibrated drivers publish) is like no camera info."""
    node, probe = graph
    kps = send_until(probe, "keypoints", n=3, K=np.zeros((3, 3)))
    assert all(k.pixel_valid and not k.position_valid for k in kps[-1].keypoints)
    node.wait_for_line("all-zero K (an uncalibrated camera): 2D outputs only")
    kps = send_until(probe, "keypoints", n=3)  # calibrated again: 3D again
    assert kps[-1].keypoints[0].position_valid


def test_empty_depth_gives_2d_outputs_with_a_warning(graph):
    node, probe = graph
    empty = {"height": 0, "width": 0, "encoding": "16UC1", "is_bigendian": 0, "step": 0, "data": array.array("B")}
    kps = send_until(probe, "keypoints", n=3, raw_depth=empty)
    assert all(k.pixel_valid and not k.position_valid for k in kps[-1].keypoints)
    node.wait_for_line("the depth image is empty (0x0): 2D outputs only")


@pytest.mark.parametrize("case, frame, message, reason", [
    ("colour encoding", {"color_encoding": "rgb8", "raw_color": {"height": H, "width": W, "encoding": "yuv422",
                                                                 "is_bigendian": 0, "step": W * 2,
                                                                 "data": array.array("B", bytes(W * H * 2))}},
     "colour encoding 'yuv422' is not supported", "color_encoding"),
    ("depth encoding", {"raw_depth": {"height": H, "width": W, "encoding": "8UC1", "is_bigendian": 0, "step": W,
                                      "data": array.array("B", bytes(W * H))}},
     "depth encoding '8UC1' is not supported", "depth_encoding"),
    ("short data", {"raw_color": {"height": H, "width": W, "encoding": "rgb8", "is_bigendian": 0, "step": W * 3,
                                  "data": array.array("B", bytes(W * 3 * (H - 1)))}},
     "fewer than step * height", "color_malformed"),
    ("empty colour", {"raw_color": {"height": 0, "width": 0, "encoding": "rgb8", "is_bigendian": 0, "step": 0,
                                    "data": array.array("B")}},
     "image is empty: height=0, width=0", "color_malformed"),
    ("huge colour", {"raw_color": {"height": 100000, "width": 100000, "encoding": "rgb8", "is_bigendian": 0,
                                   "step": 300000, "data": array.array("B", bytes(W * H * 3))}},
     "fewer than step * height = 300000 * 100000", "color_malformed"),
    ("depth aspect", {"depth_m": np.full((H, H), 0.7, np.float32)}, "different aspect ratios", "depth_size"),
    ("camera info size", {"K": K, "rgb": IMG[: H // 2, : W // 2].copy(),
                          "depth_m": DEPTH[: H // 2, : W // 2].copy()}, "camera info describes", None),
])
def test_bad_frames_are_dropped_with_a_clear_error(graph, case, frame, message, reason):
    node, probe = graph
    n_diag = len(probe.get("diagnostics"))
    if reason is None:  # camera info of another size: the info is sent alone, then a half-size frame
        probe.publish(IMG, DEPTH, K, probe.now_ns())
        reason = "camera_info_size"
        frame = {**frame, "K": None}
    publish_for(probe, **frame)
    line = node.wait_for_line(message)
    assert "frame dropped" in line, node.output[-3000:]
    assert node.alive()
    diag = latest_diagnostics(probe, n_diag)
    assert int(diag["frames_bad_input"]) >= 1
    # counted under what is wrong, not under an exception class (a 0x0 and a huge image were "CameraInfoError")
    assert int(diag.get(f"bad_input.{reason}", 0)) >= 1, diag
    assert not any(k.startswith("bad_input.") and "Error" in k for k in diag), diag
    send_until(probe, "descriptors")  # a good frame is served again


def test_errors_are_throttled(graph):
    node, probe = graph
    before = sum("frame dropped" in line for line in node.lines)
    publish_for(probe, 1.0, depth_m=np.full((H, H), 0.7, np.float32))  # 20 bad frames in one second
    assert sum("frame dropped" in line for line in node.lines) - before <= 1


def test_depth_of_half_resolution_is_scaled(graph):
    node, probe = graph
    kps = send_until(probe, "keypoints", n=2, depth_m=np.full((H // 2, W // 2), 0.9, np.float32))
    assert kps[-1].keypoints[0].position_valid and abs(kps[-1].keypoints[0].position.z - 0.9) < 1e-3


@pytest.mark.parametrize("depth, encoding", [(np.zeros((H, W), np.float32), "16UC1"),
                                             (np.full((H, W), np.nan, np.float32), "32FC1")])
def test_invalid_depth_gives_no_3d_points(graph, depth, encoding):
    node, probe = graph
    kps = send_until(probe, "keypoints", n=2, depth_m=depth, depth_encoding=encoding)
    assert all(k.pixel_valid and not k.position_valid and np.isnan(k.position.z) for k in kps[-1].keypoints)
    corr = send_until(probe, "correspondences", n=1, depth_m=depth, depth_encoding=encoding)
    assert not any(corr[-1].points_valid)
    node.wait_for_line("no valid pixel")


def test_labels_and_their_class_table(graph):
    """The part probe's label image at the input size, its id -> name table in a parameter the node owns."""
    node, probe = graph
    lab = send_until(probe, "labels")[-1]
    assert (lab.height, lab.width, lab.encoding) == (H, W, "mono8")
    ids = np.frombuffer(bytes(lab.data), np.uint8)
    assert set(np.unique(ids)) <= {0, 1}
    assert probe.get_parameters(["label_classes"]) == {"label_classes": ["background", "thing/part"]}
    refused = probe.set_parameters({"label_classes": ["x"]})[0]
    assert not refused.successful and "output of the node" in refused.reason
    assert "labels: 2 classes" in node.output


def test_thresholds_change_at_run_time_with_validation(graph):
    node, probe = graph
    bad = probe.set_parameters({"keypoint_min_confidence": 1.5})
    assert not bad[0].successful
    bad = probe.set_parameters({"map_stride": 0})
    assert not bad[0].successful
    ok = probe.set_parameters({"keypoint_min_confidence": 1.0, "map_stride": 4})
    assert ok[0].successful
    kps = send_until(probe, "keypoints", n=3)
    assert not any(k.pixel_valid for k in kps[-1].keypoints)
    d = send_until(probe, "descriptors", n=2)[-1]
    assert (d.height, d.width, d.stride) == (30, 40, 4)
    assert probe.set_parameters({"keypoint_min_confidence": 0.0, "map_stride": 8})[0].successful


def test_diagnostics_break_the_node_time_into_stages(graph):
    """Every stage of STAGES is reported after good frames: a number of milliseconds, none negative."""
    from dense_descriptor_ros.node.stats import STAGES

    _, probe = graph
    send_until(probe, "descriptors", n=3)
    diag = latest_diagnostics(probe, len(probe.get("diagnostics")))
    for name in (*STAGES, "node", "process", "inference"):
        value = float(diag[f"{name}_ms_p50"])
        assert np.isfinite(value) and value >= 0.0, (name, value)


def test_time_jumping_backwards_restarts_synchronisation_with_a_warning(graph):
    """A bag played in a loop: stamps jump back by the bag's length. No crash, a warning, and frame A of the
    correspondences is never later than frame B (the first message after the jump had stamp_a > header.stamp)."""
    import time

    node, probe = graph
    base = probe.now_ns()
    for loop in range(2):
        for i in range(12):
            probe.publish(IMG, DEPTH, K, base + i * 100_000_000)  # 100 ms apart, 1.1 s of "bag"
            time.sleep(0.1)
        if loop == 0:
            probe.wait_for(lambda: len(probe.get("correspondences")) > 0, 10, "correspondences")
    node.wait_for_line("time jumped backwards")
    send_until(probe, "correspondences", n=2)
    assert node.alive()
    for msg in probe.get("correspondences"):
        b = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        a = msg.stamp_a.sec * 10**9 + msg.stamp_a.nanosec
        assert a <= b, f"frame A {a} is later than frame B {b}"


def test_outputs_nobody_subscribes_to_are_not_computed(graph):
    node, probe = graph
    for key in ("descriptors", "pca", "keypoints", "correspondences"):
        probe.node.destroy_subscription(probe.subs.pop(key))
    n_diag = len(probe.get("diagnostics"))
    publish_for(probe, 1.5)
    diag = latest_diagnostics(probe, n_diag + 1)
    assert int(diag["frames_idle_no_subscribers"]) > 0
