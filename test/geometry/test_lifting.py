"""Lifting pixels to 3D from 16UC1 (mm) / 32FC1 (m) depth: hand-computed points, holes, invalid depth."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.geometry.lifting import depth_to_meters, lift_correspondences, lift_points

K = np.array([[500.0, 0.0, 40.0], [0.0, 400.0, 30.0], [0.0, 0.0, 1.0]])


def plane(z_m: float = 1.25, h: int = 60, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """The same fronto-parallel plane as 16UC1 millimetres and 32FC1 metres."""
    mm = np.full((h, w), round(z_m * 1000), np.uint16)
    return mm, mm.astype(np.float32) / 1000


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_hand_computed_points_both_encodings(encoding):
    mm, m = plane(1.25)
    depth = mm if encoding == "16UC1" else m
    uv = np.array([[40.0, 30.0], [50.0, 10.0], [10.5, 50.25]])
    xyz, valid = lift_points(uv, depth, K, encoding=encoding)
    assert valid.all()
    # x = (u - cx) z / fx, y = (v - cy) z / fy
    expected = [[0.0, 0.0, 1.25], [10 * 1.25 / 500, -20 * 1.25 / 400, 1.25],
                [-29.5 * 1.25 / 500, 20.25 * 1.25 / 400, 1.25]]
    np.testing.assert_allclose(xyz, expected, atol=1e-6)


def test_encoding_inferred_from_dtype():
    mm, m = plane(0.8)
    uv = np.array([[5.0, 7.0]])
    np.testing.assert_allclose(lift_points(uv, mm, K)[0], lift_points(uv, m, K)[0], atol=1e-6)
    with pytest.raises(ValueError, match="uint16"):
        depth_to_meters(m, "16UC1")


@pytest.mark.parametrize(("lo", "hi"), [(0.0, float("inf")), (0.5, 2.0), (0.0, 1e40)])
def test_depth_to_meters_validity(lo, hi):
    """Zero, negative, NaN, +-inf and out-of-[lo, hi] depths are NaN, the rest unchanged."""
    m = np.array([[0.0, -1.0, np.nan, np.inf, -np.inf, 0.25, 0.5, 1.0, 2.0, 3.0]], np.float32)
    z = depth_to_meters(m, "32FC1", lo, hi)
    m64 = m.astype(np.float64)  # bounds beyond float32's range compare without overflow
    keep = np.isfinite(m64) & (m64 > 0) & (m64 >= lo) & (m64 <= hi)
    np.testing.assert_array_equal(np.isfinite(z), keep)
    np.testing.assert_array_equal(z[keep], m[keep])
    assert z is not m and np.isnan(m[0, 2]) and m[0, 0] == 0  # the input is not modified
    mm = depth_to_meters(np.array([[0, 250, 500, 2000, 2001]], np.uint16), "16UC1", lo, hi)
    expect = np.array([np.nan, 0.25, 0.5, 2.0, 2.001], np.float32)
    ok = (expect.astype(np.float64) >= lo) & (expect.astype(np.float64) <= hi)
    np.testing.assert_allclose(mm[0][ok], expect[ok], rtol=1e-6)
    assert np.isnan(mm[0][~ok]).all()


def test_hole_is_bridged_by_the_window_median():
    mm, _ = plane(1.0)
    mm[28:33, 38:43] = 0  # 5x5 hole: invalid for window 5 (all zero), bridged by window 7
    mm[27, 37] = 1100  # one outlier at the hole's corner: the median ignores it
    uv = np.array([[40.0, 30.0]])
    _, valid = lift_points(uv, mm, K, window=5)
    assert not valid[0]
    xyz, valid = lift_points(uv, mm, K, window=7)
    assert valid[0] and xyz[0, 2] == pytest.approx(1.0)


def test_median_over_mixed_depths():
    """Window 3 over depths 1..9 (mm x 100): the median is 5."""
    mm = np.zeros((5, 5), np.uint16)
    mm[1:4, 1:4] = (np.arange(1, 10) * 100).reshape(3, 3)
    xyz, valid = lift_points(np.array([[2.0, 2.0]]), mm, K, window=3, min_depth=0.0)
    assert valid[0] and xyz[0, 2] == pytest.approx(0.5)
    # Two valid values -> mean of the middle two (even count), here 0.1 and 0.9 -> 0.5.
    mm[1:4, 1:4] = 0
    mm[1, 1], mm[3, 3] = 100, 900
    assert lift_points(np.array([[2.0, 2.0]]), mm, K, window=3, min_depth=0.0)[0][0, 2] == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 0.0, -1.0, 0.01, 50.0])
def test_invalid_float_depth_gives_no_point(bad):
    _, m = plane(1.0, 5, 5)
    m[:] = bad
    xyz, valid = lift_points(np.array([[2.0, 2.0]]), m, K, window=3, min_depth=0.05, max_depth=10.0)
    assert not valid[0] and np.isnan(xyz).all()


def test_out_of_range_values_are_excluded_not_averaged():
    mm, _ = plane(1.0, 5, 5)
    mm[:, :3] = 60000  # 60 m: out of range, must not pull the median
    xyz, valid = lift_points(np.array([[2.0, 2.0]]), mm, K, window=5, max_depth=10.0)
    assert valid[0] and xyz[0, 2] == pytest.approx(1.0)


def test_pixels_outside_or_nan_are_invalid():
    mm, _ = plane(1.0)
    uv = np.array([[-3.0, 5.0], [79.4, 59.4], [80.0, 10.0], [np.nan, np.nan], [10.0, 10.0]])
    xyz, valid = lift_points(uv, mm, K)
    assert valid.tolist() == [False, True, False, False, True]
    assert np.isnan(xyz[~valid]).all() and np.isfinite(xyz[valid]).all()


def test_window_at_the_border_uses_what_is_inside():
    mm, _ = plane(2.0)
    xyz, valid = lift_points(np.array([[0.0, 0.0]]), mm, K, window=5)
    assert valid[0] and xyz[0, 2] == pytest.approx(2.0)


def test_correspondences_need_both_ends():
    mm, m = plane(1.0)
    m2 = m.copy()
    m2[:, 40:] = np.nan
    uv = np.array([[10.0, 10.0], [60.0, 10.0]])
    xa, xb, valid = lift_correspondences(uv, uv, mm, m2, K, K, window=3)
    assert valid.tolist() == [True, False]
    assert np.isnan(xa[1]).all() and np.isnan(xb[1]).all()
    np.testing.assert_allclose(xa[0], xb[0], atol=1e-6)


def test_shape_errors():
    mm, _ = plane(1.0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        lift_points(np.zeros(3), mm, K)
    with pytest.raises(ValueError, match="odd"):
        lift_points(np.zeros((1, 2)), mm, K, window=4)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        lift_points(np.zeros((1, 2)), mm, np.eye(4))
