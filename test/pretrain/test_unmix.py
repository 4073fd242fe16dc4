"""The un-mixing pretext (issue #18) and the sanity checks a task of its kind fails without (Karpathy's recipe):
the loss at initialisation is the chance level, one batch can be overfit, an input-independent baseline does
worse than the real inputs, and the gradient of one item's loss reaches no other item's pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dense_descriptor_ros.models.config import ModelConfig
from dense_descriptor_ros.pretrain.config import PretrainConfig, UnmixConfig
from dense_descriptor_ros.pretrain.loop import param_groups
from dense_descriptor_ros.pretrain.sources import ImagePool, load_pool, resize_shorter, source_kind
from dense_descriptor_ros.pretrain.unmix import (
    UnmixNet,
    chance_accuracy,
    chance_loss,
    collate_unmix,
    draw_item,
    unmix_accuracy,
    unmix_loss,
)

from ..conftest import textured_image

CROP = 64
CFG = UnmixConfig(candidates=4, sources=2, hidden=64, dim=32)
SMALL = ModelConfig(name="lite", width_mult=0.5, decoder_channels=16)


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


@pytest.fixture(scope="module")
def pool() -> ImagePool:
    rng = np.random.default_rng(0)
    return ImagePool([resize_shorter(textured_image(rng, 96, 128), 80) for _ in range(12)], ["t"] * 12, 80)


def batch(pool: ImagePool, n: int, seed0: int = 0, cfg: UnmixConfig = CFG):
    return collate_unmix([draw_item(pool, cfg, CROP, seed0 + i) for i in range(n)])


def adam(net: UnmixNet, lr: float = 2e-3) -> torch.optim.Optimizer:
    """The loop's parameter groups (the logit scale at its own rate) at a constant learning rate."""
    groups = param_groups(net, PretrainConfig(unmix=CFG))
    for g in groups:
        g["lr"] = lr * g.pop("lr_mult")
    return torch.optim.Adam(groups, lr=lr)


def test_items_are_pure_and_well_formed(pool):
    a, b = draw_item(pool, CFG, CROP, 7), draw_item(pool, CFG, CROP, 7)
    assert torch.equal(a.mixture, b.mixture) and torch.equal(a.candidates, b.candidates)
    assert not torch.equal(a.mixture, draw_item(pool, CFG, CROP, 8).mixture)
    assert a.candidates.shape == (4, 3, CROP, CROP) and a.mixture.shape == (3, CROP, CROP)
    assert (a.target > 0).sum() == 2 and a.target.sum() == pytest.approx(1.0)
    w = a.weights[a.target > 0]
    assert w.sum() == pytest.approx(1.0, abs=1e-5) and (w >= CFG.min_weight - 1e-6).all()
    assert (a.weights[a.target == 0] == 0).all()
    assert 0.0 <= a.mixture.min() and a.mixture.max() <= 1.0


def test_without_reframing_the_mixture_is_the_weighted_sum_of_its_sources(pool):
    cfg = UnmixConfig(candidates=4, sources=2, reframe=0.0, jitter=0.0)
    item = draw_item(pool, cfg, CROP, 3)
    expect = (item.weights[:, None, None, None] * item.candidates).sum(0)
    torch.testing.assert_close(item.mixture, expect, atol=1e-5, rtol=0)


def test_a_pool_smaller_than_the_candidates_still_gives_items(pool):
    tiny = ImagePool(pool.images[:2], pool.origin[:2], pool.side)
    item = draw_item(tiny, CFG, CROP, 0)
    assert item.candidates.shape[0] == 4
    with pytest.raises(ValueError, match="empty"):
        draw_item(ImagePool([], [], 80), CFG, CROP, 0)


@pytest.mark.parametrize("name", ["lite", "effnet_lite0", "fpn_resnet18"])
def test_loss_at_initialisation_is_the_chance_level(pool, name):
    torch.manual_seed(0)
    net = UnmixNet(ModelConfig(name=name), CFG)  # training mode, as at the first step (batch statistics)
    b = batch(pool, 8)
    with torch.no_grad():
        logits = net(b.mixture, b.candidates)
    assert unmix_loss(logits, b.target).item() == pytest.approx(chance_loss(CFG), rel=0.05)
    assert chance_loss(CFG) == pytest.approx(math.log(4)) and chance_accuracy(CFG) == 0.5
    # the same loss with the scale at its cap would not start at chance: the learned scale is what makes it
    with torch.no_grad():
        net.logit_scale.fill_(net.max_log_scale)
        far = unmix_loss(net(b.mixture, b.candidates), b.target).item()
    assert abs(far - chance_loss(CFG)) > 0.05 * chance_loss(CFG)


