"""Fine-tuning options (frozen units, frozen batch-norm statistics, encoder learning-rate multiplier) and the
loss registry as the training loop uses it."""

from __future__ import annotations

import pytest
import torch

from dense_descriptor_ros.config import load_config
from dense_descriptor_ros.losses import LOSS_NAMES
from dense_descriptor_ros.models import ModelConfig, build_model
from dense_descriptor_ros.train.config import FinetuneConfig, LossConfig, TrainConfig
from dense_descriptor_ros.train.finetune import freeze_encoder_stages, param_groups, pca_init_head, set_train_mode
from dense_descriptor_ros.train.loop import build_loss_from_config, train

from ..conftest import tiny_overrides


def _net():
    torch.manual_seed(0)
    return build_model(ModelConfig(name="effnet_lite0", descriptor_dim=4))


def test_frozen_stages_get_no_gradient():
    net = _net()
    n = freeze_encoder_stages(net, 3)  # stem, blocks 0 and 1
    assert n == sum(p.numel() for u in net.encoder.stage_modules()[:3] for p in u.parameters())
    net.forward_native(torch.rand(2, 3, 64, 64)).square().sum().backward()
    assert net.encoder._conv_stem.weight.grad is None and net.encoder._blocks[1]._project_conv.weight.grad is None
    assert net.encoder._blocks[2]._project_conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="has 12 units"):
        freeze_encoder_stages(_net(), 13)


def test_frozen_bn_keeps_the_statistics_and_the_rest_trains():
    net = _net()
    set_train_mode(net, freeze_bn=True)
    before = net.encoder._bn0.running_mean.clone()
    net.forward_native(torch.rand(2, 3, 64, 64) * 5)
    assert torch.equal(net.encoder._bn0.running_mean, before)
    assert net.training and net.head.training and not net.encoder._bn0.training
    set_train_mode(net, freeze_bn=False)
    net.forward_native(torch.rand(2, 3, 64, 64) * 5)
    assert not torch.equal(net.encoder._bn0.running_mean, before)


def test_encoder_learning_rate_multiplier_groups():
    net = _net()
    groups = param_groups(net, FinetuneConfig(encoder_lr_mult=0.1))
    enc = {id(p) for p in net.encoder.parameters()}
    assert [g["lr_mult"] for g in groups] == [1.0, 0.1]
    assert all(id(p) not in enc for p in groups[0]["params"]) and all(id(p) in enc for p in groups[1]["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    one = param_groups(_net(), FinetuneConfig())
    assert len(one) == 1  # the layout of checkpoints written before fine-tuning options existed
    zero = _net()
    groups = param_groups(zero, FinetuneConfig(encoder_lr_mult=0.0))
    assert len(groups) == 1 and not any(p.requires_grad for p in zero.encoder.parameters())


def test_learning_rate_multiplier_reaches_the_optimiser(image_dir, val_dir, tmp_path):
    """Two steps with the encoder at 0.1x: its weights move about 10x less than with 1x (Adam's first steps
    move every weight by about lr)."""
    moved = {}
    for mult in (1.0, 0.1):
        cfg = load_config(TrainConfig, None, [*tiny_overrides(image_dir, None, tmp_path / f"m{mult}", steps=2),
                                              "model.name=effnet_lite0", "optim.warmup_steps=1",
                                              f"finetune.encoder_lr_mult={mult}"])
        res = train(cfg, progress=False)
        torch.manual_seed(cfg.seed)  # the loop's initialisation
        start = build_model(cfg.model)
        end = torch.load(res.run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
        w = "encoder._blocks.5._project_conv.weight"
        moved[mult] = (end[w] - start.state_dict()[w]).abs().mean().item()
    assert 0.05 < moved[0.1] / moved[1.0] < 0.2, moved


def test_every_registered_loss_builds_from_the_config():
    """The registry and the config cannot drift apart: each name builds its own class from LossConfig."""
    net = build_model(ModelConfig(name="lite", descriptor_dim=4, predictor_hidden=8))
    seen = set()
    for name in LOSS_NAMES:
        cfg = TrainConfig(model=net.config, loss=LossConfig(name=name))
        loss = build_loss_from_config(cfg, net)
        seen.add((type(loss).__name__, getattr(loss, "mode", None)))
    assert len(seen) == len(LOSS_NAMES)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        LossConfig(name="nope")


def test_loss_arguments_come_from_the_config():
    net = build_model(ModelConfig(name="lite", descriptor_dim=4))
    cfg = TrainConfig(model=net.config, loss=LossConfig(name="dense_infonce", temperature=0.2, target_sigma=3.0))
    loss = build_loss_from_config(cfg, net)
    assert (loss.temperature, loss.sigma) == (0.2, 3.0)
    cfg = TrainConfig(model=net.config, loss=LossConfig(name="triplet", margin=0.7))
    assert build_loss_from_config(cfg, net).triplet_margin == 0.7


class TestPCAHead:
    def test_head_is_the_principal_components(self):
        torch.manual_seed(0)
        net = build_model(ModelConfig(name="effnet_lite0", descriptor_dim=6))
        images = torch.rand(3, 3, 64, 96)
        kept = pca_init_head(net, images)
        net.eval()
        with torch.no_grad():
            feats = net._levels(images)[0].permute(0, 2, 3, 1).reshape(-1, 176).double()
            out = net.forward_native(images).permute(0, 2, 3, 1).reshape(-1, 6).double()
        centred = feats - feats.mean(0)
        # the head's outputs are uncorrelated, ordered by decreasing variance, and hold `kept` of the variance
        cov = out.T @ out / len(out)
        assert torch.allclose(out.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-4)
        assert (cov - torch.diag(torch.diag(cov))).abs().max() < 1e-3 * cov.diag().max()
        assert (cov.diag()[:-1] >= cov.diag()[1:] - 1e-9).all()
        assert abs(cov.diag().sum() / centred.square().sum(1).mean() - kept) < 1e-3
        assert 0 < kept < 1

    def test_needs_a_linear_head_and_enough_channels(self):
        with pytest.raises(ValueError, match="1x1 conv head"):
            pca_init_head(build_model(ModelConfig(name="lite", descriptor_dim=4)), torch.rand(1, 3, 32, 32))
        with pytest.raises(ValueError, match="exceeds the 176"):
            pca_init_head(build_model(ModelConfig(name="effnet_lite0", descriptor_dim=200)), torch.rand(1, 3, 32, 32))

    def test_training_starts_from_the_pca(self, image_dir, tmp_path):
        """finetune.pca_head_images in a run: the logged start is the PCA head (a 1-step run's weights are the
        PCA's, moved by one Adam step at most lr per weight)."""
        cfg = load_config(TrainConfig, None, [*tiny_overrides(image_dir, None, tmp_path / "p", steps=1),
                                              "model.name=effnet_lite0", "model.descriptor_dim=4",
                                              "finetune.pca_head_images=2", "optim.lr=1e-6"])
        res = train(cfg, progress=False)
        head = torch.load(res.run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]["head.weight"]
        # random init is std 1e-3; the PCA rows are unit vectors
        assert torch.allclose(head.flatten(1).norm(dim=1), torch.ones(4), atol=1e-3)
