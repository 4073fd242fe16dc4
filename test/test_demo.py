"""The main job end to end: the shipped model in the node, the sample bag played over real topics, the
outputs recorded, scored against the ground truth and pictured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")


def test_demo_runs_the_node_on_the_sample_bag(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "dense_descriptor_ros.cli", "demo", "--out", str(tmp_path / "demo"),
                        "--domain-id", str(20 + os.getpid() % 30)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    runs = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert list(runs) == ["tracked", "category"]
    for s in runs.values():
        assert s["frames_played"] == 30 and s["frames_processed"] >= 15
        # every frame not processed is accounted for by the node's newest-frame policy, except at most one: in 2 of
        # 4 full test runs on 2026-12-07 (never alone) the bag's *last* frame was neither processed nor counted
        # (node count 29, last recorded stamp the 29th frame, nothing unmatched). Likely cause: the player exited
        # right after its last message, and best-effort subscriptions (the node's) acknowledge nothing, so the
        # message could leave with the process; it now lingers 0.5 s (bag/play.py LINGER_S). The tolerance stays
        # until full runs have shown the loss gone
        counts = {k: s[k] for k in ("frames_played", "frames_processed", "frames_dropped_busy",
                                    "node_frames_processed", "messages_unmatched")}
        assert s["frames_played"] - 1 <= s["frames_processed"] + s["frames_dropped_busy"] <= s["frames_played"], \
            counts
        assert s["keypoints_visible"] > 0 and s["keypoints_found"] > 0 and s["node_ms_p50"] > 0
        assert s["correspondences_per_frame"] > 0 and s["correspondence_reproj_px_median"] < 3.0
    # The mug's own keypoints from the first frame are tracked over the bag (measured with the default, effnet_lite0
    # step-9900: 87 of 120 found, 2.3 px, 5.7 mm; handle frame in 16 of 30 frames, 7.8 mm, axis 2.1 deg; lite
    # step-16000: 110 of 120, 1.7 px, 5.4 mm, 23 of 30, 6.2 mm, 7.6 deg) ...
    t = runs["tracked"]
    assert t["keypoints_found"] >= 0.5 * t["keypoints_visible"] and t["keypoint_px_median"] < 6.0
    assert t["keypoint_mm_median"] < 25.0
    assert t["handle_frames"] >= 10 and t["handle_position_mm_median"] < 20.0 and t["handle_axis_deg_median"] < 30.0
    # ... the shipped category-level keypoints transfer poorly to this held-out mug (issue 8 tracks it): this
    # checks the plumbing, the accuracy is in the model card.
    assert (tmp_path / "demo" / "mug_keypoints_first_frame.json").is_file()
    for name in ("descriptors_pca.png", "keypoints.png", "correspondences.png", "keypoints_category.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 10_000, name
    assert "keypoints: found" in r.stdout and "node latency" in r.stdout and "mug handle frame: in" in r.stdout


def test_demo_refuses_a_missing_model(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dense_descriptor_ros.cli", "demo", "--model", str(tmp_path / "no.onnx")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_the_summary_says_why_frames_were_not_processed():
    """A frame that comes while the node is busy is dropped (newest-frame policy): the demo says so instead of
    leaving "29 processed" of 30 unexplained."""
    from dense_descriptor_ros.demo.report import DemoSummary

    s = DemoSummary(frames_played=30, frames_processed=29, node_ms_p50=15.0, node_ms_p95=20.0, inference_ms_p50=5.0,
                    backend="b", keypoints_visible=1, keypoints_found=1, keypoint_px_median=1.0,
                    keypoint_mm_median=1.0, keypoint_mm_p90=1.0, correspondences_per_frame=1.0,
                    correspondence_reproj_px_median=1.0, frames_dropped_busy=1)
    assert s.lines()[0].startswith("frames: 30 played, 29 processed by the node (1 dropped: they came while the "
                                   "node was busy")
    s.frames_processed, s.frames_dropped_busy = 30, 0
    assert s.lines()[0] == "frames: 30 played, 30 processed by the node"
    # frames lost before the node paired them, or outputs the recorder missed, are named from the node's counters
    s.frames_processed, s.node_frames_processed, s.messages_unmatched = 28, 29, 2
    assert s.lines()[0] == ("frames: 30 played, 28 processed by the node (2 input messages without their partner "
                            "image or camera info; the node processed 29, 1 of them missing from the recording)")
