"""DenseSimSiamLoss: hand-computed value, stop-gradient dependency, predictor requirements, collapse metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from losses_testutil import F64, map_with, pairs_from_lists, random_pairs

from dense_descriptor_ros.correspondence.pairs import PairSample
from dense_descriptor_ros.losses import DenseSimSiamLoss, collapse_std
from dense_descriptor_ros.models import Predictor

W = np.array([[2.0, 0.5], [0.0, 1.0]])
ZA = {(1, 1): [1.0, 0.0], (2, 3): [0.3, -0.7]}
ZB = {(0, 2): [0.6, 0.8], (3, 3): [-0.2, 0.9]}


def linear(w: np.ndarray = W) -> nn.Linear:
    lin = nn.Linear(2, 2, bias=False).to(F64)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    return lin


def cos(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def dcos_dx(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d cos(x, y) / dx = y / (|x| |y|) - cos(x, y) x / |x|^2."""
    return y / (np.linalg.norm(x) * np.linalg.norm(y)) - cos(x, y) * x / (x @ x)


def setup() -> tuple[torch.Tensor, torch.Tensor, PairSample]:
    da = map_with(4, 4, 2, ZA).requires_grad_(True)
    db = map_with(4, 4, 2, ZB).requires_grad_(True)
    return da, db, pairs_from_lists(list(ZA), list(ZB))


def test_hand_computed_value() -> None:
    da, db, pairs = setup()
    out = DenseSimSiamLoss(linear())(da, db, pairs)
    za, zb = [np.array(v) for v in ZA.values()], [np.array(v) for v in ZB.values()]
    expected = -0.5 * np.mean([cos(W @ a, b) + cos(W @ b, a) for a, b in zip(za, zb, strict=True)])
    assert out.loss.item() == pytest.approx(expected, abs=1e-12)


def test_stop_gradient_each_view_learns_only_through_its_prediction() -> None:
    # dL/dz_b must come from -1/2 mean cos(W z_b, sg(z_a)) alone: W^T dcos/dp_b, nothing via sg(z_b).
    da, db, pairs = setup()
    DenseSimSiamLoss(linear())(da, db, pairs).loss.backward()
    za, zb = [np.array(v) for v in ZA.values()], [np.array(v) for v in ZB.values()]
    n = len(za)
    for (xb, yb), a, b in zip(ZB, za, zb, strict=True):
        only_pb = -0.5 / n * W.T @ dcos_dx(W @ b, a)
        np.testing.assert_allclose(db.grad[0, :, yb, xb].numpy(), only_pb, atol=1e-12)
        # the gradient without the stop-gradient would also have the target term: must differ
        with_target = only_pb - 0.5 / n * dcos_dx(b, W @ a)
        assert np.abs(with_target - only_pb).max() > 1e-3
    for (xa, ya), a, b in zip(ZA, za, zb, strict=True):
        np.testing.assert_allclose(da.grad[0, :, ya, xa].numpy(), -0.5 / n * W.T @ dcos_dx(W @ a, b), atol=1e-12)


def test_predictor_receives_gradient() -> None:
    da, db, pairs = setup()
    pred = linear()
    DenseSimSiamLoss(pred)(da, db, pairs).loss.backward()
    assert pred.weight.grad is not None and pred.weight.grad.abs().sum() > 0


def test_missing_predictor_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="predictor_hidden > 0"):
        DenseSimSiamLoss(None)


def test_single_valid_row_with_batchnorm_in_train_mode() -> None:
    da, db, pairs = setup()
    one = pairs_from_lists(list(ZA), list(ZB), match_valid=[True, False])
    pred = Predictor(2, 8).to(F64)
    with pytest.raises(ValueError, match="BatchNorm1d needs >= 2"):
        DenseSimSiamLoss(pred)(da, db, one)
    pred.eval()
    assert math.isfinite(DenseSimSiamLoss(pred)(da, db, one).loss.item())
    assert math.isfinite(DenseSimSiamLoss(pred.train())(da, db, pairs).loss.item())


def test_invalid_rows_never_reach_the_predictor() -> None:
    # BatchNorm statistics are batch-wide: padding rows would change every valid row's prediction.
    g = torch.Generator().manual_seed(5)
    pairs = random_pairs(1, 10, 1, 8, g)
    keep = pairs.match_valid[0]
    assert 1 < keep.sum() < 10
    removed = PairSample(pairs.matches_a[:, keep], pairs.matches_b[:, keep], pairs.match_valid[:, keep],
                         pairs.nonmatch_a[:, keep], pairs.nonmatch_b[:, keep], pairs.nonmatch_valid[:, keep],
                         pairs.nonmatch_background[:, keep])
    da, db = torch.randn(1, 3, 8, 8, generator=g, dtype=F64), torch.randn(1, 3, 8, 8, generator=g, dtype=F64)
    torch.manual_seed(0)
    loss = DenseSimSiamLoss(Predictor(3, 8).to(F64))
    torch.testing.assert_close(loss(da, db, pairs).loss, loss(da, db, removed).loss, rtol=0, atol=1e-12)


def test_no_valid_match_gives_zero_with_a_graph() -> None:
    da, db, _ = setup()
    none = pairs_from_lists(list(ZA), list(ZB), match_valid=[False, False])
    pred = Predictor(2, 8).to(F64)
    out = DenseSimSiamLoss(pred)(da, db, none)
    out.loss.backward()
    assert out.loss.item() == 0 and da.grad.abs().sum() == 0 and out.parts["num_matches"].item() == 0


class TestCollapseStd:
    def test_hand_value(self) -> None:
        # rows e_0, e_1: per-channel population std 0.5
        assert collapse_std(torch.eye(2)).item() == pytest.approx(0.5)

    def test_collapsed_is_zero(self) -> None:
        assert collapse_std(torch.tensor([[1.0, 2.0, 3.0]]).repeat(100, 1)).item() == pytest.approx(0, abs=1e-7)

    def test_isotropic_is_one_over_sqrt_d(self) -> None:
        z = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
        assert collapse_std(z).item() == pytest.approx(0.25, abs=0.005)

    def test_reported_in_parts(self) -> None:
        da, db, pairs = setup()
        out = DenseSimSiamLoss(linear())(da, db, pairs)
        z = torch.tensor(list(ZA.values()) + list(ZB.values()), dtype=F64)
        assert out.parts["z_std"].item() == pytest.approx(collapse_std(z).item(), abs=1e-6)
