"""The part probe's file, inference and model check."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.runtime.part_probe import PartProbe, ProbeFileError


def _probe(model_id: str = "abc") -> PartProbe:
    w = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    return PartProbe(w, np.array([0.5, 0.0, 0.0], np.float32), ["background", "mug/body", "mug/handle"],
                     {"id": model_id, "name": "lite", "version": "step-1"}, "test")


def test_predict_is_argmax_of_the_linear_scores():
    desc = np.zeros((2, 2, 3), dtype=np.float32)
    desc[0, 0, 0] = 2.0  # class 1 wins (2 > 0.5)
    desc[1, 1, 1] = 3.0  # class 2 wins
    desc[0, 1, 2] = 0.4  # 0.4 < 0.5: background
    labels = _probe().predict(desc)
    assert labels.dtype == np.uint8 and labels.shape == (2, 3)
    assert labels.tolist() == [[1, 0, 0], [0, 2, 0]]
    assert _probe().categories() == ["", "mug", "mug"]


def test_roundtrip(tmp_path):
    p = _probe()
    p.save(tmp_path / "p.safetensors")
    q = PartProbe.load(tmp_path / "p.safetensors")
    assert q.classes == p.classes and q.model == p.model and q.notes == "test"
    np.testing.assert_array_equal(q.weight, p.weight)
    np.testing.assert_array_equal(q.bias, p.bias)


def test_model_mismatch_is_refused():
    _probe("abc").check_model("abc")
    _probe("").check_model("xyz")  # a probe of a baseline names no model
    with pytest.raises(ProbeFileError, match="fitted on model abc"):
        _probe("abc").check_model("xyz")


def test_bad_files_and_shapes(tmp_path):
    with pytest.raises(ProbeFileError, match="does not exist"):
        PartProbe.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ProbeFileError, match="readable"):
        PartProbe.load(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="background"):
        PartProbe(np.zeros((2, 3)), np.zeros(2), ["mug/body", "background"])
    with pytest.raises(ValueError, match="class names"):
        PartProbe(np.zeros((2, 3)), np.zeros(2), ["background"])
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        _probe().predict(np.zeros((3, 4, 4), np.float32))
