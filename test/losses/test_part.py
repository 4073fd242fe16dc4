"""The auxiliary part-classification term: cell sampling by hand, ignored labels, gradients and overfitting."""

from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.losses.part import IGNORE, PartClassificationLoss, class_weights, labels_at_cells


def test_labels_at_cell_centres():
    labels = torch.arange(64).reshape(1, 8, 8)
    # stride 4: centres at pixels 1 and 5 (c * 4 + 3 // 2)
    assert labels_at_cells(labels, 2, 2, 4).tolist() == [[[9, 13], [41, 45]]]
    assert labels_at_cells(labels, 8, 8, 1).equal(labels)
    # a map that overhangs the image (ceil division) reads the last row / column
    assert labels_at_cells(labels, 3, 3, 4)[0, 2].tolist() == [57, 61, 63]


def test_only_labelled_cells_count_and_receive_gradient():
    torch.manual_seed(0)
    loss = PartClassificationLoss(4, 3)
    desc = torch.randn(1, 4, 2, 2, requires_grad=True)
    labels = torch.tensor([[[1, IGNORE], [IGNORE, 2]]])
    out = loss(desc, labels, 1)
    out.loss.backward()
    g = desc.grad.abs().sum(1)[0]
    assert g[0, 0] > 0 and g[1, 1] > 0 and g[0, 1] == 0 and g[1, 0] == 0
    assert 0.0 <= float(out.parts["part_acc"]) <= 1.0


def test_nothing_labelled_is_a_zero_loss_that_backpropagates():
    loss = PartClassificationLoss(4, 3)
    desc = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = loss(desc, torch.full((2, 3, 3), IGNORE), 1)
    out.loss.backward()
    assert float(out.loss.detach()) == 0.0 and desc.grad is not None and torch.isnan(out.parts["part_acc"])


def test_loss_at_init_and_one_batch_overfits():
    """At zero weights the loss is log C (uniform); a fixed batch of separable descriptors is learnt."""
    torch.manual_seed(0)
    loss = PartClassificationLoss(8, 5)
    torch.nn.init.zeros_(loss.head.weight)
    torch.nn.init.zeros_(loss.head.bias)
    desc = torch.nn.functional.normalize(torch.randn(1, 8, 3, 3), dim=1)
    labels = torch.randint(0, 5, (1, 3, 3))
    assert float(loss(desc, labels, 1).loss.detach()) == pytest.approx(torch.log(torch.tensor(5.0)).item(), rel=1e-5)
    opt = torch.optim.Adam(loss.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        out = loss(desc, labels, 1)
        out.loss.backward()
        opt.step()
    # 9 points in general position in 8-D: any labelling is linearly separable
    assert float(out.parts["part_acc"]) == 1.0


def test_class_weights_by_hand():
    # 6 background, 2 handle, class 2 absent: n = 8, k = 2 -> sqrt(8 / (2 * 6)), sqrt(8 / (2 * 2)), 0
    w = class_weights(torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]), 3)
    assert w.tolist() == pytest.approx([(8 / 12) ** 0.5, 2 ** 0.5, 0.0])


def test_balance_raises_the_rare_class_share_of_the_gradient():
    """The same logits: with balance the rare class's cells weigh more in the loss than without."""
    torch.manual_seed(0)
    desc = torch.randn(1, 4, 4, 4)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 1  # one rare cell among 16
    plain, balanced = PartClassificationLoss(4, 2), PartClassificationLoss(4, 2, balance=True)
    balanced.load_state_dict(plain.state_dict())
    grads = []
    for loss in (plain, balanced):
        d = desc.clone().requires_grad_(True)
        loss(d, labels, 1).loss.backward()
        g = d.grad.abs().sum(1)[0]
        grads.append(float(g[0, 0] / g.sum()))
    assert grads[1] > 2 * grads[0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_classes"):
        PartClassificationLoss(4, 1)
    loss = PartClassificationLoss(4, 3)
    with pytest.raises(ValueError, match=">= num_classes"):
        loss(torch.randn(1, 4, 2, 2), torch.full((1, 2, 2), 3), 1)
    with pytest.raises(ValueError, match="desc"):
        loss(torch.randn(1, 5, 2, 2), torch.zeros((1, 2, 2), dtype=torch.long), 1)
