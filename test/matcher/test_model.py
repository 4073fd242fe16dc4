"""MatcherNet pieces with hand-computed expectations: linear attention, the position encoding, the fine refinement's
expectation (where it lands, the border mask), the dual-softmax, shapes and input checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dense_descriptor_ros.matcher.config import MatcherConfig
from dense_descriptor_ros.matcher.model import (
    WINDOW,
    LinearAttention,
    MatcherNet,
    coarse_centres,
    even_crop,
    position_encoding,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


def small(**kw) -> MatcherNet:
    torch.manual_seed(0)
    return MatcherNet(MatcherConfig(**{"descriptor_dim": 8, "d_model": 16, "layers": 1, "heads": 2, "fine_dim": 8,
                                       "image_channels": 0, **kw})).eval()


def test_linear_attention_equals_its_formula_written_out():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 5, 3), torch.randn(1, 2, 7, 3), torch.randn(1, 2, 7, 3)
    out = LinearAttention()(q, k, v)
    phi = lambda x: F.elu(x) + 1  # noqa: E731
    ref = torch.zeros_like(out)
    for h in range(2):
        for i in range(5):
            w = torch.stack([phi(q[0, h, i]) @ phi(k[0, h, j]) for j in range(7)])
            ref[0, h, i] = (w[:, None] * v[0, h]).sum(0) / w.sum()
    assert torch.allclose(out, ref, atol=1e-5)


def test_position_encoding_is_the_sinusoid_of_each_axis():
    pe = position_encoding(8, 3, 4, torch.device("cpu"), torch.float32)
    assert pe.shape == (8, 3, 4)
    # frequency k of 2: 1 and 1e-2; channels sin x (0, 1), cos x (2, 3), sin y (4, 5), cos y (6, 7)
    assert pe[0, 2, 3] == pytest.approx(math.sin(3.0)) and pe[1, 2, 3] == pytest.approx(math.sin(0.03), abs=1e-6)
    assert pe[2, 1, 2] == pytest.approx(math.cos(2.0)) and pe[4, 2, 0] == pytest.approx(math.sin(2.0))
    assert pe[6, 1, 0] == pytest.approx(math.cos(1.0))
    with pytest.raises(ValueError, match="multiple of 4"):
        position_encoding(6, 2, 2, torch.device("cpu"), torch.float32)


def test_shapes_of_forward_and_match():
    net = small()
    a, b = torch.randn(2, 8, 6, 10), torch.randn(2, 8, 6, 10)
    ca, cb, fa, fb = net(a, b)
    assert ca.shape == cb.shape == (2, 15, 16) and fa.shape == fb.shape == (2, 8, 6, 10)
    assert torch.allclose(ca.norm(dim=-1), torch.ones(2, 15), atol=1e-5)
    conf, mutual, pos, spread = net.match(a, b)
    assert conf.shape == mutual.shape == spread.shape == (2, 15) and pos.shape == (2, 15, 2)
    assert mutual.dtype == torch.bool and ((conf >= 0) & (conf <= 1)).all()
    # positions stay inside the fine map
    assert (pos[..., 0] >= 0).all() and (pos[..., 0] <= 9).all()
    assert (pos[..., 1] >= 0).all() and (pos[..., 1] <= 5).all()


def test_the_image_stem_joins_the_fine_level_only():
    net = small(image_channels=8)
    with torch.no_grad():  # give the zero-initialised last fine layer weights, so that the stem shows in the output
        net.fine_out[-1].weight.normal_(0, 0.3)
    a, b = torch.randn(1, 8, 6, 10), torch.randn(1, 8, 6, 10)
    img_a, img_b = torch.rand(1, 3, 24, 40), torch.rand(1, 3, 24, 40)
    with pytest.raises(ValueError, match="image_a and image_b"):
        net(a, b)
    ca, cb, fa, fb = net(a, b, img_a, img_b)
    ca2, _, fa2, _ = net(a, b, img_a.flip(-1), img_b)
    assert torch.equal(ca, ca2)  # the coarse level reads the descriptors alone
    assert not torch.allclose(fa, fa2)  # the fine level sees the image
    # an image one stride larger than the map (a map cropped to even size) is cropped to the map's cells
    assert net(a, b, torch.rand(1, 3, 27, 43), torch.rand(1, 3, 27, 43))[2].shape == (1, 8, 6, 10)
    with pytest.raises(ValueError, match="power of two"):
        MatcherConfig(image_stride=3)


def test_bad_maps_are_refused_with_the_reason():
    net = small()
    with pytest.raises(ValueError, match="even"):
        net(torch.randn(1, 8, 5, 10), torch.randn(1, 8, 5, 10))
    with pytest.raises(ValueError, match="desc_a"):
        net(torch.randn(1, 4, 6, 10), torch.randn(1, 4, 6, 10))
    with pytest.raises(ValueError, match="desc_b"):
        net(torch.randn(1, 8, 6, 10), torch.randn(1, 8, 6, 12))
    assert even_crop(torch.zeros(1, 8, 5, 7)).shape == (1, 8, 4, 6)


def test_dual_softmax_is_the_product_of_both_softmaxes():
    net = small()
    torch.manual_seed(1)
    ca, cb = F.normalize(torch.randn(1, 4, 16), dim=-1), F.normalize(torch.randn(1, 5, 16), dim=-1)
    logp = net.dual_softmax(ca, cb)
    s = net.scale() * ca @ cb.transpose(1, 2)
    assert torch.allclose(logp.exp(), s.softmax(2) * s.softmax(1), atol=1e-6)
    # at init the scale is 1: equal features give exactly 1 / (Na Nb)
    flat = net.dual_softmax(torch.ones(1, 4, 16) / 4, torch.ones(1, 5, 16) / 4).exp()
    assert torch.allclose(flat, torch.full_like(flat, 1 / 20))


def test_refine_lands_on_the_fine_cell_whose_feature_matches_and_masks_the_border():
    net = small()
    with torch.no_grad():
        net.log_fine_scale.fill_(math.log(50.0))
    f, h, w = 8, 6, 8
    torch.manual_seed(2)
    fine_b = F.normalize(torch.randn(1, f, h, w), dim=1) * 0.0
    # one-hot features: fine cell (row 3, column 5) of B carries e0, the rest e1
    fine_b[0, 1] = 1.0
    fine_b[0, :, 3, 5] = torch.tensor([1.0] + [0.0] * (f - 1))
    fine_a = torch.zeros(1, f, h, w)
    fine_a[0, 0, 0:2, 0:2] = 1.0  # coarse cell 0 of A: mean e0
    # searched around coarse cell (row 1, column 2) of B: fine rows 0..5, columns 2..7 contain (3, 5)
    pos, spread = net.refine(fine_a, fine_b, torch.tensor([[0]]), torch.tensor([[1 * (w // 2) + 2]]))
    assert pos[0, 0].tolist() == pytest.approx([5.0, 3.0], abs=1e-3) and spread[0, 0] < 0.05
    # a window at the map's corner: its cells outside the map get no weight, even with the best feature
    fine_b2 = torch.zeros(1, f, h, w)
    fine_b2[0, 1] = 1.0
    pos2, _ = net.refine(fine_a * 0 + fine_b2[:, :, :2, :2].mean((2, 3), keepdim=True), fine_b2,
                         torch.tensor([[0]]), torch.tensor([[0]]))
    # every in-map cell of the window (rows 0..3, columns 0..3) equally likely: the mean is (1.5, 1.5)
    assert pos2[0, 0].tolist() == pytest.approx([1.5, 1.5], abs=1e-3)


def test_coarse_centres_are_the_middle_of_each_2x2_block():
    c = coarse_centres(2, 3)
    assert c.tolist() == [[0.5, 0.5], [2.5, 0.5], [4.5, 0.5], [0.5, 2.5], [2.5, 2.5], [4.5, 2.5]]
    assert WINDOW == 6


def test_the_residual_start_is_descriptor_matching_under_a_dual_softmax():
    """At init (residual_start) the coarse features' cosines are those of the 2 x 2-pooled descriptors (an orthogonal
    projection, d_model >= D), so training starts from what the descriptors already match; without it, not."""
    a, b = torch.randn(1, 8, 6, 10), torch.randn(1, 8, 6, 10)
    pa = F.normalize(F.avg_pool2d(a, 2).flatten(2).transpose(1, 2), dim=-1)
    pb = F.normalize(F.avg_pool2d(b, 2).flatten(2).transpose(1, 2), dim=-1)
    ca, cb, _, _ = small()(a, b)
    assert torch.allclose(ca @ cb.transpose(1, 2), pa @ pb.transpose(1, 2), atol=1e-5)
    plain = small(residual_start=False)
    assert plain.coarse_skip is None and plain.fine_skip is None
    ca, cb, _, _ = plain(a, b)
    assert not torch.allclose(ca @ cb.transpose(1, 2), pa @ pb.transpose(1, 2), atol=1e-2)
