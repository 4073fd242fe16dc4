"""Training-recipe sanity checks and the run mechanics (resume, Ctrl-C, DDP, bad input)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dense_descriptor_ros.config import load_config
from dense_descriptor_ros.data import ImageFolderPairs, collate_pairs
from dense_descriptor_ros.models import build_model, load_model, trained_steps
from dense_descriptor_ros.runtime.export import read_model_file
from dense_descriptor_ros.train import TrainConfig, build_loss_from_config, load_checkpoint, train

from ..conftest import tiny_overrides

CLI = [sys.executable, "-m", "dense_descriptor_ros.cli"]


def tiny_cfg(image_dir, val_dir, out, steps=4, extra=()):
    return load_config(TrainConfig, None, tiny_overrides(image_dir, val_dir, out, steps) + list(extra))


def one_batch(cfg, image_dir):
    ds = ImageFolderPairs(image_dir, size=cfg.data.image_size, n_matches=cfg.data.n_matches)
    return collate_pairs([ds[(0, 11)], ds[(1, 12)]])


class TestRecipe:
    @pytest.mark.parametrize(("loss", "expected"), [
        ("contrastive", 0.25),   # matches ~0, every non-match hinge ~margin^2 = 0.5^2
        ("infonce", "logN"),     # uninformative descriptors: uniform softmax over N candidates
    ])
    def test_loss_at_init_matches_theory(self, image_dir, tmp_path, loss, expected):
        cfg = tiny_cfg(image_dir, None, tmp_path, extra=[f"loss.name={loss}", "loss.temperature=1.0",
                                                         "model.normalize=false"])
        torch.manual_seed(0)
        net = build_model(cfg.model)
        batch = one_batch(cfg, image_dir)
        b = batch.image_a.shape[0]
        d = net.forward_native(torch.cat([batch.image_a, batch.image_b]))
        res = build_loss_from_config(cfg, net)(d[:b], d[b:], batch.pairs, net.stride)
        if expected == "logN":
            expected = math.log(cfg.data.n_matches)
        assert res.loss.item() == pytest.approx(expected, rel=0.1)

    @pytest.mark.parametrize("loss", ["contrastive", "dense_infonce"])
    def test_one_batch_overfits(self, image_dir, tmp_path, loss):
        cfg = tiny_cfg(image_dir, None, tmp_path, extra=[f"loss.name={loss}"])
        torch.manual_seed(0)
        net = build_model(cfg.model)
        loss_fn = build_loss_from_config(cfg, net)
        batch = one_batch(cfg, image_dir)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        b = batch.image_a.shape[0]
        losses = []
        for _ in range(40):
            d = net.forward_native(torch.cat([batch.image_a, batch.image_b]))
            out = loss_fn(d[:b], d[b:], batch.pairs, net.stride)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            # dense InfoNCE cannot go below the entropy of its soft target: watch the excess over it
            losses.append(out.parts["excess_ab"].item() if loss == "dense_infonce" else out.loss.item())
        assert losses[-1] < 0.2 * losses[0]


class TestRun:
    def test_resume_is_bit_exact(self, image_dir, val_dir, tmp_path):
        full = train(tiny_cfg(image_dir, val_dir, tmp_path / "full", steps=6), progress=False)
        part_cfg = tiny_cfg(image_dir, val_dir, tmp_path / "part", steps=6)
        first = train(part_cfg, stop_at=3, progress=False)
        assert first.interrupted and first.step == 3
        assert not (tmp_path / "part" / "model.safetensors").exists()
        second = train(part_cfg, resume=tmp_path / "part", progress=False)
        assert second.step == 6

        def losses(rows):
            return [(r["step"], r["loss/total"]) for r in rows if "loss/total" in r]

        assert losses(second.history) == losses(full.history)
        a = load_checkpoint(tmp_path / "full")["model"]
        b = load_checkpoint(tmp_path / "part")["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)

    def test_outputs_of_a_run(self, image_dir, val_dir, tmp_path):
        res = train(tiny_cfg(image_dir, val_dir, tmp_path, steps=4, extra=["early_stop_patience=1"]),
                    progress=False)
        for f in ("config.yaml", "model.safetensors", "best.safetensors", "history.json", "history.png",
                  "checkpoints/last.pt"):
            assert (tmp_path / f).is_file(), f
        rows = json.loads((tmp_path / "history.json").read_text())
        keys = set().union(*rows)
        assert {"loss/total", "lr/lr", "health/channel_std", "health/nonmatch_dist", "val/pck@5"} <= keys
        assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
        ckpt = load_checkpoint(tmp_path)
        assert ckpt["train_config"]["steps"] == 4 and ckpt["step"] == res.step

    def test_init_from_starts_from_the_saved_weights(self, image_dir, tmp_path):
        train(tiny_cfg(image_dir, None, tmp_path / "a", steps=3, extra=["seed=3"]), progress=False)
        src = tmp_path / "a" / "model.safetensors"
        saved = dict(load_model(src).named_parameters())

        def params_after(*extra):
            # lr 0: the weights the run starts from are the weights it ends with
            train(tiny_cfg(image_dir, None, tmp_path / "b", steps=1, extra=["optim.lr=0", *extra]), progress=False)
            return dict(load_model(tmp_path / "b" / "model.safetensors").named_parameters())

        out = tmp_path / "b" / "model.safetensors"
        assert all(torch.equal(v, saved[k]) for k, v in params_after(f"init_from={src}").items())
        # the saved model counts the steps of the stage it started from (3 + 1), and so does its version
        assert (trained_steps(src), trained_steps(out)) == (3, 4)
        assert trained_steps(tmp_path / "b" / "checkpoints" / "last.pt") == 4
        assert read_model_file(out)[1]["version"] == "step-4"
        assert not all(torch.equal(v, saved[k]) for k, v in params_after().items())
        assert trained_steps(out) == 1
        # a checkpoint works as well as a model file
        ckpt = tmp_path / "a" / "checkpoints" / "last.pt"
        assert all(torch.equal(v, saved[k]) for k, v in params_after(f"init_from={ckpt}").items())
        assert trained_steps(out) == 4

    def test_init_from_another_architecture_or_no_file_is_a_clear_error(self, image_dir, tmp_path):
        train(tiny_cfg(image_dir, None, tmp_path / "a", steps=1), progress=False)
        src = tmp_path / "a" / "model.safetensors"
        with pytest.raises(ValueError, match=r"architecture differs .*descriptor_dim: 16 in the file, 4 configured"):
            train(tiny_cfg(image_dir, None, tmp_path / "b", steps=1,
                           extra=[f"init_from={src}", "model.descriptor_dim=4"]), progress=False)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            missing = tmp_path / "none.safetensors"
            train(tiny_cfg(image_dir, None, tmp_path / "c", steps=1, extra=[f"init_from={missing}"]), progress=False)

    def test_pyramid_and_hard_negatives_and_accumulation(self, image_dir, tmp_path):
        res = train(tiny_cfg(image_dir, None, tmp_path, steps=2,
                             extra=["loss.pyramid=true", "loss.hard_negatives=2", "grad_accum=2"]), progress=False)
        assert res.step == 2 and all(math.isfinite(r["loss/total"]) for r in res.history if "loss/total" in r)

    def test_simsiam_runs(self, image_dir, tmp_path):
        res = train(tiny_cfg(image_dir, None, tmp_path, steps=2,
                             extra=["loss.name=simsiam", "model.predictor_hidden=16"]), progress=False)
        assert res.step == 2

    def test_corrupt_images_are_skipped_and_counted(self, image_dir):
        ds = ImageFolderPairs(image_dir, size=(64, 96))
        assert len(ds) == 6 and [p.name for p in ds.skipped] == ["broken.jpg"]


def _env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class TestCommandLine:
    def test_unknown_key_is_a_clear_error(self, tmp_path):
        r = subprocess.run(CLI + ["train", "optim.lrr=1", f"out_dir={tmp_path}"], capture_output=True, text=True,
                           env=_env(), timeout=120)
        assert r.returncode != 0
        assert "optim.lrr" in r.stderr and "Traceback" not in r.stderr

    def test_ctrl_c_saves_and_exits_cleanly(self, image_dir, tmp_path):
        args = tiny_overrides(image_dir, None, tmp_path, steps=100000) + ["ckpt_every=100000"]
        p = subprocess.Popen(CLI + ["train", "--no-progress", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=_env())
        deadline = time.time() + 120
        while not (tmp_path / "tb").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(3.0)  # a few steps in
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
        assert "--resume" in out and "Traceback" not in out
        ckpt = load_checkpoint(tmp_path)
        assert 0 < ckpt["step"] < 100000


def test_ddp_two_processes_gloo(image_dir, tmp_path):
    """torchrun with 2 CPU processes: rank 0 writes the run, replicas end bit-identical."""
    args = tiny_overrides(image_dir, None, tmp_path, steps=3)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "dense_descriptor_ros.cli", "train", "--no-progress", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 replicas in sync" in r.stdout
    assert (tmp_path / "model.safetensors").is_file()
    assert load_checkpoint(Path(tmp_path))["step"] == 3


def test_part_term_trains_saves_and_resumes(image_dir, tmp_path_factory, tmp_path):
    """loss.part_weight: the synthetic half of a mixed batch carries part labels, the classifier trains beside the
    network, lives in the checkpoint (not the model file) and resumes bit-exactly."""
    from test.sim.simdata import tiny_dataset

    root = tiny_dataset(tmp_path_factory)
    extra = ["data.kind=mixed", f"data.synthetic_dir={root}", "data.synthetic_fraction=0.5", "loss.part_weight=1.0"]
    full = train(tiny_cfg(image_dir, None, tmp_path / "full", steps=4, extra=extra), progress=False)
    rows = [r for r in full.history if "loss/part_ce" in r]
    assert rows and all(0.0 <= r["loss/part_acc"] <= 1.0 for r in rows)
    ckpt = load_checkpoint(tmp_path / "full")
    assert ckpt["part_head"]["head.weight"].shape[:2] == (26, 16)  # the tiny dataset's 26 part ids, D = 16
    assert not any(k.startswith("head.weight") and v.shape[0] == 26
                   for k, v in read_model_file(tmp_path / "full" / "model.safetensors")[0].state_dict().items())
    cfg = tiny_cfg(image_dir, None, tmp_path / "part", steps=4, extra=extra)
    assert train(cfg, stop_at=2, progress=False).interrupted
    train(cfg, resume=tmp_path / "part", progress=False)
    a, b = ckpt["part_head"], load_checkpoint(tmp_path / "part")["part_head"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="needs synthetic data"):
        train(tiny_cfg(image_dir, None, tmp_path / "bad", extra=["loss.part_weight=1.0"]), progress=False)


def test_canonical_term_trains_saves_and_resumes(image_dir, tmp_path_factory, tmp_path):
    """loss.coords_weight: synthetic items carry canonical targets, the regression head trains beside the network
    (its error falls on a fixed batch), lives in the checkpoint and resumes bit-exactly."""
    from test.sim.simdata import tiny_dataset

    root = tiny_dataset(tmp_path_factory)
    extra = ["data.kind=synthetic", f"data.synthetic_dir={root}", "loss.coords_weight=1.0"]
    full = train(tiny_cfg(image_dir, None, tmp_path / "full", steps=4, extra=extra), progress=False)
    rows = [r for r in full.history if "loss/coords_l1" in r]
    assert rows and all(r["loss/coords_l1"] >= 0 for r in rows)
    ckpt = load_checkpoint(tmp_path / "full")
    assert ckpt["coords_head"]["head.weight"].shape[:2] == (4, 16)
    cfg = tiny_cfg(image_dir, None, tmp_path / "res", steps=4, extra=extra)
    assert train(cfg, stop_at=2, progress=False).interrupted
    train(cfg, resume=tmp_path / "res", progress=False)
    a, b = ckpt["coords_head"], load_checkpoint(tmp_path / "res")["coords_head"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="needs synthetic data"):
        train(tiny_cfg(image_dir, None, tmp_path / "bad", extra=["loss.coords_weight=1.0"]), progress=False)