def test_one_batch_can_be_overfit(pool):
    torch.manual_seed(0)
    net = UnmixNet(SMALL, CFG)
    b = batch(pool, 4)
    opt = adam(net, 3e-3)
    for _ in range(80):
        loss = unmix_loss(net(b.mixture, b.candidates), b.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # training mode: a few steps do not settle the batch-norm running statistics
        logits = net(b.mixture, b.candidates)
    # the floor of this loss is the entropy of the target (log 2: two sources share the mass)
    assert unmix_loss(logits, b.target).item() < math.log(2) + 0.25 * (math.log(4) - math.log(2))
    assert unmix_accuracy(logits, b.target) == 1.0


def test_an_input_independent_baseline_is_worse_than_the_real_inputs(pool):
    """Zeroed inputs carry nothing: the loss must stay at chance there and fall below it on the real items."""
    train = [batch(pool, 4, 100 * i) for i in range(6)]
    final = {}
    for zero in (False, True):
        torch.manual_seed(0)
        net = UnmixNet(SMALL, CFG)
        opt = adam(net)
        for _ in range(3):
            for b in train:
                mix, cand = (torch.zeros_like(b.mixture), torch.zeros_like(b.candidates)) if zero else \
                    (b.mixture, b.candidates)
                loss = unmix_loss(net(mix, cand), b.target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():  # training mode, as trained (a few steps do not settle the running statistics)
            losses = []
            for b in train:
                mix, cand = (torch.zeros_like(b.mixture), torch.zeros_like(b.candidates)) if zero else \
                    (b.mixture, b.candidates)
                losses.append(unmix_loss(net(mix, cand), b.target).item())
        final[zero] = float(np.mean(losses))
    assert final[True] == pytest.approx(chance_loss(CFG), abs=1e-4)
    assert final[False] < final[True] - 0.1


def test_an_items_loss_reaches_no_other_items_pixels(pool):
    """Backprop dependencies: item 0's loss has a gradient on item 0's mixture and candidates only (the network in
    eval mode: batch-norm statistics in training mode are the one intended coupling)."""
    torch.manual_seed(0)
    net = UnmixNet(SMALL, CFG).eval()
    b = batch(pool, 4)
    mix = b.mixture.clone().requires_grad_(True)
    cand = b.candidates.clone().requires_grad_(True)
    logits = net(mix, cand)
    unmix_loss(logits[:1], b.target[:1]).backward()
    assert mix.grad[0].abs().sum() > 0 and cand.grad[0].abs().sum() > 0
    assert mix.grad[1:].abs().sum() == 0 and cand.grad[1:].abs().sum() == 0


def test_accuracy_counts_the_sources_among_the_top_k():
    target = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]])
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    assert unmix_accuracy(logits, target) == 0.75
    with pytest.raises(ValueError, match="differ"):
        unmix_loss(logits, target[:, :3])


def test_mismatched_inputs_are_refused(pool):
    net = UnmixNet(SMALL, CFG)
    b = batch(pool, 2)
    with pytest.raises(ValueError, match="disagree"):
        net(b.mixture[:1], b.candidates)
    with pytest.raises(ValueError, match="expected images"):
        net.embed(b.mixture[:, :2])


def test_sources_of_every_kind(image_dir, sample_bag_path, tmp_path):
    assert source_kind(str(image_dir)) == "images"
    assert source_kind(str(sample_bag_path)) == "bag"
    assert source_kind(str(sample_bag_path / "sim_mug.mcap")) == "bag"
    pool = load_pool([str(image_dir), str(sample_bag_path)], side=64, max_per_source=0)
    assert pool.counts() == {str(image_dir): 6, str(sample_bag_path): 30}  # the broken file is skipped
    assert len(load_pool([str(sample_bag_path)], side=64, max_per_source=4)) == 4
    assert all(min(i.shape[:2]) == 64 and i.dtype == np.uint8 for i in pool.images)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_pool([str(empty)], side=64)


@pytest.fixture(scope="module")
def sample_bag_path(tmp_path_factory):
    from dense_descriptor_ros.bag.sample import sample_bag_path as shipped
    from dense_descriptor_ros.bag.sample import write_sample_bag

    if (shipped() / "metadata.yaml").is_file():
        return shipped()
    d = tmp_path_factory.mktemp("sample")
    return write_sample_bag(d / "sim_mug", cache=d / "cache", log=lambda *a: None)
