"""ONNX export: parity with PyTorch at sizes other than the traced one, metadata, fp16, the CLI."""

from __future__ import annotations

import argparse

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dense_descriptor_ros.models import save_model
from dense_descriptor_ros.runtime import (
    FP32_TOLERANCE,
    check_parity,
    export_onnx,
    model_fingerprint,
    read_model_file,
    read_onnx_info,
)
from dense_descriptor_ros.runtime.cli import register

from .tiny import tiny_model


@pytest.fixture(scope="module")
def lite():
    return tiny_model("lite")


@pytest.fixture(scope="module")
def lite_onnx(lite, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "lite.onnx"
    info = export_onnx(lite, path, trace_size=(64, 96), version="step-7", train_config_hash="abc123")
    return path, info


class TestExport:
    def test_fp32_parity_at_untraced_sizes_and_batch(self, lite, lite_onnx):
        path, _ = lite_onnx
        # Traced at 64x96: other sizes (one not divisible by the stride 4) and batch 2 must work.
        parity = check_parity(lite, path, sizes=((48, 80), (61, 99)), batch=2)
        assert set(parity) == {"48x80", "61x99"}
        assert max(parity.values()) < FP32_TOLERANCE

    def test_output_shape_is_dynamic(self, lite_onnx):
        path, _ = lite_onnx
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"image": np.zeros((3, 3, 61, 99), np.float32)})[0]
        assert y.shape == (3, 16, 16, 25)  # ceil(61/4), ceil(99/4)

    def test_metadata_round_trip(self, lite, lite_onnx):
        path, info = lite_onnx
        read = read_onnx_info(path)
        assert read == info
        assert read.model_id == model_fingerprint(lite)
        assert (read.name, read.version, read.train_config_hash) == ("lite", "step-7", "abc123")
        assert (read.descriptor_dim, read.stride, read.normalize, read.precision) == (16, 4, False, "fp32")
        assert read.mean == pytest.approx((0.485, 0.456, 0.406))
        props = {p.key for p in onnx.load(str(path)).metadata_props}
        assert {"model_config", "input_std", "input_mean", "train_config_hash"} <= props

    def test_parity_detects_a_different_model(self, lite_onnx):
        path, _ = lite_onnx
        other = tiny_model("lite", seed=1)
        assert max(check_parity(other, path, sizes=((32, 32),)).values()) > 1e-2

    def test_fp16_export(self, lite, tmp_path):
        path = tmp_path / "lite16.onnx"
        info = export_onnx(lite, path, fp16=True, trace_size=(64, 96))
        assert info.precision == "fp16" and info.model_id == model_fingerprint(lite)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert sess.get_inputs()[0].type == "tensor(float)"  # preprocessing unchanged
        assert sess.get_outputs()[0].type == "tensor(float16)"
        diff = max(check_parity(lite, path, sizes=((48, 80),)).values())
        with torch.no_grad():
            scale = lite(torch.rand(1, 3, 48, 80)).abs().max().item()
        assert 0 < diff < 1e-2 * scale  # fp16: ~3 significant digits, not bit-exact

    def test_upsampled_graph(self, lite, tmp_path):
        path = tmp_path / "up.onnx"
        info = export_onnx(lite, path, upsample=True, trace_size=(64, 96))
        assert info.stride == 1
        assert max(check_parity(lite, path, sizes=((30, 42),)).values()) < FP32_TOLERANCE


class TestModelFile:
    def test_version_from_safetensors_metadata(self, lite, tmp_path):
        save_model(lite, tmp_path / "m.safetensors", extra={"step": "1200", "train_config_hash": "feed"})
        model, meta = read_model_file(tmp_path / "m.safetensors")
        assert meta == {"version": "step-1200", "train_config_hash": "feed"}
        assert model_fingerprint(model) == model_fingerprint(lite)

    def test_unknown_version(self, lite, tmp_path):
        save_model(lite, tmp_path / "m.safetensors")
        assert read_model_file(tmp_path / "m.safetensors")[1] == {"version": "unknown", "train_config_hash": "unknown"}

    def test_training_checkpoint(self, lite, tmp_path):
        from dense_descriptor_ros.config import to_dict

        torch.save({"model": lite.state_dict(), "model_config": to_dict(lite.config), "step": 42,
                    "config": {"lr": 1e-3}}, tmp_path / "ckpt.pt")
        model, meta = read_model_file(tmp_path / "ckpt.pt")
        assert meta["version"] == "step-42" and len(meta["train_config_hash"]) == 16
        assert model_fingerprint(model) == model_fingerprint(lite)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dense-descriptor")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


class TestExportCli:
    def test_export_prints_parity(self, lite, tmp_path, capsys):
        save_model(lite, tmp_path / "m.safetensors", extra={"step": "5"})
        assert _cli("export", "--model", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.onnx"),
                    "--trace-size", "96x64") == 0
        out = capsys.readouterr().out
        assert "parity vs PyTorch" in out and "OK" in out and "step-5" in out
        assert read_onnx_info(tmp_path / "m.onnx").version == "step-5"

    def test_export_fp16_reports(self, lite, tmp_path, capsys):
        save_model(lite, tmp_path / "m.safetensors")
        assert _cli("export", "--model", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "h.onnx"),
                    "--fp16", "--trace-size", "96x64") == 0
        assert "fp16 max abs diff" in capsys.readouterr().out

    def test_missing_model_is_a_one_line_error(self, tmp_path):
        with pytest.raises(SystemExit, match="cannot load model"):
            _cli("export", "--model", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "x.onnx"))
