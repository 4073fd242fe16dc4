"""PixelInfoNCELoss: uniform value log(N), perfect separation, a hand-computed 2-point case, masking."""

from __future__ import annotations

import math

import pytest
import torch
from losses_testutil import F64, map_with, pairs_from_lists, random_pairs

from dense_descriptor_ros.correspondence.pairs import PairSample
from dense_descriptor_ros.losses import PixelInfoNCELoss

PIXELS = [(0, 0), (1, 2), (3, 1), (2, 3), (3, 3)]


def constant_map(d: int = 3, b: int = 1) -> torch.Tensor:
    return torch.tensor([0.3, -1.2, 0.7][:d], dtype=F64).view(1, d, 1, 1).expand(b, d, 4, 4).contiguous()


def lse(*x: float) -> float:
    return math.log(sum(math.exp(v) for v in x))


class TestUniform:
    @pytest.mark.parametrize("symmetric", [True, False])
    def test_constant_descriptors_give_log_n(self, symmetric: bool) -> None:
        pairs = pairs_from_lists(PIXELS, PIXELS[::-1])
        out = PixelInfoNCELoss(symmetric=symmetric)(constant_map(), constant_map(), pairs)
        assert out.loss.item() == pytest.approx(math.log(5), abs=1e-12)

    @pytest.mark.parametrize("symmetric", [True, False])
    def test_valid_nonmatches_add_negatives(self, symmetric: bool) -> None:
        # A->B has 5 matched keys + 2 valid non-match keys; B->A only the 5 matched keys.
        pairs = pairs_from_lists(PIXELS, PIXELS, [(0, 1)] * 3, [(1, 1)] * 3, nonmatch_valid=[True, False, True])
        out = PixelInfoNCELoss(symmetric=symmetric, use_nonmatches=True)(constant_map(), constant_map(), pairs)
        expected = 0.5 * (math.log(7) + math.log(5)) if symmetric else math.log(7)
        assert out.loss.item() == pytest.approx(expected, abs=1e-12)

    def test_queries_pooled_over_batch_with_uneven_valid_counts(self) -> None:
        # Element 0: 5 valid (log 5 each), element 1: 3 valid (log 3 each); invalid rows are no keys.
        p0 = pairs_from_lists(PIXELS, PIXELS)
        p1 = pairs_from_lists(PIXELS, PIXELS, match_valid=[True, False, True, False, True])
        pairs = PairSample.collate([p0, p1])
        out = PixelInfoNCELoss()(constant_map(b=2), constant_map(b=2), pairs)
        assert out.loss.item() == pytest.approx((5 * math.log(5) + 3 * math.log(3)) / 8, abs=1e-12)


class TestSeparated:
    def test_one_hot_descriptors_give_zero_loss_and_full_accuracy(self) -> None:
        one_hot = {p: torch.eye(4)[i].tolist() for i, p in enumerate(PIXELS[:4])}
        da = map_with(4, 4, 4, one_hot)
        db = map_with(4, 4, 4, {(y, x): v for (x, y), v in one_hot.items()})  # B is A transposed
        pairs = pairs_from_lists(PIXELS[:4], [(y, x) for x, y in PIXELS[:4]])
        out = PixelInfoNCELoss(temperature=0.01)(da, db, pairs)
        assert out.loss.item() < 1e-12  # 3 * exp(-100)
        assert out.parts["accuracy"].item() == 1.0

    def test_hand_computed_two_points(self) -> None:
        # a0 = [1, 0], a1 = [0, 1]; b0 = [1, 0], b1 = [0.8, 0.6] (unit); t = 0.5 -> logits = 2 * cos.
        # A->B rows: [2, 1.6], [0, 1.2];   B->A rows: [2, 0], [1.6, 1.2] (row 1 picks a0: wrong).
        da = map_with(4, 4, 2, {(1, 1): [2.0, 0.0], (2, 1): [0.0, 3.0]})  # scale is normalised away
        db = map_with(4, 4, 2, {(0, 2): [1.0, 0.0], (3, 2): [0.4, 0.3]})
        pairs = pairs_from_lists([(1, 1), (2, 1)], [(0, 2), (3, 2)])
        out = PixelInfoNCELoss(temperature=0.5)(da, db, pairs)
        l_ab = 0.5 * ((lse(2, 1.6) - 2) + (lse(0, 1.2) - 1.2))
        l_ba = 0.5 * ((lse(2, 0) - 2) + (lse(1.6, 1.2) - 1.2))
        assert out.parts["infonce_ab"].item() == pytest.approx(l_ab, abs=1e-6)
        assert out.parts["infonce_ba"].item() == pytest.approx(l_ba, abs=1e-6)
        assert out.loss.item() == pytest.approx(0.5 * (l_ab + l_ba), abs=1e-12)
        assert out.parts["accuracy_ab"].item() == 1.0 and out.parts["accuracy_ba"].item() == 0.5
        assert out.parts["accuracy"].item() == 0.75

    def test_nonmatch_key_enters_denominator(self) -> None:
        # As above, non-symmetric, plus a non-match key b(0,0) = [0, 1]: logits +[0, 2] per A->B row.
        da = map_with(4, 4, 2, {(1, 1): [1.0, 0.0], (2, 1): [0.0, 1.0]})
        db = map_with(4, 4, 2, {(0, 2): [1.0, 0.0], (3, 2): [0.8, 0.6], (0, 0): [0.0, 1.0]})
        pairs = pairs_from_lists([(1, 1), (2, 1)], [(0, 2), (3, 2)], [(1, 1), (2, 1)], [(0, 0), (0, 0)],
                                 nonmatch_valid=[True, False])
        out = PixelInfoNCELoss(temperature=0.5, symmetric=False, use_nonmatches=True)(da, db, pairs)
        expected = 0.5 * ((lse(2, 1.6, 0) - 2) + (lse(0, 1.2, 2) - 1.2))
        assert out.loss.item() == pytest.approx(expected, abs=1e-12)
        assert out.parts["accuracy"].item() == 0.5  # row 1 now prefers the non-match


def test_invalid_rows_match_removed_rows() -> None:
    g = torch.Generator().manual_seed(3)
    pairs = random_pairs(1, 12, 2, 8, g)
    da, db = torch.randn(1, 4, 8, 8, generator=g, dtype=F64), torch.randn(1, 4, 8, 8, generator=g, dtype=F64)
    keep, keep_nm = pairs.match_valid[0], pairs.nonmatch_valid[0]
    removed = PairSample(pairs.matches_a[:, keep], pairs.matches_b[:, keep], pairs.match_valid[:, keep],
                         pairs.nonmatch_a[:, keep_nm], pairs.nonmatch_b[:, keep_nm],
                         pairs.nonmatch_valid[:, keep_nm], pairs.nonmatch_background[:, keep_nm])
    loss = PixelInfoNCELoss(use_nonmatches=True)
    torch.testing.assert_close(loss(da, db, pairs).loss, loss(da, db, removed).loss, rtol=0, atol=1e-12)


def test_bad_temperature() -> None:
    with pytest.raises(ValueError, match="temperature"):
        PixelInfoNCELoss(temperature=0.0)
