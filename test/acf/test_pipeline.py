"""`dense-descriptor pipeline`: camera, descriptor node (a tiny untrained model whose mug keypoints were
annotated on the sequence's first frame) and consumer started by one command over real DDS; a node that
cannot load its model makes the command fail; bad arguments are refused before anything starts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("rclpy", reason="ROS 2 wheels not installed")

from dense_descriptor_ros.acf.pipeline import child_commands, main, pipeline_env  # noqa: E402
from dense_descriptor_ros.matching.keypoints import ReferenceKeypoints  # noqa: E402
from dense_descriptor_ros.models import build_model  # noqa: E402
from dense_descriptor_ros.models.config import ModelConfig  # noqa: E402
from dense_descriptor_ros.runtime import DescriptorExtractor, ExtractorConfig, export_onnx  # noqa: E402
from dense_descriptor_ros.sim.reference_keypoints import sequence_keypoints  # noqa: E402
from dense_descriptor_ros.sim.sequence import SequenceConfig, cached_sequence  # noqa: E402

from ..node.rosgraph import ros_env  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
DOMAIN = 100 + (os.getpid() + 50) % 100  # not test_consumer_node's domain
FRAMES = 30
PIPELINE = [sys.executable, "-m", "dense_descriptor_ros.acf.pipeline"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A cached 160x120 sequence and a tiny model with mug keypoints annotated where the first frame shows them."""
    root = tmp_path_factory.mktemp("pipeline")
    seq = cached_sequence(SequenceConfig(size=(160, 120), frames=20, seed=0), root / "sim_sequences")
    torch.manual_seed(0)
    net = build_model(ModelConfig(name="lite", normalize=True, decoder_channels=16, width_mult=0.5)).eval()
    export_onnx(net, root / "m.onnx")
    ex = DescriptorExtractor.from_model(net, ExtractorConfig(warmup_iters=0))
    sequence_keypoints(ex, seq, 0).save(root / "kp.json")
    (root / "corrupt.onnx").write_bytes(b"\x08\x07 this is not a protobuf" * 10)
    return root


def pipeline(root, *extra: str, model: str = "m.onnx") -> list[str]:
    return [*PIPELINE, "--frames", str(FRAMES), "--size", "160x120", "--sequence-frames", "20", "--cache", str(root),
            "--model", str(root / model), "--keypoints", str(root / "kp.json"), "--node-param", "resolution:=[0,0]",
            "--domain-id", str(DOMAIN), "--drain", "1", *extra]


def test_pipeline_runs_camera_node_and_consumer(setup):
    out = setup / "out"
    r = subprocess.run(pipeline(setup, "--out", str(out)), env=ros_env(DOMAIN), capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    text = r.stdout
    for name in ("camera", "node", "consumer"):
        assert f"\n[{name}] " in text  # each child's output, prefixed
    assert f"[camera] done: published {FRAMES} frames" in text
    summary_block = text[text.index("pipeline summary:"):]
    assert "evaluated against ground truth" in summary_block and "descriptor node: backend lite" in summary_block
    report = json.loads((out / "acf_summary.json").read_text())
    s = report["summary"]
    # the camera starts once the node's keypoints reach the consumer: (nearly) every frame arrives
    assert FRAMES - 5 <= s["frames"] <= FRAMES
    assert s["frames_evaluated"] == s["frames_with_estimate"] >= 1  # frame 0 at least: its keypoints were annotated
    assert report["descriptor_node_diagnostics"]["frames_processed"] == str(s["frames"])
    rows = list(csv.DictReader(open(out / "acf_errors.csv")))
    assert len(rows) == s["frames"] and {int(x["frame_index"]) for x in rows} <= set(range(20))
    assert (out / "ground_truth.json").is_file() and (out / "acf_errors.png").is_file()


def test_first_frame_keypoints_are_annotated_on_the_camera_s_own_sequence(setup):
    """--keypoints first-frame: the mug's keypoints annotated in frame 0 of the very sequence the camera then
    publishes (loaded from the cache, not rendered again), and the node runs with them."""
    out = setup / "out_first_frame"
    r = subprocess.run(pipeline(setup, "--out", str(out), "--keypoints", "first-frame"), env=ros_env(DOMAIN),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    kp = ReferenceKeypoints.load(out / "mug_keypoints_first_frame.json")
    assert f"keypoints: {len(kp.names)} of the mug annotated in frame 0" in r.stdout
    assert kp.names == ReferenceKeypoints.load(setup / "kp.json").names
    assert "[camera] loaded 20 frames" in r.stdout  # the same sequence config as the camera's
    s = json.loads((out / "acf_summary.json").read_text())["summary"]
    assert s["frames_evaluated"] == s["frames_with_estimate"] >= 1


def test_a_node_that_cannot_load_its_model_fails_the_pipeline(setup):
    r = subprocess.run(pipeline(setup, "--quiet", model="corrupt.onnx"), env=ros_env(DOMAIN), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert "failed: the descriptor node cannot run:" in r.stderr and "configure failed" in r.stderr
    assert "--- last lines of node ---" in r.stderr  # --quiet: the failing child's output is shown
    assert "[camera]" not in r.stdout  # the camera never started


def test_ctrl_c_stops_every_child_and_prints_the_summary(setup):
    """SIGINT (a terminal's Ctrl-C reaches only the pipeline: its children have their own process groups) while
    the node is still starting: the children are stopped, none is left behind, the consumer's summary is shown."""
    marker = f"acf_pipeline_test_{os.getpid()}"
    env = ros_env(DOMAIN, DDR_TEST_MARKER=marker)
    proc = subprocess.Popen(pipeline(setup, "--frames", "100000"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # the consumer is up (rclpy initialised) once it says where it listens
            if line.startswith("[consumer]") and "listening on" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:] + err[-3000:]
    assert "SIGINT: stopping" in err
    assert "pipeline summary:\n  frames 0, with a handle frame 0" in out
    assert "[camera]" not in out  # it was never started
    left = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                left.append(environ.parent.name)
        except OSError:  # gone, or not ours
            pass
    assert not left, f"processes left running: {left}"


def test_bad_arguments_are_refused_before_anything_starts(setup, tmp_path, capsys):
    assert main(["--model", str(setup / "m.onnx")]) == 2
    assert "--keypoints is needed with --model" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "none.onnx"), "--keypoints", str(setup / "kp.json")]) == 2
    assert "none.onnx does not exist" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "none.onnx"), "--keypoints", "first-frame"]) == 2
    assert "none.onnx does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--node-param", "resolution"])
    assert "expected NAME:=VALUE" in capsys.readouterr().err


