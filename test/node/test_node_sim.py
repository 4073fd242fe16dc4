"""The node with the shipped model against the simulated camera, over real DDS at 30 Hz: a second process
publishes a rendered RGB-D sequence of a held-out mug with known ground truth, and the outputs are
checked against it: stamps and frames, named keypoints in pixels and in 3D, and correspondences against
the known camera motion.

The keypoint file is made here from the sequence's first frame (this mug's ground-truth keypoints,
annotated with the shipped model), so the test measures the node's tracking of named points over the
camera's 40 degree arc; the shipped category-level file (other mugs) is scored by the evaluation."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from dense_descriptor_ros.matching.keypoints import ReferenceKeypoints
from dense_descriptor_ros.runtime import DescriptorExtractor, ExtractorConfig
from dense_descriptor_ros.runtime.model_files import default_model_path
from dense_descriptor_ros.sim.reference_keypoints import sequence_keypoints
from dense_descriptor_ros.sim.sequence import (
    MUG_INSTANCE_ID,
    SequenceConfig,
    cached_sequence,
    keypoint_truth,
    relative_pose,
)

from .rosgraph import CLI, Probe, Process, ros_env, start_node

pytest.importorskip("rclpy")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DOMAIN = 60 + os.getpid() % 40
RATE = 30.0
FRAMES = 30  # rendered frames along the arc (the camera loops over them)
COUNT = 60  # frames published
STAMP_START_S = 1.0
CONFIG = SequenceConfig(size=(320, 240), frames=FRAMES)
# Accuracy the shipped model must reach on this held-out mug. Measured with it (effnet_lite0 step-9900, 2026-12-07):
# keypoints 2.32 px and 5.7 mm median (174 of 240 visible found), correspondences 0.89 px and 3.3 mm (lite
# step-16000, the default before: 1.75 px, 5.4 mm, 220 of 240; 1.06 px, 3.4 mm); the bounds leave room for
# run-to-run variation of which frames the node processes.
MAX_MEDIAN_PX = 6.0
MAX_MEDIAN_3D_MM = 25.0
MIN_FOUND_FRACTION = 0.5
MAX_MEDIAN_CORR_REPROJ_PX = 3.0
MAX_MEDIAN_CORR_3D_MM = 15.0


def first_frame_keypoints(seq, model) -> ReferenceKeypoints:
    """This mug's visible ground-truth keypoints in frame 0, annotated with the model at 320x240."""
    ex = DescriptorExtractor.load(model, ExtractorConfig(num_threads=1, warmup_iters=0))
    return sequence_keypoints(ex, seq, 0, min_visible=3)


def frame_index(stamp) -> int:
    t = stamp.sec + stamp.nanosec * 1e-9
    return int(round((t - STAMP_START_S) * RATE)) % FRAMES


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cache = tmp_path_factory.mktemp("seq_cache")
    seq = cached_sequence(CONFIG, cache)  # rendered once here; the camera process loads it
    kp_file = cache / "mug_frame0.json"
    first_frame_keypoints(seq, default_model_path("onnx")).save(kp_file)
    node = start_node(DOMAIN, "-p", f"model_path:={default_model_path('onnx')}",
                      "-p", f"keypoints_file:={kp_file}", "-p", "resolution:=[320, 240]")
    probe = Probe(DOMAIN)
    cam = None
    try:
        node.wait_for_line("active:", timeout=60)
        cam = Process([*CLI, "sim", "camera", "--size", "320x240", "--frames", str(FRAMES), "--rate", str(RATE),
                       "--count", str(COUNT), "--stamp-mode", "sequence", "--stamp-start", str(STAMP_START_S),
                       "--wait-subscribers", "1", "--cache", str(cache), "--no-progress"], ros_env(DOMAIN))
        assert cam.proc.wait(60) == 0, cam.output[-2000:]
        time.sleep(0.5)  # the last outputs
        yield seq, probe.get("keypoints"), probe.get("correspondences"), probe.get("descriptors"), node
    finally:
        probe.close()
        node.stop()
        if cam is not None:
            cam.stop()


def test_outputs_are_stamped_with_the_inputs(run):
    seq, kps, corr, desc, node = run
    assert len(desc) >= COUNT // 3, f"only {len(desc)} of {COUNT} frames processed:\n{node.output[-2000:]}"
    published = {round(STAMP_START_S * 1e9 + i * 1e9 / RATE) for i in range(COUNT)}
    for m in desc + kps + corr:
        assert m.header.frame_id == "camera_color_optical_frame"
        assert m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in published
    assert all(c.stamp_a.sec * 10**9 + c.stamp_a.nanosec in published for c in corr)


def test_keypoints_match_the_ground_truth(run):
    seq, kps, corr, desc, node = run
    px, mm, found, total = [], [], 0, 0
    for m in kps:
        truth = {t.name: t for t in keypoint_truth(seq, frame_index(m.header.stamp), instance_id=MUG_INSTANCE_ID)}
        for k in m.keypoints:
            t = truth.get(k.name)
            if t is None or not t.visible:
                continue
            total += 1
            if not k.pixel_valid:
                continue
            found += 1
            px.append(np.hypot(k.pixel_x - t.uv[0], k.pixel_y - t.uv[1]))
            if k.position_valid:
                mm.append(1000 * np.linalg.norm([k.position.x - t.xyz[0], k.position.y - t.xyz[1],
                                                 k.position.z - t.xyz[2]]))
    assert total > 0
    print(f"keypoints: found {found}/{total} visible; median {np.median(px):.2f} px, {np.median(mm):.1f} mm")
    assert found / total >= MIN_FOUND_FRACTION
    assert np.median(px) <= MAX_MEDIAN_PX
    assert len(mm) >= 0.8 * len(px) and np.median(mm) <= MAX_MEDIAN_3D_MM


def test_correspondences_follow_the_camera_motion(run):
    seq, kps, corr, desc, node = run
    reproj, err3d = [], []
    assert len(corr) >= COUNT // 4
    for c in corr:
        a, b = frame_index(c.stamp_a), frame_index(c.header.stamp)
        if a == b or abs(a - b) > FRAMES // 2:
            continue  # the loop back to frame 0 is not a motion the test models
        n = len(c.scores)
        if n == 0:
            continue
        T = relative_pose(seq, a, b)
        valid = np.asarray(c.points_valid, bool)
        pa = np.asarray(c.points_a, np.float64).reshape(n, 3)[valid]
        pb = np.asarray(c.points_b, np.float64).reshape(n, 3)[valid]
        uv_b = np.asarray(c.pixels_b, np.float64).reshape(n, 2)[valid]
        q = pa @ T[:3, :3].T + T[:3, 3]
        proj = q[:, :2] / q[:, 2:] * [seq.K[0, 0], seq.K[1, 1]] + [seq.K[0, 2], seq.K[1, 2]]
        reproj += np.linalg.norm(proj - uv_b, axis=1).tolist()
        err3d += (1000 * np.linalg.norm(q - pb, axis=1)).tolist()
    assert len(reproj) >= 50
    print(f"correspondences: {len(reproj)} with depth; median reprojection {np.median(reproj):.2f} px, "
          f"3D {np.median(err3d):.1f} mm")
    assert np.median(reproj) <= MAX_MEDIAN_CORR_REPROJ_PX
    assert np.median(err3d) <= MAX_MEDIAN_CORR_3D_MM
