"""Depth-sensor noise model: disparity quantisation, dropout at depth edges and on dark surfaces."""

from __future__ import annotations

import numpy as np

from dense_descriptor_ros.sim.noise import DepthNoise, apply_depth_noise


def scene() -> tuple[np.ndarray, np.ndarray]:
    depth = np.full((60, 80), 1.0, np.float32)
    depth[20:40, 20:40] = 0.6  # a box in front of a wall: depth edges around it
    rgb = np.full((60, 80, 3), 180, np.uint8)
    rgb[:, 60:] = 0  # a black stripe
    return depth, rgb


def test_quantisation_only():
    depth, rgb = scene()
    model = DepthNoise(disparity_sigma=0.0, edge_dropout=0.0, dark_dropout=0.0, random_dropout=0.0)
    out = apply_depth_noise(depth, rgb, 300.0, np.random.default_rng(0), model)
    # z = f b / d with d rounded to 1/8 px: at 1 m, d = 22.5 px exactly; at 0.6 m, 37.5 px exactly
    np.testing.assert_allclose(out[0, 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[30, 30], 0.6, rtol=1e-6)
    z = np.full((1, 1), 1.01, np.float32)
    q = apply_depth_noise(z, rgb[:1, :1], 300.0, np.random.default_rng(0), model)
    d = 300 * 0.075 / 1.01  # 22.277 px -> 22.25 px
    np.testing.assert_allclose(q[0, 0], 300 * 0.075 / (round(d * 8) / 8), rtol=1e-6)


def test_dropout_at_edges_and_dark_pixels_is_seeded():
    depth, rgb = scene()
    model = DepthNoise(edge_dropout=1.0, dark_dropout=1.0, random_dropout=0.0, edge_width=1)
    a = apply_depth_noise(depth, rgb, 300.0, np.random.default_rng(3), model)
    b = apply_depth_noise(depth, rgb, 300.0, np.random.default_rng(3), model)
    assert np.array_equal(a, b)
    assert (a[:, 60:] == 0).all()  # black surface: no returns
    assert (a[19:21, 25:35] == 0).all() and (a[30, 17] > 0)  # the edge band drops out, beyond it does not
    assert (a[5:15, 5:55] > 0).all()  # flat, bright, away from edges: kept
    invalid = depth.copy()
    invalid[0, 0] = 0.0
    assert apply_depth_noise(invalid, rgb, 300.0, np.random.default_rng(0))[0, 0] == 0
