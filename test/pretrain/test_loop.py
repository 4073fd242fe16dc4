"""`dense-descriptor pretrain` end to end on tiny runs: what a run leaves, bit-exact resume, and the encoder file
that `train init_from=` starts a descriptor network's encoder from (decoder and head fresh)."""

from __future__ import annotations

import json

import pytest
import torch

from dense_descriptor_ros.cli import main
from dense_descriptor_ros.config import load_config
from dense_descriptor_ros.models import build_model, is_encoder_file, read_metadata, trained_steps
from dense_descriptor_ros.models.config import ModelConfig
from dense_descriptor_ros.pretrain.config import PretrainConfig
from dense_descriptor_ros.pretrain.loop import pretrain
from dense_descriptor_ros.train.config import TrainConfig
from dense_descriptor_ros.train.loop import initial_weights, load_initial_weights, train

from ..conftest import tiny_overrides


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


def tiny(image_dir, val_dir, out, steps=4, extra=()) -> PretrainConfig:
    return load_config(PretrainConfig, None, [
        f"data.sources=[{image_dir}]", f"data.val_sources=[{val_dir}]", "data.val_items=4", "data.pool_side=64",
        "data.crop=48", "unmix.candidates=4", "unmix.hidden=32", "unmix.dim=16", "model.width_mult=0.5",
        "model.decoder_channels=16", f"steps={steps}", "batch_size=2", "workers=0", "log_every=1", "val_every=2",
        "ckpt_every=2", "warmup_steps=1", f"out_dir={out}", *extra])


@pytest.fixture(scope="module")
def encoder_run(image_dir, val_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "run"
    return pretrain(tiny(image_dir, val_dir, out), progress=False)


def test_a_run_leaves_an_encoder_file_checkpoints_and_its_history(encoder_run):
    d = encoder_run.run_dir
    for name in ("encoder.safetensors", "best_encoder.safetensors", "checkpoints/last.pt", "config.yaml",
                 "history.json", "history.png"):
        assert (d / name).is_file(), name
    assert any((d / "tb").iterdir())
    rows = json.loads((d / "history.json").read_text())
    assert any("val/accuracy" in r for r in rows) and any("train/logit_scale" in r for r in rows)
    assert is_encoder_file(d / "encoder.safetensors") and not is_encoder_file(d / "config.yaml")
    meta = read_metadata(d / "encoder.safetensors")
    assert meta["pretext"] == "unmix" and meta["pretext_steps"] == "4"


def test_init_from_an_encoder_file_loads_the_encoder_only(encoder_run):
    model = ModelConfig(name="lite", width_mult=0.5, decoder_channels=16, descriptor_dim=8, normalize=True)
    torch.manual_seed(1)
    net = build_model(model)
    head_before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("encoder.")}
    state = initial_weights(encoder_run.run_dir / "encoder.safetensors", model)
    assert state and all(k.startswith("encoder.") for k in state)
    assert load_initial_weights(net, state) == "encoder"
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert all(torch.equal(after[k], v) for k, v in head_before.items())
    # another encoder: refused, the differing field named
    with pytest.raises(ValueError, match="width_mult"):
        initial_weights(encoder_run.run_dir / "encoder.safetensors", ModelConfig(name="lite", width_mult=1.0))
    with pytest.raises(ValueError, match="name"):
        initial_weights(encoder_run.run_dir / "encoder.safetensors", ModelConfig(name="effnet_lite0"))


def test_train_starts_from_a_pretrained_encoder(encoder_run, image_dir, val_dir, tmp_path):
    enc = encoder_run.run_dir / "encoder.safetensors"
    cfg = load_config(TrainConfig, None, tiny_overrides(image_dir, val_dir, tmp_path / "t", steps=2)
                      + [f"init_from={enc}", "finetune.encoder_lr_mult=0"])
    res = train(cfg, progress=False)
    trained = torch.load(res.run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]
    saved = initial_weights(enc, cfg.model)
    # the encoder frozen (lr multiplier 0): it is exactly the pretext's; the pretext steps are not counted
    assert all(torch.equal(trained[k], v) for k, v in saved.items() if "running" not in k and "num_batches" not in k)
    assert trained_steps(res.run_dir / "model.safetensors") == 2


def test_resume_is_bit_exact(image_dir, val_dir, tmp_path):
    straight = pretrain(tiny(image_dir, val_dir, tmp_path / "a"), progress=False)
    cut = pretrain(tiny(image_dir, val_dir, tmp_path / "b"), stop_at=2, progress=False)
    assert cut.interrupted and not (tmp_path / "b" / "encoder.safetensors").exists()
    resumed = pretrain(tiny(image_dir, val_dir, tmp_path / "b"), resume=tmp_path / "b", progress=False)
    assert resumed.step == straight.step == 4
    a = initial_weights(tmp_path / "a" / "encoder.safetensors", tiny(image_dir, val_dir, tmp_path).model)
    b = initial_weights(tmp_path / "b" / "encoder.safetensors", tiny(image_dir, val_dir, tmp_path).model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="differs"):
        pretrain(tiny(image_dir, val_dir, tmp_path / "b", extra=("unmix.candidates=5",)), resume=tmp_path / "b",
                 progress=False)


def test_cli_names_a_missing_source(tmp_path):
    with pytest.raises(SystemExit, match="pretrain: .*does not exist"):
        main(["pretrain", f"data.sources=[{tmp_path / 'nowhere'}]", f"out_dir={tmp_path / 'o'}", "--no-progress"])
    with pytest.raises(SystemExit, match="sources < candidates"):
        main(["pretrain", "unmix.sources=8", f"out_dir={tmp_path / 'o'}", "--no-progress"])
