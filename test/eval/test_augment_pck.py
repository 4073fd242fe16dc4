from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.correspondence import PairSample
from dense_descriptor_ros.correspondence.augment import pixel_grid
from dense_descriptor_ros.data.base import PairItem
from dense_descriptor_ros.eval.augment_pck import evaluate_pairs

H, W, SHIFT = 24, 32, torch.tensor([3.0, 2.0])


def shifted_item() -> PairItem:
    """A's pixel p matches B's pixel p + SHIFT; each image encodes, per pixel, the A coordinate it shows."""
    g = pixel_grid(H, W)
    image_a = torch.stack([g[..., 0] / W, g[..., 1] / H, torch.zeros(H, W)])
    src = g - SHIFT  # B's pixel q shows A's pixel q - SHIFT
    image_b = torch.stack([src[..., 0] / W, src[..., 1] / H, torch.zeros(H, W)])
    uv_a = torch.tensor([[5.0, 5.0], [10.0, 12.0], [20.0, 7.0], [0.0, 0.0]])
    valid = torch.tensor([True, True, True, False])
    pairs = PairSample(uv_a[None], (uv_a + SHIFT)[None], valid[None], torch.zeros(1, 0, 2), torch.zeros(1, 0, 2),
                       torch.zeros(1, 0, dtype=torch.bool), torch.zeros(1, 0, dtype=torch.bool))
    return PairItem(image_a, image_b, pairs)


def test_perfect_descriptor_scores_one():
    out = evaluate_pairs(lambda x: x, [shifted_item()])
    assert out["pck@1"] == 1.0 and out["median_px"] == 0.0 and out["n_points"] == 3.0  # invalid row skipped


def test_constant_descriptor_scores_chance_reproducibly():
    item = shifted_item()
    a = evaluate_pairs(lambda x: torch.ones_like(x), [item] * 20, seed=1)
    b = evaluate_pairs(lambda x: torch.ones_like(x), [item] * 20, seed=1)
    assert a == b
    # random tie-breaking over 24x32 pixels: about the share of the image within 10 px of a point
    assert a["pck@10"] < 0.4 and a["median_px"] > 5


def test_strided_map():
    """A stride-4 map built by average pooling the coordinate image still finds shifts of whole cells."""
    g = pixel_grid(H, W)
    image_a = torch.stack([g[..., 0] / W, g[..., 1] / H, torch.zeros(H, W)])
    image_b = torch.roll(image_a, shifts=(4, 8), dims=(1, 2))  # B's pixel q shows A's pixel q - (8, 4)
    uv_a = torch.tensor([[5.5, 5.5], [9.5, 13.5]])
    pairs = PairSample(uv_a[None], (uv_a + torch.tensor([8.0, 4.0]))[None], torch.ones(1, 2, dtype=torch.bool),
                       torch.zeros(1, 0, 2), torch.zeros(1, 0, 2), torch.zeros(1, 0, dtype=torch.bool),
                       torch.zeros(1, 0, dtype=torch.bool))
    out = evaluate_pairs(lambda x: torch.nn.functional.avg_pool2d(x, 4), [PairItem(image_a, image_b, pairs)])
    assert out["median_px"] == pytest.approx(0.0, abs=1e-5)
