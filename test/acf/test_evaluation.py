"""acf/evaluation.py and acf/consumer.py without ROS: the simulator's ground-truth file, stamp decoding, the
error log and the consumer's per-message logic, on a real rendered sequence."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from dense_descriptor_ros.acf.consumer import ConsumerOptions, HandleFrameConsumer
from dense_descriptor_ros.acf.evaluation import ErrorLog, SequenceGroundTruth, format_summary
from dense_descriptor_ros.acf.handle_frame import estimate_handle_frame, frame_errors
from dense_descriptor_ros.sim.sequence import (
    MUG_INSTANCE_ID,
    SequenceConfig,
    cached_sequence,
    ground_truth_dict,
    keypoint_truth,
)

RATE, START = 30.0, 1.0


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    return cached_sequence(SequenceConfig(size=(160, 120), frames=4, seed=0), tmp_path_factory.mktemp("acf_seq"))


def gt_data(seq, stamp_mode: str = "sequence") -> dict:
    """What `sim camera --save-ground-truth` writes (camera_cli._save_ground_truth)."""
    d = json.loads(json.dumps(ground_truth_dict(seq)))
    d["publishing"] = {"rate": RATE, "stamp_mode": stamp_mode, "stamp_start": START, "loop": True,
                       "frames": seq.frames}
    return d


def stamp_ns(i: int) -> int:
    """The camera's stamp of its i-th published frame (camera_node.SimCameraNode._stamp)."""
    return round(START * 1e9) + round(i * 1e9 / RATE)


def camera_keypoints(seq, frame: int, offset=(0.0, 0.0, 0.0)) -> dict[str, np.ndarray]:
    """The mug's keypoints in the camera of `frame`, from the per-frame ground truth (not the objects list the
    ground-truth file's reader uses)."""
    return {k.name: k.xyz + np.asarray(offset) for k in keypoint_truth(seq, frame, instance_id=MUG_INSTANCE_ID)}


def test_truth_from_the_file_matches_the_per_frame_keypoints(seq, tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt_data(seq)))
    gt = SequenceGroundTruth.load(path)
    assert gt.frames == seq.frames
    for i in range(seq.frames):
        pos, axis, approach = frame_errors(estimate_handle_frame(camera_keypoints(seq, i)), gt.handle_frame(i))
        assert pos < 1e-6 and axis < 1e-6 and approach < 1e-6
        # the handle is 0.5-1 m in front of the camera, its axis roughly "up" in the world
        f = gt.handle_frame(i)
        assert 0.3 < f.origin[2] < 1.2
        up_world = seq.T_world_camera[i][:3, :3] @ f.axis
        assert up_world[2] > 0.9


def test_frame_index_from_stamps(seq):
    gt = SequenceGroundTruth(gt_data(seq))
    assert [gt.frame_index(stamp_ns(i)) for i in range(10)] == [i % seq.frames for i in range(10)]
    with pytest.raises(ValueError, match="not a frame stamp"):
        gt.frame_index(stamp_ns(2) + round(0.5e9 / RATE))  # half way between frames
    with pytest.raises(ValueError, match="not a frame stamp"):
        gt.frame_index(round(0.5e9))  # before the first frame


def test_rejects_other_files(seq):
    with pytest.raises(ValueError, match="--stamp-mode sequence"):
        SequenceGroundTruth(gt_data(seq, stamp_mode="now"))
    with pytest.raises(ValueError, match="not a sim camera ground-truth file"):
        SequenceGroundTruth({"K": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]})
    bad = gt_data(seq)
    bad["objects"][0]["keypoints"].pop("handle_top")
    with pytest.raises(ValueError, match="no complete mug handle frame"):
        SequenceGroundTruth(bad)


