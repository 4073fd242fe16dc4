from __future__ import annotations

import math

import pytest
import torch
from losses_testutil import F64, pairs_from_lists

from dense_descriptor_ros.losses import DenseInfoNCELoss, build_loss


def one_hot_map(h: int, w: int) -> torch.Tensor:
    """(1, h*w, h, w): every pixel has its own orthogonal descriptor."""
    return torch.eye(h * w, dtype=F64).reshape(h * w, h, w)[None]


def test_constant_descriptors_give_log_of_the_number_of_cells():
    desc = torch.ones(1, 4, 5, 6, dtype=F64)
    pairs = pairs_from_lists([(1.0, 1.0), (3.0, 2.0)], [(2.0, 2.0), (4.0, 3.0)])
    out = DenseInfoNCELoss(temperature=0.1, sigma=1.0)(desc, desc, pairs)
    assert out.loss.item() == pytest.approx(math.log(30))


def test_perfect_descriptors_reach_the_target_entropy():
    """With orthogonal per-pixel descriptors and a tiny temperature, the softmax is one-hot at the truth,
    so the soft cross-entropy equals t(truth) * 0 + sum_{j != truth} t_j * (1 / tau) (hand-computed)."""
    h, w, tau, sigma = 4, 5, 0.01, 0.5
    desc = one_hot_map(h, w)
    pairs = pairs_from_lists([(2.0, 1.0)], [(2.0, 1.0)])
    out = DenseInfoNCELoss(temperature=tau, sigma=sigma, symmetric=False)(desc, desc, pairs)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
    t = torch.softmax((-((xs - 2) ** 2 + (ys - 1) ** 2) / (2 * sigma**2)).flatten(), 0)
    # logits: 1/tau at the truth, 0 elsewhere -> log_softmax = 0 - log(e^{1/tau} + (n-1)) ~ -(1/tau) off-truth
    logz = math.log(math.exp(1 / tau) + (h * w - 1))
    expected = -(t[1 * w + 2] * (1 / tau - logz) + (1 - t[1 * w + 2]) * (0 - logz))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.parts["argmax_err_px"].item() == 0.0


def test_stride_and_invalid_rows():
    torch.manual_seed(0)
    desc_a, desc_b = torch.randn(1, 3, 4, 4, dtype=F64), torch.randn(1, 3, 4, 4, dtype=F64)
    loss = DenseInfoNCELoss(temperature=0.2, sigma=2.0)
    base = pairs_from_lists([(5.0, 6.0)], [(9.0, 3.0)])
    padded = pairs_from_lists([(5.0, 6.0), (float("nan"), 0.0)], [(9.0, 3.0), (1e6, 1e6)], match_valid=[True, False])
    assert loss(desc_a, desc_b, padded, stride=4).loss.item() == pytest.approx(
        loss(desc_a, desc_b, base, stride=4).loss.item())


def test_gradcheck():
    torch.manual_seed(0)
    desc_a = torch.randn(1, 3, 4, 5, dtype=F64, requires_grad=True)
    desc_b = torch.randn(1, 3, 4, 5, dtype=F64, requires_grad=True)
    pairs = pairs_from_lists([(1.3, 1.6), (3.2, 2.4)], [(2.1, 0.7), (0.4, 2.6)])
    loss = DenseInfoNCELoss(temperature=0.3, sigma=1.0)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, pairs).loss, (desc_a, desc_b))


def test_factory_and_validation():
    assert isinstance(build_loss("dense_infonce", temperature=0.1), DenseInfoNCELoss)
    with pytest.raises(ValueError):
        DenseInfoNCELoss(temperature=0.0)
