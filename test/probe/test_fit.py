"""Fitting the linear probe (on hand-made features) and the `probe` command end to end on a tiny dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dense_descriptor_ros.probe import PartProbe
from dense_descriptor_ros.probe.fit import LabelSpace, fit_probe

CLASSES = ["background", "mug/body", "mug/handle"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    yield


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian clusters in 4-D; the last dimension is scaled by 100 (what standardisation is for)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [3, 0, 0, 0], [0, 3, 0, 0]], dtype=np.float32)
    y = rng.integers(0, 3, n)
    x = centres[y] + rng.normal(0, 0.5, (n, 4)).astype(np.float32)
    x[:, 3] *= 100
    return x, y


def _accuracy(probe: PartProbe, x: np.ndarray, y: np.ndarray) -> float:
    return float((probe.predict(x.T[:, :, None])[:, 0] == y).mean())


def test_separable_classes_are_learnt_and_the_scaling_folded_in():
    x, y = _clusters(3000, 0)
    probe = fit_probe(x, y, CLASSES)
    xt, yt = _clusters(2000, 1)
    assert _accuracy(probe, xt, yt) > 0.97  # the Bayes rate of these clusters is about 0.99


def test_random_labels_are_not_learnt():
    """The same fit on labels that do not depend on the features stays at chance on new points."""
    x, _ = _clusters(3000, 0)
    y = np.random.default_rng(2).integers(0, 3, 3000)
    probe = fit_probe(x, y, CLASSES)
    xt, _ = _clusters(2000, 1)
    assert _accuracy(probe, xt, np.random.default_rng(3).integers(0, 3, 2000)) < 0.4


def test_a_class_without_pixels_is_never_predicted():
    x, y = _clusters(2000, 0)
    keep = y != 2
    probe = fit_probe(x[keep], y[keep], CLASSES)
    assert 2 not in probe.predict(x.T[:, :, None])


def test_label_space_of_a_dataset(tiny_sim):
    from dense_descriptor_ros.sim.dataset import SyntheticDataset

    data = SyntheticDataset(tiny_sim, "train")
    space = LabelSpace.from_dataset(data)
    assert space.classes[0] == "background" and "mug/handle" in space.classes
    handle = next(p["id"] for p in data.meta["parts"] if p["category"] == "mug" and p["name"] == "handle")
    assert space.classes[space.lut[handle]] == "mug/handle"
    assert space.lut[0] == 0
    names, groups = space.category_groups()
    assert names[0] == "background" and names[groups[space.lut[handle]]] == "mug"
    # a box's four side faces differ only in its canonical frame: one class
    sides = [p["id"] for p in data.meta["parts"] if p["category"] == "box" and p["name"] in ("front", "left")]
    assert len(sides) == 2 and space.lut[sides[0]] == space.lut[sides[1]]
    assert space.classes[space.lut[sides[0]]] == "box/side" and len(space.classes) == 23  # 26 parts - 3


def test_probe_command_end_to_end(tiny_sim, tmp_path):
    """Fits and scores a model and a baseline: report, figure and probe files that name their model."""
    from dense_descriptor_ros.cli import main
    from dense_descriptor_ros.models import save_model
    from dense_descriptor_ros.runtime.model_files import probe_model

    from ..runtime.tiny import tiny_model

    save_model(tiny_model("lite", normalize=True), tmp_path / "m.safetensors")
    out = tmp_path / "probe"
    rc = main(["probe", "--model", f"tiny={tmp_path / 'm.safetensors'}", "--baselines", "lab", "--data",
               str(tiny_sim), "--out", str(out), "--train-views", "6", "--test-views", "2", "--per-class", "20",
               "--no-progress"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]) == {"tiny", "lab"}
    for s in report["methods"].values():
        assert 0.0 <= s["part_miou"] <= 1.0 and 0.0 <= s["object_iou"] <= 1.0
        assert np.array(s["confusion"]).sum() == 2 * 120 * 160  # every pixel of the two held-out views
    probe = PartProbe.load(out / "probe_tiny.safetensors")
    assert probe.model["id"] == probe_model(tmp_path / "m.safetensors").model_id
    assert probe.classes == report["classes"] and probe.descriptor_dim == 16
    assert PartProbe.load(out / "probe_lab.safetensors").model == {}
    assert (out / "probe_examples.png").stat().st_size > 0 and "part mIoU" in (out / "report.md").read_text()


def test_probe_command_errors(tiny_sim, tmp_path, capsys):
    from dense_descriptor_ros.cli import main

    assert main(["probe", "--data", str(tiny_sim), "--out", str(tmp_path)]) == 2
    assert "nothing to probe" in capsys.readouterr().err
    assert main(["probe", "--baselines", "rgb", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "not a synthetic dataset" in capsys.readouterr().err
