"""Distinctiveness map and SuperPoint-style NMS keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.matching import detect_keypoints, distinctiveness, match_dense, nms

from .synthetic import as_map, smooth_field


def test_distinctiveness_corner_vs_edges():
    """Channel 0 steps at column 10 (a vertical edge), channel 1 at row 8 (a horizontal edge)."""
    d = np.zeros((16, 20, 2), np.float32)
    d[:, 10:, 0] = 1.0
    d[8:, :, 1] = 1.0
    s = distinctiveness(d, window=3)
    # Central differences give 0.5 on columns 9, 10 (rows 7, 8); the 3x3 mean at the crossing holds two
    # of three such columns and rows: Jxx = Jyy = 2/3 * 0.25, Jxy = 0 -> smaller eigenvalue 1/6.
    assert s[8, 10] == pytest.approx(1 / 6)
    assert s.max() == pytest.approx(1 / 6)
    assert s[2, 10] == pytest.approx(0) and s[8, 3] == pytest.approx(0)  # edges: aperture problem
    assert s[2, 3] == 0  # flat


class TestNms:
    def test_radius_and_order(self):
        score = np.zeros((10, 10))
        score[2, 2], score[2, 4], score[7, 7] = 3.0, 2.0, 1.0
        rc, sc = nms(score, radius=2, max_keypoints=0)
        assert rc.tolist() == [[2, 2], [7, 7]] and sc.tolist() == [3.0, 1.0]  # (2, 4) is within 2 of (2, 2)
        rc, _ = nms(score, radius=1, max_keypoints=0)
        assert rc.tolist() == [[2, 2], [2, 4], [7, 7]]
        rc, _ = nms(score, radius=1, max_keypoints=2)
        assert rc.tolist() == [[2, 2], [2, 4]]

    def test_plateau_keeps_one(self):
        score = np.zeros((6, 6))
        score[2:4, 2:4] = 1.0
        rc, _ = nms(score, radius=1, max_keypoints=0)
        assert len(rc) == 1

    def test_min_score_and_valid(self):
        score = np.zeros((6, 6))
        score[1, 1], score[4, 4] = 0.5, 2.0
        assert nms(score, 1, 0, min_score=1.0)[0].tolist() == [[4, 4]]
        valid = np.ones((6, 6), bool)
        valid[4, 4] = False
        assert nms(score, 1, 0, valid=valid)[0].tolist() == [[1, 1]]


@pytest.fixture(scope="module")
def field():
    return smooth_field(100, 130, sigma=2.0, seed=5)


@pytest.mark.parametrize("stride", [1.0, 4.0])
def test_min_distance_cap_border(field, stride):
    uv, score = detect_keypoints(as_map(field, stride), min_distance=3 * stride, max_keypoints=80)
    assert len(uv) == 80 and np.all(np.diff(score) <= 0)
    gap = np.linalg.norm(uv[:, None] - uv[None], axis=-1) + np.eye(len(uv)) * 1e9
    assert gap.min() >= 3 * stride
    cells = as_map(field, stride).to_map(uv)
    assert cells.min() >= 1 and cells[:, 0].max() <= 128 and cells[:, 1].max() <= 98


def test_repeatable_under_translation(field):
    """B shows A moved by (5, 3) pixels: B's keypoints are A's keypoints minus the shift."""
    a, b = field[:80, :100], field[3:83, 5:105]
    kp_a, _ = detect_keypoints(as_map(a), min_distance=4, max_keypoints=60, border=8)
    kp_b, _ = detect_keypoints(as_map(b), min_distance=4, max_keypoints=60, border=8)
    d = np.linalg.norm((kp_b + [5, 3])[:, None] - kp_a[None], axis=-1).min(1)
    assert np.mean(d < 0.5) > 0.8


def test_mask(field):
    mask = np.zeros((100, 130), bool)
    mask[:, 65:] = True
    uv, _ = detect_keypoints(as_map(field), mask=mask)
    assert len(uv) > 0 and uv[:, 0].min() >= 65


def test_match_at_detected_keypoints(field):
    from .synthetic import shifted

    kp, _ = detect_keypoints(as_map(field), min_distance=6, max_keypoints=100, border=6)
    c = match_dense(as_map(field), as_map(shifted(field, 1.5, 2.25)), points_a=kp, coarse_factor=2)
    assert len(c) > 50
    err = np.linalg.norm(c.uv_b - c.uv_a - [1.5, 2.25], axis=1)
    assert np.median(err) < 0.1 and err.max() < 0.5
