from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.correspondence.augment import pixel_grid
from dense_descriptor_ros.eval.augment_pck import best_match_errors, pck


def test_perfect_descriptor_scores_one():
    h, w = 24, 32
    g = pixel_grid(h, w)
    desc_a = g.permute(2, 0, 1).clone()  # descriptor = own coordinates
    desc_b = (g - torch.tensor([3.0, 2.0])).permute(2, 0, 1).clone()  # B is A shifted by (3, 2)
    uv_a = torch.tensor([[5.0, 5.0], [10.0, 12.0], [20.0, 7.0]])
    errs = best_match_errors(desc_a, desc_b, uv_a, uv_a + torch.tensor([3.0, 2.0]))
    assert torch.allclose(errs, torch.zeros(3))
    assert pck(errs)["pck@1"] == 1.0


def test_constant_descriptor_scores_chance():
    """All pixels tie; the argmin is pixel 0, so PCK@k is the share of truths within k px of (0, 0)."""
    h, w = 20, 20
    desc = torch.ones(2, h, w)
    uv = pixel_grid(h, w).reshape(-1, 2)
    errs = best_match_errors(desc, desc, uv, uv)
    assert errs.max() == pytest.approx((19**2 * 2) ** 0.5)
    expected = (uv.norm(dim=-1) <= 5).float().mean().item()
    assert pck(errs, (5,))["pck@5"] == pytest.approx(expected)


def test_stride_maps_to_cell_centres():
    desc = torch.zeros(1, 4, 4)
    desc[0, 2, 1] = 1.0  # cell (x=1, y=2) at stride 4 -> centre (5.5, 9.5)
    query = torch.ones(1, 4, 4)  # every A descriptor is 1: its best match in B is the single 1-cell
    errs = best_match_errors(query, desc, torch.tensor([[0.0, 0.0]]), torch.tensor([[5.5, 9.5]]), stride=4)
    assert errs.item() == pytest.approx(0.0)
