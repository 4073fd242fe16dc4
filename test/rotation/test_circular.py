"""Circular descriptors (issue #16): ring sampling, the rotation their circular correlation returns, on shifted
rings and on a real rotation-invariant descriptor of a turned image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dense_descriptor_ros.eval.baselines import OrientedDenseRootSIFT
from dense_descriptor_ros.rotation.circular import angle_difference, circular_descriptors, circular_match, ring_offsets

from ..conftest import textured_image


def test_ring_offsets():
    off = ring_offsets((2.0, 5.0), 8)
    assert off.shape == (2, 8, 2)
    np.testing.assert_allclose(off.norm(dim=-1).numpy(), [[2.0] * 8, [5.0] * 8], atol=1e-6)
    np.testing.assert_allclose(off[1, 2].numpy(), [0.0, 5.0], atol=1e-6)  # a quarter turn: +y (down)
    with pytest.raises(ValueError):
        ring_offsets((2.0,), 2)
    with pytest.raises(ValueError):
        ring_offsets((0.0,), 8)


def test_shifted_rings_give_the_rotation():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(5, 3, 36, 16, generator=g), dim=-1)
    for bins in (0, 4, 27):
        # B turned by +a: A's sample m is B's sample m - a / step, so B[m] = A[m + a / step]
        rot, sim = circular_match(a, torch.roll(a, -bins, dims=2))
        np.testing.assert_allclose(rot.numpy(), math.radians(10 * bins), atol=1e-5)
        np.testing.assert_allclose(sim.numpy(), 1.0, atol=1e-6)


def test_angle_difference():
    got = angle_difference(torch.tensor([0.1, 2 * math.pi - 0.1, math.pi]), 0.0)
    np.testing.assert_allclose(got.numpy(), [0.1, 0.1, math.pi], atol=1e-6)


def test_turned_image_with_an_invariant_descriptor():
    """Oriented RootSIFT is rotation-invariant per pixel; its rings around the same physical points of an image
    and of the image turned by 90 degrees return 90 degrees."""
    img = torch.from_numpy(textured_image(np.random.default_rng(2), 72, 96)).permute(2, 0, 1)[None].float() / 255
    sift = OrientedDenseRootSIFT(4)
    da, db = sift(img)[0], sift(torch.rot90(img, 1, dims=(2, 3)))[0]
    ys, xs = np.mgrid[24:48:6, 28:68:6]
    uv_a = torch.tensor(np.stack([xs.ravel(), ys.ravel()], 1), dtype=torch.float32)
    uv_b = torch.stack([uv_a[:, 1], 95 - uv_a[:, 0]], 1)  # torch.rot90 by +1: (x, y) -> (y, W - 1 - x)
    rot, _ = circular_match(circular_descriptors(da, uv_a, 4), circular_descriptors(db, uv_b, 4))
    err = np.degrees(angle_difference(rot, math.pi / 2).numpy())
    assert (err <= 10).mean() >= 0.9, err
    # the plain grid descriptor read the same way does not know the rotation
    from dense_descriptor_ros.eval.baselines import DenseRootSIFT

    grid = DenseRootSIFT(4)
    rot, _ = circular_match(circular_descriptors(grid(img)[0], uv_a, 4),
                            circular_descriptors(grid(torch.rot90(img, 1, dims=(2, 3)))[0], uv_b, 4))
    assert (np.degrees(angle_difference(rot, math.pi / 2).numpy()) <= 10).mean() < 0.5
