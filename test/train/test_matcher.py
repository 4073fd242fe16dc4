"""`dense-descriptor matcher train / eval / export` end to end on tiny runs: what a run leaves, bit-exact resume,
the evaluation's numbers on hand-made matches, and its report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dense_descriptor_ros.cli import main
from dense_descriptor_ros.config import load_config
from dense_descriptor_ros.eval.matching import (
    PairMatches,
    correct_at_precision,
    precision_curve,
    summarize,
)
from dense_descriptor_ros.matcher.io import load_matcher
from dense_descriptor_ros.models import save_model
from dense_descriptor_ros.runtime.export import model_fingerprint
from dense_descriptor_ros.train.matcher import train_matcher
from dense_descriptor_ros.train.matcher_config import MatcherTrainConfig

from ..runtime.tiny import tiny_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


@pytest.fixture(scope="module")
def desc_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("desc") / "m.safetensors"
    save_model(tiny_model("lite", normalize=True), path)
    return path


def tiny(desc_model, tiny_sim, image_dir, out, steps=4, extra=()) -> MatcherTrainConfig:
    return load_config(MatcherTrainConfig, None, [
        f"descriptor_model={desc_model}", "matcher.descriptor_dim=16", "matcher.d_model=16", "matcher.layers=1",
        "matcher.heads=2", "matcher.fine_dim=8", f"data.synthetic_dir={tiny_sim}", f"data.image_dir={image_dir}",
        "data.image_size=[64,96]", "data.image_fraction=0.5", f"steps={steps}", "batch_size=2", "workers=0",
        "log_every=1", "val_every=2", "ckpt_every=2", "warmup_steps=1", "val_pairs=2", f"out_dir={out}", *extra])


@pytest.fixture(scope="module")
def run(desc_model, tiny_sim, image_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("matcher_run") / "run"
    return train_matcher(tiny(desc_model, tiny_sim, image_dir, out), progress=False)


def test_a_run_leaves_a_matcher_file_for_its_descriptor_model(run, desc_model):
    d = run.run_dir
    for name in ("matcher.safetensors", "best_matcher.safetensors", "checkpoints/last.pt", "config.yaml",
                 "history.json", "history.png"):
        assert (d / name).is_file(), name
    rows = json.loads((d / "history.json").read_text())
    assert any("val/precision@3px" in r for r in rows) and any("loss/coarse" in r for r in rows)
    net, info = load_matcher(d / "matcher.safetensors")
    from dense_descriptor_ros.models import load_model

    assert info.descriptor_model_id == model_fingerprint(load_model(desc_model))
    assert info.descriptor_stride == 4 and info.version == "step-4"


def test_resume_is_bit_exact(desc_model, tiny_sim, image_dir, tmp_path):
    straight = train_matcher(tiny(desc_model, tiny_sim, image_dir, tmp_path / "a"), progress=False)
    cut = train_matcher(tiny(desc_model, tiny_sim, image_dir, tmp_path / "b"), stop_at=2, progress=False)
    assert cut.interrupted and not (tmp_path / "b" / "matcher.safetensors").exists()
    resumed = train_matcher(tiny(desc_model, tiny_sim, image_dir, tmp_path / "b"), resume=tmp_path / "b",
                            progress=False)
    assert resumed.step == straight.step == 4
    a, _ = load_matcher(tmp_path / "a" / "matcher.safetensors")
    b, _ = load_matcher(tmp_path / "b" / "matcher.safetensors")
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_bad_settings_are_refused_with_the_reason(desc_model, tiny_sim, image_dir, tmp_path):
    with pytest.raises(ValueError, match="descriptor_dim"):
        train_matcher(tiny(desc_model, tiny_sim, image_dir, tmp_path / "c", extra=["matcher.descriptor_dim=8"]),
                      progress=False)
    with pytest.raises(ValueError, match="multiple of the coarse stride 8"):
        train_matcher(tiny(desc_model, tiny_sim, image_dir, tmp_path / "d", extra=["data.image_size=[60,96]"]),
                      progress=False)


def pm(err: list[float], score: list[float], pose: float = math.inf) -> PairMatches:
    """Matches whose B positions are `err` px right of the truth (NaN = no truth)."""
    n = len(err)
    truth = np.zeros((n, 2))
    truth[np.isnan(err)] = np.nan
    return PairMatches(np.zeros((n, 2)), np.stack([np.nan_to_num(err), np.zeros(n)], 1), truth,
                       np.asarray(score, np.float32), pose)


def test_summary_and_curves_on_hand_made_matches():
    rows = [pm([0.5, 2.0, 4.0, np.nan], [0.9, 0.8, 0.7, 0.6], pose=3.0), pm([10.0, 0.2], [0.95, 0.5], pose=12.0)]
    s = summarize(rows)
    assert s["matches_per_pair"] == 3.0
    # 5 matches with truth: within 1 px 2, within 3 px 3, within 5 px 4
    assert s["precision@1px"] == pytest.approx(2 / 5) and s["precision@3px"] == pytest.approx(3 / 5)
    assert s["precision@5px"] == pytest.approx(4 / 5) and s["correct@3px_per_pair"] == pytest.approx(1.5)
    # pose errors 3 and 12 degrees: recall 0 -> 1/2 -> 1 linearly between them (SuperGlue's trapezoid):
    # AUC@5 = (0.75 + 0.5 * 2) / 5 = 0.35; AUC@20 = (0.75 + 6.75 + 8) / 20 = 0.775
    assert s["auc@5"] == pytest.approx(0.35) and s["auc@20"] == pytest.approx(0.775)
    correct, prec = precision_curve(rows)
    # by score: 0.95 (10 px, wrong), 0.9 (ok), 0.8 (ok), 0.7 (4 px), 0.6 (no truth), 0.5 (ok)
    np.testing.assert_allclose(correct, np.array([0, 1, 2, 2, 2, 3]) / 2)
    np.testing.assert_allclose(prec, [0, 1 / 2, 2 / 3, 2 / 4, 2 / 4, 3 / 5])
    assert correct_at_precision(rows, 0.65) == pytest.approx(1.0)  # threshold 0.8: 2 correct of 3, 1 a pair
    assert correct_at_precision(rows, 0.6) == pytest.approx(1.5)  # no threshold: 3 correct of 5
    assert correct_at_precision(rows, 0.99) == 0.0


def test_eval_and_export_commands(run, desc_model, tiny_sim, tmp_path, capsys):
    m = run.run_dir / "matcher.safetensors"
    assert main(["matcher", "export", str(m), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "parity with PyTorch" in capsys.readouterr().out
    # the tiny dataset renders at 160 x 120 (rootsift and the descriptor methods too, in one run)
    rc = main(["matcher", "eval", "--model", str(desc_model), "--matcher", str(tmp_path / "m.onnx"), "--data",
               str(tiny_sim), "--out", str(tmp_path / "ev"), "--pairs", "2", "--no-progress"])
    assert rc == 0
    rep = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert set(rep["summary"]) == {"rootsift", "descriptor", "descriptor_grid", "matcher"}
    assert len(rep["pairs"]) == 2 and (tmp_path / "ev" / "curves.png").is_file()
    for s in rep["summary"].values():
        assert 0.0 <= s["auc@20"] <= 1.0 and s["pairs"] == 2
    # a matcher of another descriptor model is refused, naming both
    other = tmp_path / "other.safetensors"
    save_model(tiny_model("lite", normalize=True, seed=5), other)
    assert main(["matcher", "eval", "--model", str(other), "--matcher", str(m), "--data", str(tiny_sim), "--out",
                 str(tmp_path / "ev2"), "--pairs", "1", "--no-progress"]) == 2
    assert "trained on descriptor model" in capsys.readouterr().err
