"""`bag process` on real bags: the node's pipeline over every frame, outputs readable by rosbags and by rclpy,
byte-identical reruns, both storages, and bad input counted or refused with a clear error."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dense_descriptor_ros.bag.io import BagError, BagReader, BagWriter
from dense_descriptor_ros.bag.process import OUTPUT_TOPICS, ProcessOptions, process_bag
from dense_descriptor_ros.node.params import NodeSettings
from dense_descriptor_ros.pipeline.outputs import descriptor_map_from_msg

from .conftest import FRAMES, decoded, keypoint_table, messages

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_.*' is deprecated:DeprecationWarning")
QUIET = ProcessOptions(progress=False)


def settings(model_files, **kw) -> NodeSettings:
    kw = {"model_path": str(model_files / "m.onnx"), "keypoints_file": str(model_files / "kp.json"),
          "part_probe_file": str(model_files / "probe.st"), **kw}
    return NodeSettings(**kw)


def run(src, out, model_files, options=QUIET, **kw):
    return process_bag(src, out, settings(model_files, **kw), options, log=lambda *a: None)


@pytest.fixture(scope="module")
def processed(short_bags, model_files, tmp_path_factory):
    """The short mcap bag processed twice to mcap (once with the inputs) and once to sqlite3."""
    d = tmp_path_factory.mktemp("processed")
    a = run(short_bags["mcap"], d / "a", model_files)
    b = run(short_bags["mcap"], d / "b", model_files, ProcessOptions(progress=False, include_inputs=True))
    c = run(short_bags["sqlite3"], d / "c", model_files, ProcessOptions(progress=False, storage="sqlite3"))
    return d, (a, b, c)


def test_every_frame_is_processed_and_summarised(processed):
    d, (a, _, _) = processed
    assert a.frames_processed == FRAMES and a.color_messages == FRAMES and not a.dropped
    assert a.inputs.synced == FRAMES and not any(a.inputs.unmatched.values()) and a.inputs.no_info == 0
    assert a.written == {OUTPUT_TOPICS["descriptors"]: FRAMES, OUTPUT_TOPICS["pca"]: FRAMES,
                         OUTPUT_TOPICS["keypoints"]: FRAMES, OUTPUT_TOPICS["correspondences"]: FRAMES - 1,
                         OUTPUT_TOPICS["labels"]: FRAMES}
    text = a.format()
    for word in ("processed of 6 colour messages", "median ms/frame", "inference", "frames/s end to end",
                 "bare inference"):
        assert word in text
    assert a.stage_fps("extract") > a.fps > 0


def test_outputs_equal_the_pipeline_run_directly(processed, short_bags, model_files):
    """What process writes is what FrameProcessor computes on the decoded frames, stamped and logged as
    the colour images."""
    from dense_descriptor_ros.bag.process import load_pipeline
    from dense_descriptor_ros.pipeline import Wanted
    from dense_descriptor_ros.pipeline.inputs import decode_frame

    d, _ = processed
    s = settings(model_files)
    processor, _ = load_pipeline(s)
    colors = decoded(short_bags["mcap"], "/color/image_raw")
    depths = decoded(short_bags["mcap"], "/aligned_depth_to_color/image_raw")
    infos = decoded(short_bags["mcap"], "/color/camera_info")
    maps = decoded(d / "a", OUTPUT_TOPICS["descriptors"])
    kps = keypoint_table(decoded(d / "a", OUTPUT_TOPICS["keypoints"]))
    log_in = [t for t, _ in messages(short_bags["mcap"], "/color/image_raw")]
    assert [t for t, _ in messages(d / "a", OUTPUT_TOPICS["keypoints"])] == log_in
    for i in range(FRAMES):
        r = processor.process(decode_frame(colors[i], depths[i], infos[i], s), Wanted())
        assert (maps[i].header.stamp.sec, maps[i].header.stamp.nanosec) == (colors[i].header.stamp.sec,
                                                                          colors[i].header.stamp.nanosec)
        assert maps[i].header.frame_id == "camera_color_optical_frame"
        np.testing.assert_array_equal(descriptor_map_from_msg(maps[i]), r.descriptors)
        stamp = colors[i].header.stamp.sec * 10**9 + colors[i].header.stamp.nanosec
        np.testing.assert_allclose(kps[stamp][:, :2], r.keypoints.uv.astype(np.float32), rtol=0, atol=1e-4)
    # 3D points lie on the rays of their pixels (the camera info's K) inside the valid depth range
    K = np.array(infos[0].k).reshape(3, 3)
    t = np.concatenate(list(kps.values()))
    t = t[np.isfinite(t[:, 4])]
    assert len(t) >= FRAMES and (t[:, 4] > s.depth_min).all() and (t[:, 4] < s.depth_max).all()
    np.testing.assert_allclose(K[0, 0] * t[:, 2] / t[:, 4] + K[0, 2], t[:, 0], atol=1e-3)
    np.testing.assert_allclose(K[1, 1] * t[:, 3] / t[:, 4] + K[1, 2], t[:, 1], atol=1e-3)


def test_reruns_and_storages_give_byte_identical_messages(processed):
    d, _ = processed
    for topic in OUTPUT_TOPICS.values():
        first = messages(d / "a", topic)
        assert first and messages(d / "b", topic) == first and messages(d / "c", topic) == first, topic
    with BagReader(d / "c") as r:
        assert r.storage == "sqlite3"


def test_inputs_are_copied_unchanged(processed, short_bags):
    d, (_, b, _) = processed
    for topic in ("/color/image_raw", "/aligned_depth_to_color/image_raw", "/color/camera_info"):
        assert messages(d / "b", topic) == messages(short_bags["mcap"], topic)
    with BagReader(d / "b") as r:
        assert "/ground_truth/camera_pose" not in r.topics
        assert r.custom["dense_descriptor_ros.model_id"] == b.backend.split("id ")[1].split(",")[0]


def test_rclpy_deserialises_every_output(processed):
    pytest.importorskip("rclpy")
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from dense_descriptor_ros import msg as m

    d, _ = processed
    classes = {"descriptors": m.DescriptorMap, "pca": Image, "keypoints": m.KeypointArray,
               "correspondences": m.Correspondences}
    for key, cls in classes.items():
        for _, raw in messages(d / "c", OUTPUT_TOPICS[key]):
            msg = deserialize_message(raw, cls)
            assert msg.header.frame_id == "camera_color_optical_frame"
    pca = deserialize_message(messages(d / "a", OUTPUT_TOPICS["pca"])[0][1], Image)
    assert (pca.encoding, pca.width, pca.height) == ("bgr8", 320, 240)
    c = deserialize_message(messages(d / "a", OUTPUT_TOPICS["correspondences"])[0][1], m.Correspondences)
    assert len(c.pixels_a) == len(c.pixels_b) > 0


def test_output_topics_are_the_nodes(model_files):
    """bag process writes the topics a configured node really publishes (default name, root namespace)."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from dense_descriptor_ros.node.descriptor_node import DescriptorNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=150 + os.getpid() % 50)
    try:
        node = DescriptorNode(context=ctx, parameter_overrides=[
            Parameter("model_path", value=str(model_files / "m.onnx")), Parameter("keypoints_file", value="none")])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert {k: p.topic_name for k, p in node._pubs.items()} == OUTPUT_TOPICS
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_labels_topic(processed):
    """part_probe_file: every frame's label image, mono8 at the colour image's size, stamped as the frame."""
    d, _ = processed
    labels, maps = decoded(d / "a", OUTPUT_TOPICS["labels"]), decoded(d / "a", OUTPUT_TOPICS["descriptors"])
    assert [m.header.stamp for m in labels] == [m.header.stamp for m in maps]
    m = labels[0]
    assert (m.encoding, m.width, m.height) == ("mono8", 320, 240) and set(np.unique(np.asarray(m.data))) == {0, 1}


