from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.correspondence import PairSample, mine_hard_negatives, sample_descriptors, sample_pairs
from dense_descriptor_ros.correspondence.augment import pixel_grid


def shift_map(h, w, dx, dy):
    return pixel_grid(h, w) + torch.tensor([dx, dy])


class TestSamplePairs:
    def test_layout_and_truth(self):
        h, w = 30, 40
        m = shift_map(h, w, 3.0, -2.0)
        valid = torch.ones(h, w, dtype=torch.bool)
        p = sample_pairs(m, valid, (h, w), 10, 3, torch.Generator().manual_seed(0), min_nonmatch_distance=4)
        assert p.matches_a.shape == (1, 10, 2) and p.nonmatch_a.shape == (1, 30, 2)
        assert torch.allclose(p.matches_b - p.matches_a, torch.tensor([3.0, -2.0]))
        # non-match j is anchored at match j % N
        assert torch.equal(p.nonmatch_a[0], p.matches_a[0].repeat(3, 1))
        far = (p.nonmatch_b[0] - p.matches_b[0].repeat(3, 1)).norm(dim=-1) >= 4
        assert torch.equal(p.nonmatch_valid[0], far)

    def test_masks_and_background(self):
        h, w = 20, 20
        mask = torch.zeros(h, w, dtype=torch.bool)
        mask[5:15, 5:15] = True
        p = sample_pairs(shift_map(h, w, 0, 0), torch.ones(h, w, dtype=torch.bool), (h, w), 50, 4,
                         torch.Generator().manual_seed(1), mask_a=mask, mask_b=mask, background_fraction=0.5)
        ua = p.matches_a[0].long()
        assert mask[ua[:, 1], ua[:, 0]].all()
        nb = p.nonmatch_b[0].long()
        on_obj = mask[nb[:, 1], nb[:, 0]]
        assert torch.equal(on_obj, ~p.nonmatch_background[0])
        assert p.nonmatch_background[0].float().mean() == pytest.approx(0.5)

    def test_no_valid_pixels_gives_invalid_rows(self):
        p = sample_pairs(shift_map(8, 8, 0, 0), torch.zeros(8, 8, dtype=torch.bool), (8, 8), 4, 2,
                         torch.Generator().manual_seed(0))
        assert not p.match_valid.any() and not p.nonmatch_valid.any()

    def test_deterministic(self):
        args = (shift_map(16, 16, 1, 1), torch.ones(16, 16, dtype=torch.bool), (16, 16), 8, 2)
        a = sample_pairs(*args, torch.Generator().manual_seed(5))
        b = sample_pairs(*args, torch.Generator().manual_seed(5))
        assert torch.equal(a.matches_a, b.matches_a) and torch.equal(a.nonmatch_b, b.nonmatch_b)


def test_sample_descriptors_bilinear_and_strided():
    # a map whose value is the input-pixel x coordinate of each cell centre at stride 4
    s, h, w = 4, 5, 6
    xs = torch.arange(w).float() * s + (s - 1) / 2
    desc = xs.view(1, 1, 1, w).expand(1, 1, h, w).contiguous()
    uv = torch.tensor([[[5.5, 7.0], [10.0, 3.0]]])
    out = sample_descriptors(desc, uv, stride=s)
    assert torch.allclose(out[0, :, 0], uv[0, :, 0])


def test_hard_negatives_are_nearest_and_far_from_truth():
    torch.manual_seed(0)
    desc = torch.randn(1, 4, 12, 12)
    uv = torch.tensor([[[3.0, 4.0], [8.0, 8.0]]])
    pairs = PairSample(uv, uv.clone(), torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 0, 2),
                       torch.zeros(1, 0, 2), torch.zeros(1, 0, dtype=torch.bool), torch.zeros(1, 0, dtype=torch.bool))
    out = mine_hard_negatives(desc, desc, pairs, k=2, min_distance=3.0)
    assert out.nonmatch_b.shape == (1, 4, 2) and out.nonmatch_valid.all()
    assert torch.equal(out.nonmatch_a[0], uv[0].repeat(2, 1))
    d = (sample_descriptors(desc, out.nonmatch_b) - sample_descriptors(desc, out.nonmatch_a)).norm(dim=-1)[0]
    for i in range(2):
        anchor = desc[0, :, int(uv[0, i, 1]), int(uv[0, i, 0])]
        allowed = (pixel_grid(12, 12) - uv[0, i]).norm(dim=-1) >= 3.0
        best = (desc[0].permute(1, 2, 0) - anchor).norm(dim=-1)[allowed].min()
        assert d[i] == pytest.approx(best.item(), abs=1e-5)
        assert (out.nonmatch_b[0, i] - uv[0, i]).norm() >= 3.0