def test_child_commands_and_environment(setup, tmp_path):
    import argparse

    from dense_descriptor_ros.acf.pipeline import register_pipeline

    parser = argparse.ArgumentParser()
    register_pipeline(parser.add_subparsers())
    args = parser.parse_args(["pipeline", "--model", "m.onnx", "--keypoints", "k.json", "--node-param", "device:=cuda",
                              "--frames", "7", "--filter", "ema"])
    cmds = child_commands(args, tmp_path, python="py")
    assert list(cmds) == ["consumer", "node", "camera"]
    gt = str(tmp_path / "ground_truth.json")
    assert cmds["consumer"][:3] == ["py", "-m", "dense_descriptor_ros.acf.cli"]
    assert cmds["consumer"][cmds["consumer"].index("--ground-truth") + 1] == gt
    assert cmds["node"][-8:] == ["-p", "backend:=onnx", "-p", "model_path:=m.onnx", "-p", "keypoints_file:=k.json",
                                 "-p", "device:=cuda"]
    camera = cmds["camera"]
    for flag, value in (("--count", "7"), ("--stamp-mode", "sequence"), ("--save-ground-truth", gt),
                        ("--wait-subscribers", "1")):
        assert camera[camera.index(flag) + 1] == value
    env = pipeline_env(42, base={"PATH": "/bin"})
    assert env["ROS_DOMAIN_ID"] == "42" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("launch/fastdds_large_messages.xml")
    kept = pipeline_env(None, base={"FASTDDS_DEFAULT_PROFILES_FILE": "/my.xml", "ROS_DOMAIN_ID": "3"})
    assert kept["FASTDDS_DEFAULT_PROFILES_FILE"] == "/my.xml" and kept["ROS_DOMAIN_ID"] == "3"
    assert "--labels-topic" not in cmds["consumer"]
    masked = child_commands(parser.parse_args(["pipeline", "--object-mask"]), tmp_path, python="py")["consumer"]
    from dense_descriptor_ros.pipeline.outputs import output_topics

    assert masked[masked.index("--labels-topic") + 1] == output_topics()["labels"]


def test_first_frame_annotation_uses_the_node_s_settings():
    """The keypoints are annotated as the node will process the frames: --backend, then --node-param overrides."""
    import argparse

    from dense_descriptor_ros.acf.pipeline import node_settings
    from dense_descriptor_ros.node.params import NodeSettings

    def settings(*params: str, backend: str = "onnx") -> NodeSettings:
        return node_settings(argparse.Namespace(backend=backend, node_param=list(params)))

    assert settings().resolution == NodeSettings().resolution
    s = settings("device:=cuda", "resolution:=[160, 120]", backend="torch")
    assert s.resolution == (160, 120) and s.extractor_config().backend == "torch"
    assert s.extractor_config().device == "cuda"
    assert settings("resolution:=[160,120]", "resolution:=[0,0]").resolution == (0, 0)  # the last one wins
    assert settings("keypoint_min_confidence:=0").keypoint_min_confidence == 0.0
    with pytest.raises(ValueError, match="unknown parameters"):
        settings("resolutoin:=[1,1]")
