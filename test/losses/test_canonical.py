"""The auxiliary canonical-coordinate term: cell sampling, only supervised entries count and get gradient, a
zero loss when nothing is supervised, and a linear target is learnt exactly."""

from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.losses.canonical import CanonicalCoordsLoss
from dense_descriptor_ros.losses.part import labels_at_cells

NAN = float("nan")


def test_targets_at_cell_centres():
    t = torch.arange(64.0).reshape(1, 1, 8, 8).expand(1, 4, 8, 8)
    got = labels_at_cells(t, 2, 2, 4)  # centres at pixels 1 and 5
    assert got.shape == (1, 4, 2, 2) and got[0, 2].tolist() == [[9.0, 13.0], [41.0, 45.0]]


def test_only_supervised_entries_count_and_receive_gradient():
    torch.manual_seed(0)
    loss = CanonicalCoordsLoss(3)
    desc = torch.randn(1, 3, 2, 2, requires_grad=True)
    t = torch.full((1, 4, 2, 2), NAN)
    t[0, :, 0, 0] = torch.tensor([0.1, 0.2, 0.3, 0.4])  # a mug cell: every channel
    t[0, 2:, 1, 1] = torch.tensor([0.5, 0.6])  # a bowl cell: z and r only
    out = loss(desc, t, 1)
    out.loss.backward()
    g = desc.grad.abs().sum(1)[0]
    assert g[0, 0] > 0 and g[1, 1] > 0 and g[0, 1] == 0 and g[1, 0] == 0
    assert float(out.parts["coords_cells"]) == 6.0
    with torch.no_grad():
        pred = loss.head(desc)
    expect = torch.cat([(pred[0, :, 0, 0] - t[0, :, 0, 0]).abs(), (pred[0, 2:, 1, 1] - t[0, 2:, 1, 1]).abs()]).mean()
    assert float(out.parts["coords_l1"]) == pytest.approx(float(expect), rel=1e-5)


def test_nothing_supervised_is_a_zero_loss_that_backpropagates():
    loss = CanonicalCoordsLoss(4)
    desc = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = loss(desc, torch.full((2, 4, 3, 3), NAN), 1)
    out.loss.backward()
    assert float(out.loss.detach()) == 0.0 and desc.grad is not None and torch.isnan(out.parts["coords_l1"])


def test_a_linear_target_is_learnt():
    """Targets that are a linear function of the descriptors are fitted to within the smooth L1's precision."""
    torch.manual_seed(0)
    loss = CanonicalCoordsLoss(8)
    desc = torch.nn.functional.normalize(torch.randn(2, 8, 4, 4), dim=1)
    true = torch.randn(4, 8)
    t = torch.einsum("cd,bdhw->bchw", true, desc)
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        out = loss(desc, t, 1)
        out.loss.backward()
        opt.step()
    assert float(out.parts["coords_l1"]) < 0.02


def test_bad_inputs():
    with pytest.raises(ValueError):
        CanonicalCoordsLoss(0)
    with pytest.raises(ValueError, match="targets"):
        CanonicalCoordsLoss(4)(torch.randn(1, 4, 2, 2), torch.zeros(1, 3, 2, 2), 1)
