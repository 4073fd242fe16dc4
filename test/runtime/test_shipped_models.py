"""The shipped models (models/default, the node's default, and models/lite, the fastest): each folder is one
model in both formats with its own mug keypoints, and everything shipped stays small."""

from __future__ import annotations

import numpy as np
import pytest

from dense_descriptor_ros.matching.keypoints import ReferenceKeypoints
from dense_descriptor_ros.runtime.extractor import DescriptorExtractor, ExtractorConfig
from dense_descriptor_ros.runtime.model_files import default_model_path, models_dir, probe_model

FOLDERS = ("default", "lite")
MAX_SHIPPED_MB = 30.0  # issue #14: the shipped files stay small


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_shipped_folder_is_one_model_with_its_keypoints(folder):
    d = models_dir() / folder
    onnx, torch_file = probe_model(d / "model.onnx"), probe_model(d / "model.safetensors")
    assert onnx.model_id == torch_file.model_id and onnx.descriptor_dim == torch_file.descriptor_dim
    kp = ReferenceKeypoints.load(d / "mug_keypoints.json")
    assert kp.model_id == onnx.model_id and kp.category == "mug"
    assert kp.descriptors.shape == (len(kp.names), onnx.descriptor_dim) and np.isfinite(kp.descriptors).all()
    # both formats give the same descriptors on an image
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    cfg = ExtractorConfig(num_threads=1, warmup_iters=0)
    a = DescriptorExtractor.load(d / "model.onnx", cfg)(img).descriptors
    b = DescriptorExtractor.load(d / "model.safetensors", cfg)(img).descriptors
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_the_shipped_part_probe_belongs_to_the_default_model():
    """The labels output's probe (issue #15) was fitted on the shipped default model and labels its images."""
    from dense_descriptor_ros.runtime.model_files import default_part_probe_path
    from dense_descriptor_ros.runtime.part_probe import PartProbe

    probe = PartProbe.load(default_part_probe_path())
    info = probe_model(default_model_path("onnx"))
    probe.check_model(info.model_id)
    assert probe.descriptor_dim == info.descriptor_dim and probe.classes[0] == "background"
    assert "mug/handle" in probe.classes and np.isfinite(probe.weight).all()
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    dmap = DescriptorExtractor.load(default_model_path("onnx"), ExtractorConfig(num_threads=1, warmup_iters=0))(img)
    labels = probe.label_image(dmap.descriptors, (160, 120))
    assert labels.shape == (120, 160) and int(labels.max()) < probe.num_classes


def test_the_shipped_matcher_belongs_to_the_default_model_in_both_formats():
    """The learned matcher (issue #17) reads the shipped default's maps; its two files are one network."""
    from dense_descriptor_ros.matcher.runtime import LearnedMatcher
    from dense_descriptor_ros.runtime.model_files import default_matcher_path

    info = probe_model(default_model_path("onnx"))
    onnx_m, torch_m = LearnedMatcher(default_matcher_path("onnx")), LearnedMatcher(default_matcher_path("torch"))
    for m in (onnx_m, torch_m):
        m.check_model(info.model_id)
        assert m.info.descriptor_stride == info.stride and m.config.descriptor_dim == info.descriptor_dim
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    ex = DescriptorExtractor.load(default_model_path("onnx"), ExtractorConfig(num_threads=1, warmup_iters=0))
    a, b = ex(img), ex(np.ascontiguousarray(img[:, ::-1]))
    ro = onnx_m.raw(a.descriptors, b.descriptors, onnx_m.image_input(img, a), onnx_m.image_input(img, b))
    rt = torch_m.raw(a.descriptors, b.descriptors, torch_m.image_input(img, a), torch_m.image_input(img, b))
    np.testing.assert_allclose(ro[0], rt[0], atol=1e-4)
    same = ro[1] == rt[1]
    assert same.mean() > 0.99


def test_the_default_is_the_default_folder_and_the_shipped_files_are_small():
    assert default_model_path("onnx") == models_dir() / "default" / "model.onnx"
    total = sum(p.stat().st_size for p in models_dir().rglob("*") if p.is_file()) / 2**20
    assert total < MAX_SHIPPED_MB, f"models/ holds {total:.1f} MB"