def test_error_log_statistics_csv_and_plot(tmp_path):
    log = ErrorLog()
    truth = estimate_handle_frame({"handle_top": np.array([0, -0.05, 1.0]), "handle_bottom": np.array([0, 0.05, 1.0]),
                                   "bottom_center": np.array([-0.05, 0.0, 1.0])})
    for k, dx in enumerate((0.001, 0.002, 0.003, 0.004)):  # origin errors 1..4 mm
        est = type(truth)(truth.origin + [dx, 0, 0], truth.axis, truth.approach)
        log.add(k / 30, k, 3, est, truth, latency_ms=10.0 * (k + 1))
    log.add(4 / 30, 4, 0, None, truth)  # no estimate
    log.add(5 / 30, -1, 3, truth, None)  # no ground truth
    s = log.summary()
    assert (s.frames, s.frames_with_estimate, s.frames_evaluated) == (6, 5, 4)
    assert s.position_mm_median == pytest.approx(2.5) and s.position_mm_p90 == pytest.approx(3.7)
    assert s.axis_deg_median == 0 and s.approach_deg_median == 0
    assert s.latency_ms_median == pytest.approx(25.0)
    assert log.summary(since=4).frames_evaluated == 0 and math.isnan(log.summary(since=4).position_mm_median)
    lines = format_summary(s.to_dict())
    assert lines[0] == "frames 6, with a handle frame 5, evaluated against ground truth 4"
    assert "position error median 2.5 mm, p90 3.7 mm" in lines[1]
    log.write_csv(tmp_path / "e.csv")
    rows = list(csv.DictReader(open(tmp_path / "e.csv")))
    assert len(rows) == 6 and rows[1]["position_mm"] == "2" and rows[4]["estimated"] == "0"
    assert rows[4]["position_mm"] == "nan"
    log.plot(tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_consumer_waits_for_the_file_then_scores(seq, tmp_path):
    path = tmp_path / "gt.json"
    messages = []
    c = HandleFrameConsumer(ConsumerOptions(ground_truth_file=str(path), count=4),
                            log=lambda level, text: messages.append((level, text)))

    def send(i: int, offset=(0.0, 0.0, 0.0), drop=()):
        pts = camera_keypoints(seq, i % seq.frames, offset)
        return c.process(stamp_ns(i), pts, {k: k not in drop for k in pts})

    frame, rec = send(0)
    assert frame is not None and rec.frame_index == -1 and math.isnan(rec.position_mm)
    assert messages == [("info", f"waiting for the ground-truth file {path}")]
    path.write_text(json.dumps(gt_data(seq)))  # the camera writes it
    _, rec = send(1, offset=(0.003, 0.0, -0.004))  # every keypoint 5 mm off
    assert rec.frame_index == 1 and rec.position_mm == pytest.approx(5.0, abs=1e-6)
    assert rec.axis_deg < 1e-6 and rec.approach_deg < 1e-6
    # frame 5 is sequence frame 1 (the camera loops); without handle_bottom and rim_back there is no axis
    frame, rec = send(5, drop=("handle_bottom", "rim_back"))
    assert frame is None and rec.frame_index == 1 and not rec.estimated and rec.keypoints_valid == 6
    assert not c.done
    _, rec = send(6)
    assert rec.position_mm < 1e-6 and c.done
    assert "4 frames, 3 with a handle frame" in c.progress_line() and c.progress_line() is None
    lines = c.finish(tmp_path / "out")
    assert lines[0] == "frames 4, with a handle frame 3, evaluated against ground truth 2"
    report = json.loads((tmp_path / "out" / "acf_summary.json").read_text())
    assert report["summary"]["position_mm_median"] == pytest.approx(2.5, abs=1e-6)
    assert report["options"]["count"] == 4
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"acf_errors.csv", "acf_errors.png", "acf_summary.json"}


def test_consumer_reports_a_bad_file_once(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text("{}")
    messages = []
    c = HandleFrameConsumer(ConsumerOptions(ground_truth_file=str(path)), log=lambda *m: messages.append(m))
    for i in range(3):
        c.process(stamp_ns(i), {}, {})
    assert len(messages) == 1 and messages[0][0] == "error" and "not a sim camera ground-truth file" in messages[0][1]
    assert any(line.startswith("not scored:") for line in c.finish())


def test_options_are_validated():
    with pytest.raises(ValueError, match="qos_reliability"):
        HandleFrameConsumer(ConsumerOptions(qos_reliability="sometimes"))
    with pytest.raises(ValueError, match="alpha"):
        HandleFrameConsumer(ConsumerOptions(filter="ema", filter_alpha=2.0))
