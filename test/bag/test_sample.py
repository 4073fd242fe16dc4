"""The shipped sample bag: what it holds, and that `bag sample` rebuilds it message for message from a fresh
render (so the committed file is what the code makes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dense_descriptor_ros.bag.io import BagError, BagReader
from dense_descriptor_ros.bag.sample import GROUND_TRUTH_FILE, SAMPLE_BAG, SAMPLE_TOPICS, write_sample_bag
from dense_descriptor_ros.ros_core import image_to_depth, image_to_rgb, intrinsics_from_camera_info

from .conftest import messages


def test_sample_contents(sample_bag):
    with BagReader(sample_bag) as r:
        assert r.storage == "mcap" and r.compression == "zstd (mcap chunks)"
        assert r.size_bytes < 5 * 2**20
        assert {t: r.topics[t].count for t in SAMPLE_TOPICS.values()} == dict.fromkeys(SAMPLE_TOPICS.values(), 30)
        assert r.duration_ns == round(29e9 / 30)
        (_, tc, _, c), (_, td, _, d), (_, ti, _, i) = (next(r.messages([SAMPLE_TOPICS[k]]))
                                                       for k in ("color", "depth", "info"))
        color, depth, info = r.deserialize(c, tc), r.deserialize(d, td), r.deserialize(i, ti)
    assert (color.encoding, color.width, color.height, depth.encoding) == ("rgb8", 320, 240, "16UC1")
    assert image_to_rgb(color).std() > 10 and np.nanmedian(image_to_depth(depth)) > 0.3
    gt = json.loads((sample_bag / GROUND_TRUTH_FILE).read_text())
    np.testing.assert_allclose(intrinsics_from_camera_info(info).K, np.array(gt["K"]))
    assert len(gt["T_world_camera"]) == 30 and gt["recording"]["rate"] == 30.0


def test_sample_is_rebuilt_identically(tmp_path):
    if not (SAMPLE_BAG / "metadata.yaml").is_file():
        pytest.skip("no shipped sample in this checkout")
    out = write_sample_bag(tmp_path / "s", cache=tmp_path / "cache", log=lambda *a: None)
    for topic in SAMPLE_TOPICS.values():
        assert messages(out, topic) == messages(SAMPLE_BAG, topic), topic
    assert json.loads((out / GROUND_TRUTH_FILE).read_text()) == json.loads((SAMPLE_BAG / GROUND_TRUTH_FILE).read_text())
    with pytest.raises(BagError, match="exists already"):
        write_sample_bag(out, cache=tmp_path / "cache", log=lambda *a: None)
