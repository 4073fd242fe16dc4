"""PixelwiseContrastiveLoss: DON's hinge loss and the triplet mode, on hand-computed 4x4 maps."""

from __future__ import annotations

import math

import pytest
import torch
from losses_testutil import map_with, pairs_from_lists

from dense_descriptor_ros.correspondence.pairs import PairSample
from dense_descriptor_ros.losses import PixelwiseContrastiveLoss

# Two matches a(1,1)-b(1,1) (squared distance 0.25) and a(2,2)-b(2,2) (distance 0); four non-matches,
# non-match j anchored at match j % 2:
#   j=0 masked:     a(1,1)=[0,0] vs b(3,3)=[0.1,0]   distance 0.1  -> hinge 0.4,  squared 0.16  (hard)
#   j=1 background: a(2,2)=[1,0] vs b(0,0)=[1,0.3]   distance 0.3  -> hinge 0.2,  squared 0.04  (hard)
#   j=2 masked:     a(1,1)=[0,0] vs b(0,3)=[0,2]     distance 2    -> hinge 0                   (easy)
#   j=3 background: a(2,2)=[1,0] vs b(3,0)=[1,-0.25] distance 0.25 -> hinge 0.25, squared 0.0625 (hard)
DESC_A = map_with(4, 4, 2, {(1, 1): [0.0, 0.0], (2, 2): [1.0, 0.0]})
DESC_B = map_with(4, 4, 2, {(1, 1): [0.3, 0.4], (2, 2): [1.0, 0.0], (3, 3): [0.1, 0.0], (0, 0): [1.0, 0.3],
                            (0, 3): [0.0, 2.0], (3, 0): [1.0, -0.25]})
MATCH_A = [(1, 1), (2, 2)]
NONMATCH_A = [(1, 1), (2, 2), (1, 1), (2, 2)]
NONMATCH_B = [(3, 3), (0, 0), (0, 3), (3, 0)]
BACKGROUND = [False, True, False, True]


def hand_pairs(**kw: object) -> PairSample:
    return pairs_from_lists(MATCH_A, MATCH_A, NONMATCH_A, NONMATCH_B, background=BACKGROUND, **kw)


class TestHinge:
    def test_hand_computed_default(self) -> None:
        out = PixelwiseContrastiveLoss(margin=0.5)(DESC_A, DESC_B, hand_pairs())
        # match (0.25 + 0) / 2; masked 0.16 / 1 hard; background (0.04 + 0.0625) / 2 hard
        assert out.loss.item() == pytest.approx(0.125 + 0.16 + 0.05125, abs=1e-12)
        p = out.parts
        assert p["match"].item() == pytest.approx(0.125, abs=1e-7)
        assert p["nonmatch_masked"].item() == pytest.approx(0.16, abs=1e-7)
        assert p["nonmatch_background"].item() == pytest.approx(0.05125, abs=1e-7)
        assert (p["num_hard_negatives"].item(), p["num_hard_negatives_masked"].item(),
                p["num_hard_negatives_background"].item()) == (3, 1, 2)
        assert all(v.ndim == 0 and not v.requires_grad for v in p.values())

    def test_weights(self) -> None:
        loss = PixelwiseContrastiveLoss(margin=0.5, match_weight=2.0, masked_nonmatch_weight=3.0,
                                        background_nonmatch_weight=0.5)
        assert loss(DESC_A, DESC_B, hand_pairs()).loss.item() == pytest.approx(
            2 * 0.125 + 3 * 0.16 + 0.5 * 0.05125, abs=1e-12)

    def test_scale_by_valid_count_instead_of_hard_negatives(self) -> None:
        out = PixelwiseContrastiveLoss(margin=0.5, scale_by_hard_negatives=False)(DESC_A, DESC_B, hand_pairs())
        # masked: 0.16 over 2 valid masked non-matches (the easy one now counts in the denominator)
        assert out.parts["nonmatch_masked"].item() == pytest.approx(0.08, abs=1e-7)
        assert out.loss.item() == pytest.approx(0.125 + 0.08 + 0.05125, abs=1e-12)

    def test_margin_decides_hardness(self) -> None:
        # margin 0.28: only j=0 (0.1) is hard among masked; in background j=3 (0.25) but not j=1 (0.3)
        out = PixelwiseContrastiveLoss(margin=0.28)(DESC_A, DESC_B, hand_pairs())
        assert out.parts["nonmatch_masked"].item() == pytest.approx(0.18 ** 2, abs=1e-7)
        assert out.parts["nonmatch_background"].item() == pytest.approx(0.03 ** 2, abs=1e-7)
        assert out.parts["num_hard_negatives"].item() == 2

    def test_no_hard_negatives_gives_zero_not_nan(self) -> None:
        out = PixelwiseContrastiveLoss(margin=0.05)(DESC_A, DESC_B, hand_pairs())
        assert out.parts["nonmatch_masked"].item() == 0 and out.parts["nonmatch_background"].item() == 0
        assert out.loss.item() == pytest.approx(0.125, abs=1e-12)

    def test_invalid_rows_are_ignored(self) -> None:
        # Invalidate match 0 and the hard masked non-match j=0: match loss 0 / 1, masked: only the easy j=2.
        pairs = hand_pairs(match_valid=[False, True], nonmatch_valid=[False, True, True, True])
        out = PixelwiseContrastiveLoss(margin=0.5)(DESC_A, DESC_B, pairs)
        assert out.parts["match"].item() == 0
        assert out.parts["nonmatch_masked"].item() == 0
        assert out.loss.item() == pytest.approx(0.05125, abs=1e-12)

    def test_gradient_finite_at_zero_distance(self) -> None:
        # A non-match whose two descriptors coincide: ||.|| is not differentiable at 0 without the clamp.
        a = DESC_A.clone().requires_grad_(True)
        pairs = pairs_from_lists(MATCH_A, MATCH_A, [(2, 2)], [(2, 2)])
        out = PixelwiseContrastiveLoss(margin=0.5)(a, a, pairs)
        out.loss.backward()
        assert out.parts["nonmatch_masked"].item() == pytest.approx(0.25, abs=1e-5)  # (0.5 - sqrt(eps))^2
        assert torch.isfinite(a.grad).all()

    def test_hinge_gradient_pushes_apart(self) -> None:
        # d/db (m - ||a - b||)^2 = -2 (m - ||a - b||) (b - a) / ||a - b||: descent moves b away from a.
        b = DESC_B.clone().requires_grad_(True)
        pairs = pairs_from_lists(MATCH_A, MATCH_A, [(1, 1)], [(3, 3)])
        PixelwiseContrastiveLoss(margin=0.5, match_weight=0.0)(DESC_A, b, pairs).loss.backward()
        # a = [0, 0], b = [0.1, 0], hinge 0.4, one hard negative: grad = -2 * 0.4 * [1, 0]
        torch.testing.assert_close(b.grad[0, :, 3, 3], torch.tensor([-0.8, 0.0], dtype=torch.float64))


