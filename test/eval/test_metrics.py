"""Metric functions against hand-computed expectations."""

from __future__ import annotations

import math

import pytest
import torch

from dense_descriptor_ros.correspondence.augment import pixel_grid
from dense_descriptor_ros.eval import metrics as M

SHIFT = torch.tensor([3.0, 2.0])


def coordinate_maps(h: int = 24, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A perfect descriptor: every pixel's descriptor is its own scene coordinate; B is A moved by SHIFT."""
    g = pixel_grid(h, w)
    return g.permute(2, 0, 1).clone(), (g - SHIFT).permute(2, 0, 1).clone()


class TestBestMatch:
    def test_perfect_descriptor_scores_one_and_zero_error(self):
        da, db = coordinate_maps()
        uv_a = torch.tensor([[5.0, 5.0], [10.0, 12.0], [20.0, 7.0], [0.0, 0.0]])
        bm = M.best_match(da, db, uv_a, uv_a + SHIFT)
        err = M.pixel_errors(bm.uv, uv_a + SHIFT)
        assert torch.equal(err, torch.zeros(4))
        assert M.pck(err) == {"pck@1": 1.0, "pck@3": 1.0, "pck@5": 1.0, "pck@10": 1.0}
        assert M.pck_auc(err) == 1.0
        assert torch.allclose(bm.frac_closer, torch.zeros(4), atol=1e-6)  # nothing is closer than the truth
        assert bm.valid.all()

    def test_constant_descriptor_scores_chance(self):
        """Every pixel ties: the best match is uniform over the image, so PCK@5 is the share of the
        21 x 21 image within 5 px of the truth (81 lattice points of 441); the truth ranks in the middle."""
        desc = torch.full((2, 21, 21), 0.37)
        uv = torch.full((4000, 2), 10.0)
        bm = M.best_match(desc, desc, uv, uv, generator=torch.Generator().manual_seed(0))
        err = M.pixel_errors(bm.uv, uv)
        chance = 81 / 441
        five_sigma = 5 * math.sqrt(chance * (1 - chance) / 4000)
        assert M.pck(err, (5,))["pck@5"] == pytest.approx(chance, abs=five_sigma)
        assert torch.allclose(bm.frac_closer, torch.full((4000,), 0.5))
        assert err.max() > 12  # draws reach the corners: not a fixed pixel

    def test_two_tied_pixels_are_drawn_evenly(self):
        desc = torch.zeros(1, 1, 10)
        desc[0, 0, 2] = desc[0, 0, 7] = 1.0
        g = torch.Generator().manual_seed(1)
        bm = M.best_match(torch.ones(1, 1, 1), desc, torch.zeros(2000, 2), generator=g)
        xs = bm.uv[:, 0]
        assert set(xs.tolist()) == {2.0, 7.0}
        assert (xs == 2.0).float().mean().item() == pytest.approx(0.5, abs=0.05)
        assert torch.isnan(bm.frac_closer).all()  # no truth given

    def test_fraction_closer_counts_pixels_nearer_than_the_truth(self):
        """1-D map with values 0..9; query 0, truth at the pixel of value 3: pixels 0, 1, 2 are closer."""
        desc = torch.arange(10.0).view(1, 1, 10)
        bm = M.nearest_pixels(torch.zeros(1, 1), desc, truth_b=torch.tensor([[3.0, 0.0]]))
        assert bm.frac_closer.item() == pytest.approx(3 / 9)
        assert bm.uv.tolist() == [[0.0, 0.0]] and bm.distance.item() == pytest.approx(0.0)
        # a tie with the truth counts half: values 0, 3, 3, 3 -> one closer, one tie besides the truth
        desc = torch.tensor([0.0, 3.0, 3.0, 5.0]).view(1, 1, 4)
        bm = M.nearest_pixels(torch.full((1, 1), 2.9), desc, truth_b=torch.tensor([[1.0, 0.0]]))
        assert bm.frac_closer.item() == pytest.approx((0 + 0.5 * 1) / 3)

    def test_stride_maps_cells_to_their_centres(self):
        desc = torch.zeros(1, 4, 4)
        desc[0, 2, 1] = 1.0  # cell (x=1, y=2) at stride 4 is centred on pixel (5.5, 9.5)
        bm = M.nearest_pixels(torch.ones(1, 1), desc, stride=4)
        assert bm.uv.tolist() == [[5.5, 9.5]]

    def test_mask_restricts_the_search(self):
        da, db = coordinate_maps()
        mask = torch.zeros(24, 32, dtype=torch.bool)
        mask[:, 20:] = True  # only the right part of B may match
        bm = M.best_match(da, db, torch.tensor([[5.0, 5.0]]), mask_b=mask)
        assert bm.uv.tolist() == [[20.0, 7.0]]  # nearest allowed pixel to the true (8, 7)
        empty = M.best_match(da, db, torch.tensor([[5.0, 5.0]]), mask_b=torch.zeros(24, 32, dtype=torch.bool))
        assert not empty.valid.any() and empty.uv.tolist() == [[-1.0, -1.0]]

    def test_chunking_does_not_change_the_result(self):
        g = torch.Generator().manual_seed(0)
        desc = torch.randn(8, 20, 30, generator=g)
        q = torch.randn(50, 8, generator=g)
        truth = torch.rand(50, 2, generator=g) * 19
        a = M.nearest_pixels(q, desc, truth_b=truth)
        b = M.nearest_pixels(q, desc, truth_b=truth, chunk_elems=700)  # 1 query per chunk
        assert torch.equal(a.uv, b.uv)
        assert torch.allclose(a.frac_closer, b.frac_closer)
        ref = torch.cdist(q, desc.reshape(8, -1).T).argmin(1)
        assert torch.equal(a.uv[:, 1] * 30 + a.uv[:, 0], ref.float())

    def test_shapes_are_checked(self):
        with pytest.raises(ValueError, match="desc_b"):
            M.nearest_pixels(torch.zeros(3, 4), torch.zeros(5, 6, 7))
        with pytest.raises(ValueError, match="truth_b"):
            M.nearest_pixels(torch.zeros(3, 4), torch.zeros(4, 6, 7), truth_b=torch.zeros(2, 2))


class TestCurves:
    def test_pck_by_hand(self):
        e = torch.tensor([0.0, 1.0, 2.0, 4.0, 20.0])
        assert M.pck(e) == {"pck@1": 0.4, "pck@3": 0.6, "pck@5": 0.8, "pck@10": 0.8}
        assert all(math.isnan(v) for v in M.pck(torch.zeros(0)).values())

    def test_auc_is_the_exact_area_under_the_step_curve(self):
        e = torch.tensor([0.0, 12.5, 30.0])
        assert M.pck_auc(e, 25.0) == pytest.approx((1.0 + 0.5 + 0.0) / 3)
        t = torch.linspace(0, 25, 250001)
        numeric = torch.trapezoid(M.pck_curve(e, t), t).item() / 25
        assert M.pck_auc(e, 25.0) == pytest.approx(numeric, abs=1e-4)

    def test_error_cdf_steps(self):
        x, y = M.error_cdf(torch.tensor([3.0, 1.0, 2.0, 2.0]))
        assert x.tolist() == [1.0, 2.0, 2.0, 3.0] and y.tolist() == [0.25, 0.5, 0.75, 1.0]

    def test_summarize_skips_unknown_3d_errors(self):
        s = M.summarize(torch.tensor([0.0, 2.0, 4.0]), torch.tensor([0.001, math.nan, 0.003]),
                        torch.tensor([0.0, 0.5, math.nan]))
        assert s["n"] == 3 and s["pck@3"] == pytest.approx(2 / 3) and s["median_px"] == 2.0
        assert s["n_3d"] == 2 and s["median_mm"] == pytest.approx(1.0) and s["mean_mm"] == pytest.approx(2.0)
        assert s["pck3d@1cm"] == 1.0 and s["frac_closer"] == pytest.approx(0.25)


class Test3D:
    K = torch.tensor([[100.0, 0.0, 10.0], [0.0, 100.0, 10.0], [0.0, 0.0, 1.0]])

    def test_lift_and_error_by_hand(self):
        depth = torch.full((21, 21), 2.0)
        depth[0, 0] = 0.0  # no measurement
        p, ok = M.lift_pixels(torch.tensor([[20.0, 10.0], [0.2, 0.3], [40.0, 5.0]]), depth, self.K)
        assert ok.tolist() == [True, False, False]
        assert torch.allclose(p[0], torch.tensor([0.2, 0.0, 2.0], dtype=torch.float64))
        truth = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.0]], dtype=torch.float64)
        e = M.errors_3d(torch.tensor([[20.0, 10.0], [0.0, 0.0], [10.0, 10.0]]), truth, depth, self.K)
        assert e[0].item() == pytest.approx(0.2) and math.isnan(e[1].item()) and e[2].item() == 0.0