def test_node_parameters_apply(short_bags, model_files, tmp_path):
    r = run(short_bags["mcap"], tmp_path / "o", model_files, map_stride=16, map_dtype="float32",
            correspondence_mode="off", keypoints_file="none", part_probe_file="none")
    assert set(r.written) == {OUTPUT_TOPICS["descriptors"], OUTPUT_TOPICS["pca"]}
    m = decoded(tmp_path / "o", OUTPUT_TOPICS["descriptors"])[0]
    assert (m.stride, m.width, m.height, descriptor_map_from_msg(m).dtype) == (16, 20, 15, np.float32)


def test_cli_with_params(short_bags, model_files, tmp_path, capsys):
    from dense_descriptor_ros.bag.cli import main

    out = tmp_path / "o"
    assert main(["process", str(short_bags["sqlite3"]), str(out), "--model", str(model_files / "m.onnx"),
                 "--keypoints", "none", "--params-file", "config/descriptor_node.yaml", "--param", "map_stride=4",
                 "--storage", "sqlite3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "6 processed of 6" in text and "throughput" in text and "keypoint output off" in text
    m = decoded(out, OUTPUT_TOPICS["descriptors"])[0]
    assert m.stride == 4
    with BagReader(out) as r:
        assert r.storage == "sqlite3" and OUTPUT_TOPICS["keypoints"] not in r.topics


def test_the_learned_matcher_makes_the_correspondences(short_bags, model_files, tmp_path, capsys):
    from dense_descriptor_ros.bag.cli import main

    out = tmp_path / "o"
    assert main(["process", str(short_bags["mcap"]), str(out), "--model", str(model_files / "m.onnx"),
                 "--keypoints", "none", "--param", "correspondence_method=matcher", "--param",
                 f"matcher_file={model_files / 'matcher.onnx'}", "--param", "correspondence_min_confidence=0.0",
                 "--no-progress"]) == 0
    assert f"correspondences: matcher ({model_files / 'matcher.onnx'}, onnxruntime)" in capsys.readouterr().out
    msgs = decoded(out, OUTPUT_TOPICS["correspondences"])
    assert len(msgs) == FRAMES - 1
    for m in msgs:  # one query per coarse cell (8 px) of the 320x240 frames: centres at 8c + 3.5
        a = np.asarray(m.pixels_a).reshape(-1, 2)
        assert 0 < len(a) <= 200 and np.allclose((a - 3.5) / 8, np.round((a - 3.5) / 8))
        assert np.all((np.asarray(m.scores) >= 0) & (np.asarray(m.scores) <= 1))
    # without a matcher file (this model ships none) the method is refused before anything is written
    assert main(["process", str(short_bags["mcap"]), str(tmp_path / "p"), "--model", str(model_files / "m.onnx"),
                 "--keypoints", "none", "--param", "correspondence_method=matcher", "--no-progress"]) == 2
    assert "needs a matcher_file" in capsys.readouterr().err and not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------------------- bad input
def rewrite(src, dst, change):
    """Copy a bag, passing each (topic, index within the topic, rosbags message, raw) through `change`,
    which returns a message, raw bytes, or None (dropped)."""
    with BagReader(src) as r, BagWriter(dst, "mcap", store=r.store) as w:
        conns = {t: w.add_topic(t, i.msgtype, i.offered_qos) for t, i in r.topics.items()}
        seen: dict[str, int] = {}
        for topic, msgtype, ts, raw in r.messages():
            i = seen[topic] = seen.get(topic, -1) + 1
            new = change(topic, i, r.deserialize(raw, msgtype), bytes(raw))
            if isinstance(new, bytes):
                w.write(conns[topic], ts, new)
            elif new is not None:
                w.write_msg(conns[topic], ts, new)
    return dst


def test_bad_frames_are_counted_and_skipped(short_bags, model_files, tmp_path):
    def change(topic, i, msg, raw):
        if topic == "/color/image_raw" and i == 1:
            msg.encoding = "yuv422"
            return msg
        if topic == "/aligned_depth_to_color/image_raw" and i == 2:
            msg.encoding = "8UC1"
            return msg
        if topic == "/color/image_raw" and i == 3:
            return raw[: len(raw) // 3]  # undecodable bytes
        if topic == "/aligned_depth_to_color/image_raw" and i == 4:
            return None  # a lost depth image: colour 4 has no partner
        return msg

    bad = rewrite(short_bags["mcap"], tmp_path / "bad", change)
    r = run(bad, tmp_path / "o", model_files)
    assert r.frames_processed == 2  # frames 0 and 5
    reasons = " | ".join(r.dropped)
    assert "colour encoding 'yuv422' is not supported" in reasons and "depth encoding '8UC1'" in reasons
    assert r.inputs.undecodable["color"] == 1 and r.inputs.unmatched["color"] == 1
    text = r.format()
    assert "undecodable messages: color 1" in text and "unsynchronised" in text and "dropped 1: " in text


def test_no_camera_info_gives_2d_outputs(short_bags, model_files, tmp_path):
    r = process_bag(short_bags["mcap"], tmp_path / "o", settings(model_files),
                    ProcessOptions(progress=False, info_topic="none"), log=lambda *a: None)
    kps = keypoint_table(decoded(tmp_path / "o", OUTPUT_TOPICS["keypoints"]))
    assert r.frames_processed == FRAMES
    assert all(np.isnan(v[:, 2:5]).all() for v in kps.values())


@pytest.mark.parametrize(("options", "message"), [
    ({"color_topic": "/nope"}, "has no topic /nope"),
    ({"depth_topic": "/color/camera_info"}, "is sensor_msgs/msg/CameraInfo, expected sensor_msgs/msg/Image"),
    ({"depth_topic": "/color/image_raw"}, "the same topic"),
])
def test_topic_mistakes(short_bags, model_files, tmp_path, options, message):
    with pytest.raises(BagError, match=message):
        process_bag(short_bags["mcap"], tmp_path / "o", settings(model_files),
                    ProcessOptions(progress=False, **options), log=lambda *a: None)
    assert not (tmp_path / "o").exists()


def test_ambiguous_and_missing_default_topics(short_bags, model_files, tmp_path):
    from .conftest import copy_bag

    no_info = copy_bag(short_bags["mcap"], tmp_path / "noinfo", topics=["/color/image_raw",
                                                                         "/aligned_depth_to_color/image_raw"])
    with pytest.raises(BagError, match="cannot pick the info topic.*--info-topic none"):
        run(no_info, tmp_path / "o", model_files)
    with BagReader(short_bags["mcap"]) as r, BagWriter(tmp_path / "two", store=r.store) as w:
        for name in ("/color/image_raw", "/cam2/color/image_raw"):
            conn = w.add_topic(name, "sensor_msgs/msg/Image")
            for _, _, ts, raw in r.messages(["/color/image_raw"]):
                w.write(conn, ts, raw)
    with pytest.raises(BagError, match="several topics end with color/image_raw.*--color-topic"):
        run(tmp_path / "two", tmp_path / "o", model_files)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "/nonexistent/model.onnx"], "does not exist"),
    (["--keypoints", "/nonexistent/kp.json"], "does not exist"),
    (["--color-topic", "/nope"], "has no topic /nope"),
    (["--param", "map_stride=0"], "bad parameter"),
    (["--param", "no_such_parameter=1"], "unknown parameters"),
    (["--params-file", "/nonexistent.yaml"], "cannot read --params-file"),
])
def test_cli_errors_are_one_line_and_leave_no_output(short_bags, model_files, tmp_path, capsys, args, message):
    from dense_descriptor_ros.bag.cli import main

    out = tmp_path / "o"
    base = ["--model", str(model_files / "m.onnx"), "--keypoints", str(model_files / "kp.json")]
    assert main(["process", str(short_bags["mcap"]), str(out), *base, *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dense-descriptor bag process: error: ") and message in err and err.count("\n") == 1, err
    assert not out.exists() and not list(tmp_path.glob(".o.partial*"))


def test_a_missing_gpu_with_require_device_names_the_param(short_bags, model_files, tmp_path, capsys):
    """The extractor's own hint names its API (on_fallback); bag process users set --param require_device."""
    import torch

    from dense_descriptor_ros.bag.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the fallback cannot happen")
    out = tmp_path / "o"
    assert main(["process", str(short_bags["mcap"]), str(out), "--model", str(model_files / "m.safetensors"),
                 "--param", "keypoints_file=none", "--param", "backend=torch", "--param", "device=cuda",
                 "--param", "require_device=true", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--param require_device=false" in err and "on_fallback" not in err and err.count("\n") == 1, err
    assert not out.exists()


def test_existing_output_is_refused(short_bags, model_files, tmp_path):
    (tmp_path / "o").mkdir()
    with pytest.raises(BagError, match="exists already"):
        run(short_bags["mcap"], tmp_path / "o", model_files)
    assert list((tmp_path / "o").iterdir()) == []


def test_keypoints_of_another_model_are_refused(short_bags, model_files, tmp_path):
    import json

    from dense_descriptor_ros.matching.keypoints import ModelMismatchError

    kp = json.loads((model_files / "kp.json").read_text())
    kp["model"]["id"] = "0000000000000000"
    (tmp_path / "kp.json").write_text(json.dumps(kp))
    with pytest.raises(ModelMismatchError):
        run(short_bags["mcap"], tmp_path / "o", model_files, keypoints_file=str(tmp_path / "kp.json"))
    assert not (tmp_path / "o").exists()
