"""The consumer's object mask (pure core): keypoints whose pixel the label image calls background are dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dense_descriptor_ros.acf.consumer import ConsumerOptions, HandleFrameConsumer, on_object

# a mug's handle and rim in the optical frame (metres): enough for a handle frame with an approach
POINTS = {"handle_top": np.array([0.05, -0.03, 0.5]), "handle_bottom": np.array([0.05, 0.03, 0.5]),
          "handle_outer": np.array([0.07, 0.0, 0.5]), "rim_front": np.array([0.0, -0.05, 0.48]),
          "rim_back": np.array([-0.04, -0.05, 0.52])}
PIXELS = {"handle_top": (10.0, 5.0), "handle_bottom": (10.0, 15.0), "handle_outer": (14.0, 10.0),
          "rim_front": (3.0, 2.0), "rim_back": (1.0, 2.0)}


def test_on_object():
    labels = np.zeros((20, 30), np.uint8)
    labels[5:16, 8:12] = 2
    got = on_object({"in": (9.6, 5.4), "edge": (12.4, 5.0), "off": (20.0, 10.0), "outside": (40.0, 5.0),
                     "nan": (math.nan, 5.0), "negative": (-1.0, 5.0)}, labels)
    assert got == {"in": True, "edge": False, "off": False, "outside": False, "nan": False, "negative": False}
    with pytest.raises(ValueError, match="H, W"):
        on_object({}, np.zeros((2, 2, 1), np.uint8))


def test_the_mask_drops_keypoints_on_the_background():
    valid = dict.fromkeys(POINTS, True)
    c = HandleFrameConsumer(ConsumerOptions(labels_topic="/l"))
    everything = np.ones((20, 30), np.uint8)
    frame, rec = c.process(1, POINTS, valid, pixels=PIXELS, labels=everything)
    assert frame is not None and rec.keypoints_valid == 5 and c.masked_keypoints == 0
    handle_only = np.zeros((20, 30), np.uint8)
    handle_only[:, 8:] = 1  # the rim keypoints (x < 8) are on the background
    frame, rec = c.process(2, POINTS, valid, pixels=PIXELS, labels=handle_only)
    assert rec.keypoints_valid == 3 and c.masked_keypoints == 2 and frame is not None and frame.approach is None
    frame, rec = c.process(3, POINTS, valid, pixels=PIXELS, labels=np.zeros((20, 30), np.uint8))
    assert frame is None and rec.keypoints_valid == 0 and c.masked_keypoints == 7
    frame, rec = c.process(4, POINTS, valid, pixels=PIXELS, labels=None)  # no label image for this frame
    assert frame is not None and rec.keypoints_valid == 5
    assert c.masked_frames == 3
    assert any("3 of 4 keypoint messages had a label image; 7 keypoints" in line for line in c.finish())