class TestHealth:
    def test_effective_rank(self):
        g = torch.Generator().manual_seed(0)
        iso = torch.randn(20000, 4, generator=g)
        assert M.effective_rank(iso) == pytest.approx(4.0, abs=0.05)
        line = torch.linspace(0, 1, 100)[:, None] * torch.tensor([[1.0, 2.0, -1.0]])
        assert M.effective_rank(line) == pytest.approx(1.0, abs=1e-4)
        assert M.effective_rank(torch.full((50, 3), 2.0)) == 0.0

    def test_collapse_is_flagged(self):
        g = torch.Generator().manual_seed(0)
        samples = torch.randn(1000, 8, generator=g)
        healthy = M.descriptor_health(samples, torch.full((10,), 0.1), torch.full((10,), 1.0))
        assert healthy["collapsed"] == 0.0 and healthy["separation"] == pytest.approx(10.0)
        assert len(healthy["channel_std"]) == 8 and healthy["min_channel_std"] > 0.9
        collapsed = M.descriptor_health(torch.ones(1000, 8) + 1e-9 * torch.randn(1000, 8, generator=g))
        assert collapsed["collapsed"] == 1.0 and math.isnan(collapsed["separation"])


def test_matching_accuracy_by_hand():
    pred = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 2.0]])
    truth = torch.tensor([[0.0, 0.5], [0.0, 0.0], [0.0, 0.0]])
    out = M.matching_accuracy(pred, truth, n_queries=6)
    assert out["n_matches"] == 3 and out["match_rate"] == 0.5
    assert out["acc@1"] == pytest.approx(1 / 3) and out["acc@3"] == pytest.approx(2 / 3)
    assert out["mean_px"] == pytest.approx((0.5 + 10 + 2) / 3) and out["median_px"] == 2.0
    none = M.matching_accuracy(torch.zeros(0, 2), torch.zeros(0, 2), 5)
    assert none["n_matches"] == 0 and none["match_rate"] == 0 and math.isnan(none["mean_px"])
