"""Lifting a descriptor network to C_N (issue #16): exact equivariance at right angles, invariant pooling,
orientations that turn with the image, and relative rotations from orbits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dense_descriptor_ros.eval.baselines import DenseRootSIFT
from dense_descriptor_ros.rotation import (
    OrbitLifter,
    circular_peak,
    group_pool,
    orbit_orientation,
    orbit_rotation,
    rotate_image,
)

from ..conftest import textured_image


@pytest.fixture(scope="module")
def image():
    img = textured_image(np.random.default_rng(3), 64, 96)
    return torch.from_numpy(img).permute(2, 0, 1)[None].double().div(255.0)


@pytest.fixture(scope="module")
def net():
    """A real descriptor that is not rotation-invariant: dense RootSIFT on a fixed grid."""
    sift = DenseRootSIFT(4).double()
    return lambda x: sift(x)


def turn(x: torch.Tensor, quarters: int) -> torch.Tensor:
    return torch.rot90(x, quarters, dims=(-2, -1))


class TestRotateImage:
    def test_right_angles_turn_by_index_counter_clockwise(self):
        img = torch.zeros(1, 1, 5, 5)
        img[0, 0, 2, 4] = 1.0  # right of the centre
        out, inside = rotate_image(img, math.pi / 2)
        assert out[0, 0].nonzero().tolist() == [[0, 2]]  # now above it
        assert inside.min() == 1.0
        out, _ = rotate_image(torch.rand(1, 3, 4, 6), 3 * math.pi / 2)
        assert out.shape == (1, 3, 6, 4)

    def test_other_angles_use_a_square_canvas_and_compose_exactly(self, image):
        a, inside = rotate_image(image, math.pi / 4)
        assert a.shape[-2:] == (96, 96) and 0 < inside.mean() < 1
        # turning by 90 degrees and then by 45 is turning by 135: the lifted orbit's exactness rests on it
        b, _ = rotate_image(turn(image, 1), math.pi / 4)
        c, _ = rotate_image(image, 3 * math.pi / 4)
        torch.testing.assert_close(b, c, atol=1e-9, rtol=0)

    def test_a_turn_back_restores_the_inside(self, image):
        there, _ = rotate_image(image, math.radians(30))
        back, inside = rotate_image(there[..., 16:80, :], math.radians(-30))  # the original rows of the square
        sel = inside[0, 0] > 0.999
        assert sel.float().mean() > 0.3


class TestOrbit:
    @pytest.mark.parametrize("order", [4, 8])
    def test_a_right_angle_shifts_the_orbit(self, image, net, order):
        lifter = OrbitLifter(net, 4, order)
        oa, wa = lifter.orbit(image)
        ob, wb = lifter.orbit(turn(image, 1))
        assert oa.shape == (order, 128, 16, 24) and ob.shape == (order, 128, 24, 16)
        m = order // 4  # members per right angle
        torch.testing.assert_close(ob, turn(torch.roll(oa, -m, dims=0), 1), atol=1e-6, rtol=0)
        torch.testing.assert_close(wb, turn(torch.roll(wa, -m, dims=0), 1))
        # the pooled descriptor is invariant
        torch.testing.assert_close(group_pool(ob, wb), turn(group_pool(oa, wa), 1), atol=1e-6, rtol=0)

    def test_the_plain_descriptor_is_not_invariant(self, image, net):
        """What the lifting fixes: the grid RootSIFT of a turned image is another descriptor."""
        d = net(image)[0]
        db = net(turn(image, 1))[0]
        cos = (turn(d, 1) * db).sum(0)
        assert cos.median() < 0.7

    def test_orientation_turns_with_the_image(self, image, net):
        lifter = OrbitLifter(net, 4, 8)
        oa, wa = lifter.orbit(image)
        ob, wb = lifter.orbit(turn(image, 1))
        ta, sa = orbit_orientation(oa, wa)
        tb, _ = orbit_orientation(ob, wb)
        diff = torch.remainder(turn(tb, -1) - ta, 2 * math.pi)
        strong = sa > 0.05
        assert strong.float().mean() > 0.5
        np.testing.assert_allclose(diff[strong].numpy(), math.pi / 2, atol=1e-4)

    def test_relative_rotation_from_orbits(self, image, net):
        lifter = OrbitLifter(net, 4, 8)
        oa, _ = lifter.orbit(image)
        ob, _ = lifter.orbit(turn(image, 2))
        ob = turn(ob, -2)  # the same pixels
        k = oa.flatten(2).permute(2, 0, 1)
        rot, score = orbit_rotation(k, ob.flatten(2).permute(2, 0, 1))
        np.testing.assert_allclose(rot.numpy(), math.pi, atol=1e-6)
        assert (score > 0.99).all()

    def test_bad_order(self, net):
        with pytest.raises(ValueError, match="order"):
            OrbitLifter(net, 4, 6)


def test_circular_peak_is_sub_bin_and_wraps():
    m = 12
    x = torch.arange(m, dtype=torch.float64)
    for true in (3.3, 11.8, 0.2):
        d = torch.remainder(x - true + m / 2, m) - m / 2
        pos, _ = circular_peak(-(d**2)[None])
        assert pos.item() == pytest.approx(true, abs=1e-9)
