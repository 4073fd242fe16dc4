"""PyramidLoss: weighted sum of per-level losses at each level's stride, level-prefixed parts."""

from __future__ import annotations

import pytest
import torch
from losses_testutil import F64, random_pairs

from dense_descriptor_ros.losses import PixelInfoNCELoss, PixelwiseContrastiveLoss, PyramidLoss
from dense_descriptor_ros.models import ModelConfig, build_model


def pyramid(seed: int) -> list[tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 3, 16 // s, 16 // s, generator=g, dtype=F64), s) for s in (1, 2, 4)]


def test_equals_weighted_sum_of_levels() -> None:
    pairs = random_pairs(2, 6, 2, 16, torch.Generator().manual_seed(0))
    pa, pb = pyramid(1), pyramid(2)
    base = PixelwiseContrastiveLoss()
    weights = (1.0, 0.5, 0.25)
    out = PyramidLoss(base, weights)(pa, pb, pairs)
    per_level = [base(da, db, pairs, stride=s) for (da, s), (db, _) in zip(pa, pb, strict=True)]
    expected = sum(w * o.loss for w, o in zip(weights, per_level, strict=True))
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=1e-12)
    for lvl, o in enumerate(per_level):
        assert out.parts[f"l{lvl}/loss"].item() == pytest.approx(o.loss.item(), abs=1e-12)
        for k, v in o.parts.items():
            assert out.parts[f"l{lvl}/{k}"].item() == v.item()
    # the stride really is passed: the coarse level read at stride 1 would give another value
    assert abs(base(pa[2][0], pb[2][0], pairs, stride=1).loss.item() - per_level[2].loss.item()) > 1e-6


@pytest.mark.parametrize(("n_a", "n_b", "n_w"), [(3, 2, 3), (3, 3, 2), (2, 3, 3)])
def test_level_count_mismatch(n_a: int, n_b: int, n_w: int) -> None:
    pairs = random_pairs(2, 4, 1, 16, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="pyramid levels"):
        PyramidLoss(PixelInfoNCELoss(), [1.0] * n_w)(pyramid(1)[:n_a], pyramid(2)[:n_b], pairs)


def test_stride_mismatch() -> None:
    pairs = random_pairs(2, 4, 1, 16, torch.Generator().manual_seed(0))
    pb = pyramid(2)
    pb[1] = (pb[1][0], 3)
    with pytest.raises(ValueError, match="stride 2 in A but 3 in B"):
        PyramidLoss(PixelInfoNCELoss(), [1.0, 1.0, 1.0])(pyramid(1), pb, pairs)


@pytest.mark.parametrize("weights", [[], [1.0, -0.5]])
def test_bad_weights(weights: list[float]) -> None:
    with pytest.raises(ValueError, match="weights"):
        PyramidLoss(PixelInfoNCELoss(), weights)


def test_trains_a_real_pyramid_network() -> None:
    # forward_pyramid output plugs in as is, and every level's loss reaches the encoder.
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="lite", descriptor_dim=8))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    pa, pb = model.forward_pyramid(x), model.forward_pyramid(x.flip(-1))
    pairs = random_pairs(2, 16, 2, 32, torch.Generator().manual_seed(2))
    pairs.matches_b = pairs.matches_a.clone()
    pairs.matches_b[..., 0] = 31 - pairs.matches_a[..., 0]  # the flipped pixel
    out = PyramidLoss(PixelwiseContrastiveLoss(), [1.0] * len(pa))(pa, pb, pairs)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert {f"l{i}/match" for i in range(len(pa))} <= set(out.parts)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.encoder.parameters())