class TestTriplet:
    def test_hand_computed(self) -> None:
        # j -> anchor i = j % 2: ||a_i - b_i||^2 - ||a_i - b_j||^2 + 0.1
        # j=0: 0.25 - 0.01 + 0.1 = 0.34; j=1: 0 - 0.09 + 0.1 = 0.01; j=2: 0.25 - 4 + 0.1 < 0 -> 0;
        # j=3: 0 - 0.0625 + 0.1 = 0.0375
        out = PixelwiseContrastiveLoss(mode="triplet", triplet_margin=0.1)(DESC_A, DESC_B, hand_pairs())
        assert out.loss.item() == pytest.approx((0.34 + 0.01 + 0.0375) / 4, abs=1e-12)
        assert out.parts["num_active_triplets"].item() == 3

    def test_invalid_anchor_removes_its_triplets(self) -> None:
        pairs = hand_pairs(match_valid=[False, True])
        out = PixelwiseContrastiveLoss(mode="triplet", triplet_margin=0.1)(DESC_A, DESC_B, pairs)
        assert out.loss.item() == pytest.approx((0.01 + 0.0375) / 2, abs=1e-12)

    def test_invalid_nonmatch_is_ignored(self) -> None:
        pairs = hand_pairs(nonmatch_valid=[True, True, True, False])
        out = PixelwiseContrastiveLoss(mode="triplet", triplet_margin=0.1)(DESC_A, DESC_B, pairs)
        assert out.loss.item() == pytest.approx((0.34 + 0.01) / 3, abs=1e-12)

    def test_layout_violation_is_an_error(self) -> None:
        pairs = pairs_from_lists(MATCH_A, MATCH_A, NONMATCH_A[:3], NONMATCH_B[:3])
        with pytest.raises(ValueError, match="multiple of N"):
            PixelwiseContrastiveLoss(mode="triplet")(DESC_A, DESC_B, pairs)

    def test_anchor_is_the_match_not_nonmatch_a(self) -> None:
        # Per the layout, anchor j is matches_a[j % N]; the loss reads it from there.
        pairs = hand_pairs()
        moved = PairSample(pairs.matches_a, pairs.matches_b, pairs.match_valid, torch.zeros_like(pairs.nonmatch_a),
                           pairs.nonmatch_b, pairs.nonmatch_valid, pairs.nonmatch_background)
        loss = PixelwiseContrastiveLoss(mode="triplet", triplet_margin=0.1)
        assert loss(DESC_A, DESC_B, moved).loss.item() == loss(DESC_A, DESC_B, pairs).loss.item()


@pytest.mark.parametrize("kwargs", [{"mode": "pairwise"}, {"margin": 0.0}, {"triplet_margin": -1.0},
                                    {"match_weight": -1.0}, {"background_nonmatch_weight": -0.1}])
def test_bad_hyperparameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PixelwiseContrastiveLoss(**kwargs)


def test_stride_rescales_positions() -> None:
    # A 2x2 map at stride 2: input pixels 0.5 and 2.5 are the centres of map cells 0 and 1.
    da = map_with(2, 2, 1, {(0, 0): [0.0], (1, 1): [1.0]})
    db = map_with(2, 2, 1, {(0, 0): [0.5], (1, 1): [1.0]})
    pairs = pairs_from_lists([(0.5, 0.5), (2.5, 2.5)], [(0.5, 0.5), (2.5, 2.5)])
    out = PixelwiseContrastiveLoss()(da, db, pairs, stride=2)
    assert out.parts["match"].item() == pytest.approx(0.25 / 2, abs=1e-9)
    assert math.isfinite(out.loss.item())
