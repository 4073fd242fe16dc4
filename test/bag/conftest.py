"""Fixtures of the rosbag tests: the shipped sample bag, short copies of it in both storages, and a small
untrained model with a keypoint file made from it (these tests are about the tools, not accuracy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dense_descriptor_ros.bag.io import BagReader, BagWriter
from dense_descriptor_ros.bag.sample import SAMPLE_BAG, write_sample_bag

FRAMES = 6  # frames of the short bags


def copy_bag(src: Path, dst: Path, storage: str = "mcap", frames: int | None = None, topics=None,
             compression: str = "auto") -> Path:
    """Copy the raw messages of `src` (its first `frames` colour stamps) into a new bag."""
    with BagReader(src) as r, BagWriter(dst, storage, compression) as w:
        names = topics or sorted(r.topics)
        conns = {t: w.add_topic(t, r.topics[t].msgtype, r.topics[t].offered_qos, *r.topics[t].msgdef)
                 for t in names}
        stop = None
        if frames is not None:
            times = sorted({ts for _, _, ts, _ in r.messages()})
            stop = times[frames] if frames < len(times) else None
        for topic, _, ts, raw in r.messages(names, stop_ns=stop):
            w.write(conns[topic], ts, raw)
    return dst


@pytest.fixture(scope="session")
def sample_bag(tmp_path_factory) -> Path:
    """data_sample/sim_mug (made here if the checkout lacks it)."""
    if (SAMPLE_BAG / "metadata.yaml").is_file():
        return SAMPLE_BAG
    d = tmp_path_factory.mktemp("sample")
    return write_sample_bag(d / "sim_mug", cache=d / "cache", log=lambda *a: None)


@pytest.fixture(scope="session")
def short_bags(sample_bag, tmp_path_factory) -> dict[str, Path]:
    """The sample's first FRAMES frames, as mcap (zstd chunks) and as sqlite3."""
    d = tmp_path_factory.mktemp("short")
    return {s: copy_bag(sample_bag, d / f"short_{s}", s, FRAMES) for s in ("mcap", "sqlite3")}


@pytest.fixture(scope="session")
def model_files(sample_bag, tmp_path_factory) -> Path:
    """m.onnx + m.safetensors (the same small untrained network), kp.json annotated with it on the sample's first
    frame at the node's default resolution (320x240, the sample's size), a part probe and a matcher for it."""
    from dense_descriptor_ros.matching.keypoints import annotate_keypoints, model_identity
    from dense_descriptor_ros.models import build_model
    from dense_descriptor_ros.models.config import ModelConfig
    from dense_descriptor_ros.models.io import save_model
    from dense_descriptor_ros.ros_core import image_to_rgb
    from dense_descriptor_ros.runtime import DescriptorExtractor, ExtractorConfig, export_onnx

    d = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    net = build_model(ModelConfig(name="lite", normalize=True, decoder_channels=16, width_mult=0.5)).eval()
    save_model(net, d / "m.safetensors")
    export_onnx(net, d / "m.onnx")
    with BagReader(sample_bag) as r:
        _, msgtype, _, raw = next(r.messages(["/color/image_raw"]))
        img = image_to_rgb(r.deserialize(raw, msgtype))
    ex = DescriptorExtractor.from_model(net, ExtractorConfig(warmup_iters=0))
    points = {"rim": (160.0, 100.0), "body": (150.0, 140.0), "table": (40.0, 220.0)}
    annotate_keypoints(ex.extract(img), points, model_identity(ex.info), "mug", "sample frame 0").save(d / "kp.json")
    from dense_descriptor_ros.runtime.part_probe import PartProbe

    w = np.zeros((2, 16), np.float32)
    w[1, 0] = 1.0  # "mug/body" where descriptor channel 0 is positive
    PartProbe(w, np.zeros(2, np.float32), ["background", "mug/body"], {"id": ex.info.model_id}).save(d / "probe.st")
    from dense_descriptor_ros.matcher.config import MatcherConfig
    from dense_descriptor_ros.matcher.export import export_matcher_onnx
    from dense_descriptor_ros.matcher.io import MatcherInfo
    from dense_descriptor_ros.matcher.model import MatcherNet

    torch.manual_seed(0)  # an untrained learned matcher for this model (correspondence_method matcher)
    matcher = MatcherNet(MatcherConfig(descriptor_dim=16, d_model=16, layers=1, heads=2, fine_dim=8, image_channels=8))
    export_matcher_onnx(matcher, MatcherInfo(ex.info.model_id, ex.info.stride), d / "matcher.onnx")
    return d


def messages(path: Path, topic: str) -> list[tuple[int, bytes]]:
    """(log time, raw bytes) of one topic."""
    with BagReader(path) as r:
        return [(ts, bytes(raw)) for _, _, ts, raw in r.messages([topic])]


def decoded(path: Path, topic: str) -> list:
    """rosbags message objects of one topic."""
    with BagReader(path) as r:
        return [r.deserialize(raw, t) for _, t, _, raw in r.messages([topic])]


def keypoint_table(msgs) -> dict[int, np.ndarray]:
    """stamp ns -> (K, 6) [pixel_x, pixel_y, x, y, z, score] of KeypointArray messages (rclpy or rosbags)."""
    out = {}
    for m in msgs:
        stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        out[stamp] = np.array([[k.pixel_x, k.pixel_y, k.position.x, k.position.y, k.position.z, k.score]
                               for k in m.keypoints], np.float64)
    return out
