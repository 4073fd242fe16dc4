"""DescriptorExtractor: backend equivalence, shared pre/postprocessing, fallback detection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dense_descriptor_ros.models import save_model
from dense_descriptor_ros.runtime import (
    BackendFallbackError,
    BackendFallbackWarning,
    DescriptorExtractor,
    DescriptorMap,
    ExtractorConfig,
    export_onnx,
    model_fingerprint,
)
from dense_descriptor_ros.runtime.export import with_upsample

from ..conftest import textured_image
from .tiny import tiny_model

CPU = ExtractorConfig(warmup_iters=0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("extractor")
    model = tiny_model("lite", normalize=True)
    save_model(model, d / "m.safetensors", extra={"step": "3"})
    export_onnx(model, d / "m.onnx", trace_size=(64, 96), version="step-3")
    return model, d / "m.safetensors", d / "m.onnx"


@pytest.fixture(scope="module")
def image():
    return textured_image(np.random.default_rng(3), 70, 90)


def test_torch_cpu_and_onnxruntime_cpu_agree(files, image):
    _, st, onnx_path = files
    a = DescriptorExtractor.load(st, CPU)
    b = DescriptorExtractor.load(onnx_path, CPU)
    assert (a.backend.name, b.backend.name) == ("torch", "onnxruntime")
    np.testing.assert_array_equal(a.preprocess(image), b.preprocess(image))
    da, db = a(image), b(image)
    assert da.descriptors.shape == db.descriptors.shape == (18, 23, 16)  # ceil(70/4), ceil(90/4)
    assert da.stride == db.stride == (4.0, 4.0)
    assert np.abs(da.descriptors - db.descriptors).max() < 1e-4
    # One model identity whatever the backend, so keypoint files work with both.
    assert a.info.model_id == b.info.model_id == da.model_id == db.model_id
    assert a.info.version == b.info.version == "step-3"


def test_descriptors_equal_the_network_output(files, image):
    model, st, _ = files
    assert model.config.upsample  # the model file says "upsample"; the extractor gives the native map
    d = DescriptorExtractor.load(st, CPU)(image)
    with torch.no_grad():
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        ref = with_upsample(model, False)(x)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(d.descriptors, ref, atol=1e-5)


def test_upsampled_output_is_the_same_for_both_backends(files, image):
    _, st, onnx_path = files
    cfg = ExtractorConfig(warmup_iters=0, output_stride=1)
    da = DescriptorExtractor.load(st, cfg)(image)
    db = DescriptorExtractor.load(onnx_path, cfg)(image)
    assert da.descriptors.shape == (70, 90, 16) and da.stride == (1.0, 1.0)
    assert np.abs(da.descriptors - db.descriptors).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(da.descriptors, axis=-1), 1.0, atol=1e-5)  # renormalised


def test_processing_resolution_scales_the_stride(files, image):
    _, _, onnx_path = files
    ext = DescriptorExtractor.load(onnx_path, ExtractorConfig(warmup_iters=0, resolution=(48, 32)))
    d = ext(image)
    assert d.descriptors.shape == (8, 12, 16)
    assert d.stride == pytest.approx((90 / 48 * 4, 70 / 32 * 4))
    assert d.image_size == (90, 70)
    # Map cell (0, 0) is centred on the image pixel its network input cell came from.
    np.testing.assert_allclose(d.to_map(d.to_image(np.array([[3.0, 5.0]]))), [[3.0, 5.0]])


def test_float16_output(files, image):
    _, _, onnx_path = files
    d = DescriptorExtractor.load(onnx_path, ExtractorConfig(warmup_iters=0, output_dtype="float16"))(image)
    assert d.descriptors.dtype == np.float16


def test_from_model_does_not_touch_the_callers_model(image):
    # ResNet: bf16 grouped (depthwise) convolutions take PyTorch's slow per-group path on a CPU.
    model = tiny_model("don_resnet18")
    before = model_fingerprint(model)
    ext = DescriptorExtractor.from_model(model, ExtractorConfig(warmup_iters=1, warmup_size=(32, 24),
                                                                precision="bf16"))
    assert ext.backend.active == "cpu bf16 channels_last"
    d = ext(image[:32, :40])
    assert d.descriptors.dtype == np.float32 and d.stride == (8.0, 8.0)
    assert model_fingerprint(model) == before and next(model.parameters()).dtype == torch.float32
    assert model.config.upsample  # unchanged


def test_bad_input_is_rejected(files):
    ext = DescriptorExtractor.load(files[2], CPU)
    with pytest.raises(ValueError, match="uint8"):
        ext(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        ext(np.zeros((10, 10), np.uint8))


def test_wrong_backend_for_file(files):
    with pytest.raises(ValueError, match="needs an .onnx"):
        DescriptorExtractor.load(files[1], ExtractorConfig(backend="onnxruntime", warmup_iters=0))
    with pytest.raises(ValueError, match="export with --fp16"):
        DescriptorExtractor.load(files[2], ExtractorConfig(precision="fp16", warmup_iters=0))


def test_descriptor_map_checks_shape():
    with pytest.raises(ValueError, match=r"\(h, w, D\)"):
        DescriptorMap(np.zeros((4, 4)), (1, 1), (4, 4))


class TestFallback:
    """A real ONNX Runtime session asked for GPU providers this install cannot load (CPU-only wheel here,
    missing CUDA libraries on a robot): ORT silently runs on CPU; the extractor must notice."""

    @pytest.fixture(autouse=True)
    def _no_gpu(self):
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available():
            pytest.skip("a working CUDA provider is installed: nothing falls back")

    def test_refuse(self, files):
        with pytest.raises(BackendFallbackError, match="CUDAExecutionProvider"):
            DescriptorExtractor.load(files[2], ExtractorConfig(providers=("cuda", "cpu"), warmup_iters=0))

    def test_warn_and_run(self, files, image):
        cfg = ExtractorConfig(providers=("tensorrt", "cuda", "cpu"), on_fallback="warn", warmup_size=(32, 24))
        with pytest.warns(BackendFallbackWarning, match="TensorrtExecutionProvider, CUDAExecutionProvider"):
            ext = DescriptorExtractor.load(files[2], cfg)
        assert ext.backend.active == "CPUExecutionProvider"
        assert ext.backend.fallback is not None
        assert ext(image).descriptors.shape == (18, 23, 16)

    def test_cpu_only_does_not_warn(self, files):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ext = DescriptorExtractor.load(files[2], CPU)
        assert ext.backend.fallback is None

    def test_torch_cuda_unavailable(self, files):
        if torch.cuda.is_available():
            pytest.skip("CUDA is available")
        with pytest.raises(BackendFallbackError, match="CUDA is not available"):
            DescriptorExtractor.load(files[1], ExtractorConfig(device="cuda", warmup_iters=0))
        with pytest.warns(BackendFallbackWarning):
            ext = DescriptorExtractor.load(files[1], ExtractorConfig(device="cuda", precision="fp16",
                                                                     on_fallback="warn", warmup_iters=0))
        assert ext.backend.active.startswith("cpu fp32")
