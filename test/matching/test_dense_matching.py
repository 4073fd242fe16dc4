"""Frame-to-frame matching: subpixel accuracy on known shifts, mutual / ratio checks, building blocks."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.matching import (
    match_dense,
    match_descriptors,
    pairwise_sqdist,
    pool_map,
    quadratic_subpixel,
    sample_map,
    subpixel_refine,
)

from .synthetic import as_map, shifted, smooth_field


class TestBuildingBlocks:
    def test_sample_map_bilinear(self):
        desc = np.arange(12, dtype=np.float32).reshape(2, 3, 2)  # value(row, col, k) = 6 row + 2 col + k
        out = sample_map(desc, np.array([[0.5, 0.5], [2.0, 1.0], [-3.0, 0.0]]))
        np.testing.assert_allclose(out, [[4.0, 5.0], [10.0, 11.0], [0.0, 1.0]])  # last one clamped

    def test_pairwise_sqdist(self):
        a = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
        b = np.array([[3.0, 4.0]], np.float32)
        np.testing.assert_allclose(pairwise_sqdist(a, b), [[25.0], [13.0]])

    def test_pool_map(self):
        desc = np.arange(6, dtype=np.float32).reshape(1, 6, 1).repeat(3, 0)  # 3 x 6, value = column
        out = pool_map(desc, 4)
        assert out.shape == (1, 2, 1)
        # Edge padding: second window holds columns 4, 5, 5, 5.
        np.testing.assert_allclose(out[0, :, 0], [1.5, 4.75])

    @pytest.mark.parametrize("mx, my", [(0.3, -0.2), (-0.45, 0.4), (0.0, 0.0)])
    def test_quadratic_subpixel_is_exact_on_a_bowl(self, mx, my):
        yy, xx = np.mgrid[-1:2, -1:2].astype(float)
        # Anisotropic bowl with a cross term: separable parabolas would be biased here.
        dx, dy = xx - mx, yy - my
        patch = 2.0 * dx**2 + 1.0 * dx * dy + 1.5 * dy**2 + 0.7
        np.testing.assert_allclose(quadratic_subpixel(patch[None]), [[mx, my]], atol=1e-9)

    def test_quadratic_subpixel_flat_gives_zero(self):
        assert np.all(quadratic_subpixel(np.ones((1, 3, 3))) == 0)

    def test_subpixel_refine_recovers_fractional_position(self):
        f = smooth_field(40, 40, sigma=3.0)
        g = shifted(f, 0.37, -0.28)
        q = f[20:21, 20]  # A's pixel (20, 20) is at (20.37, 19.72) in B
        p = subpixel_refine(g, q, np.array([[20, 20]]))
        np.testing.assert_allclose(p, [[20.37, 19.72]], atol=0.05)

    def test_match_descriptors_mutual_and_ratio(self):
        a = np.array([[0, 0], [10, 0], [5, 5]], np.float32)
        b = np.array([[0.1, 0], [10, 0.2], [0, 10]], np.float32)
        ia, ib, dist, ratio = match_descriptors(a, b)
        # a2 = (5, 5) is nearest to b0 but b0 prefers a0: not mutual.
        assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 0), (1, 1)]
        assert ratio.max() < 0.1 and dist.min() == pytest.approx(0.1)
        ia, _, _, _ = match_descriptors(a, b, max_matches=1)
        assert ia.tolist() == [0]  # the most distinctive one


SHIFT = (3.4, -2.3)  # pixels (x, y)


@pytest.fixture(scope="module")
def pair():
    a = smooth_field(90, 120, sigma=3.0, seed=1)
    return as_map(a), as_map(shifted(a, *SHIFT))


def _errors(c, shift=SHIFT):
    return c.uv_b - c.uv_a - np.array(shift)


@pytest.mark.parametrize("coarse_factor", [1, 4])
def test_known_shift_subpixel(pair, coarse_factor):
    ma, mb = pair
    c = match_dense(ma, mb, grid_step=6, coarse_factor=coarse_factor, max_matches=0)
    assert len(c) > 150
    err = np.linalg.norm(_errors(c), axis=1)
    assert np.median(err) < 0.1
    assert np.mean(err < 0.5) > 0.97
    assert np.all(c.ratio <= 0.9) and np.all(np.diff(c.ratio) >= 0)  # sorted, most distinctive first


def test_integer_precision_without_subpixel(pair):
    c = match_dense(*pair, grid_step=8, subpixel=False)
    np.testing.assert_allclose(c.uv_b % 1, 0)
    err = np.abs(_errors(c))
    assert np.median(err[:, 0]) == pytest.approx(0.4, abs=0.01)  # 3.4 rounds to 3


def test_stride_is_handled(pair):
    """The same maps declared at stride 4: every pixel quantity scales by 4."""
    a, b = pair
    c = match_dense(as_map(a.descriptors, 4.0), as_map(b.descriptors, 4.0), grid_step=24)
    assert np.median(np.linalg.norm(_errors(c, (4 * SHIFT[0], 4 * SHIFT[1])), axis=1)) < 0.4


def test_cap(pair):
    assert len(match_dense(*pair, grid_step=6, max_matches=50)) == 50


def test_mutual_check_rejects_points_that_left_the_view(pair):
    ma, _ = pair
    # B sees A shifted, but its right half shows something else (an occluder / new scene).
    b = shifted(ma.descriptors, *SHIFT)
    b[:, 60:] = smooth_field(90, 60, sigma=3.0, seed=9)
    mb = as_map(b)
    counts = {}
    for mutual in (True, False):
        for max_ratio in (1.0, 0.8):
            c = match_dense(ma, mb, grid_step=6, mutual=mutual, max_ratio=max_ratio, max_matches=0)
            err = np.linalg.norm(_errors(c), axis=1)
            counts[mutual, max_ratio] = (int((err < 1).sum()), int((err >= 1).sum()))
    # Without the mutual check, every query of A's vanished part "matches" something (measured 150 of
    # 300); with it, only chance mutual pairs between the two unrelated fields survive (27).
    right, wrong = counts[True, 1.0]
    right_all, wrong_all = counts[False, 1.0]
    assert wrong < 0.25 * wrong_all and right >= 0.95 * right_all
    right, wrong = counts[True, 0.8]  # with the ratio test as well: almost clean
    assert wrong < 0.05 * (right + wrong) and right > 100


def test_ratio_test_rejects_repeated_structure():
    """Two identical copies side by side: every match is ambiguous (ratio ~1) and must be rejected."""
    f = smooth_field(40, 40, sigma=3.0, seed=2)
    b = np.concatenate([f, f], axis=1)
    c = match_dense(as_map(f), as_map(b), grid_step=4, coarse_factor=1, max_ratio=0.9)
    assert len(c) == 0
    # Restricting B to one copy removes the ambiguity.
    mask = np.zeros((40, 80), bool)
    mask[:, :40] = True
    c = match_dense(as_map(f), as_map(b), grid_step=4, coarse_factor=1, max_ratio=0.9, mask_b=mask)
    assert len(c) > 50 and np.all(c.uv_b[:, 0] < 40)
    assert np.median(np.linalg.norm(c.uv_b - c.uv_a, axis=1)) < 0.05


def test_query_points_and_mask_a(pair):
    ma, mb = pair
    pts = np.array([[30.5, 40.25], [80.0, 50.0], [10.0, 10.0]])
    c = match_dense(ma, mb, points_a=pts, max_ratio=1.0)
    np.testing.assert_allclose(np.sort(c.uv_a, axis=0), np.sort(pts, axis=0))
    assert np.abs(_errors(c)).max() < 0.2
    mask = np.zeros((90, 120), bool)
    mask[:, :50] = True
    c = match_dense(ma, mb, points_a=pts, max_ratio=1.0, mask_a=mask)
    assert sorted(c.uv_a[:, 0].tolist()) == [10.0, 30.5]


def test_no_query_points_give_no_matches_not_an_error(pair):
    # a featureless frame A gives the detector nothing (it crashed in the coarse search's reshape before)
    ma, mb = pair
    for c in (match_dense(ma, mb, points_a=np.zeros((0, 2))),
              match_dense(ma, mb, mask_a=np.zeros((90, 120), bool))):
        assert len(c) == 0 and c.uv_a.shape == c.uv_b.shape == (0, 2)


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="descriptor dimensions"):
        match_dense(as_map(np.zeros((4, 4, 3), np.float32)), as_map(np.zeros((4, 4, 2), np.float32)))
