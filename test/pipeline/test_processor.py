"""The per-frame pipeline with a real (untrained) network: shapes, flags, 3D lifting and correspondences.

A convolutional network is translation-equivariant: an image and its copy shifted by a multiple of the
network stride give shifted descriptor maps, so a keypoint annotated in one is found shifted in the
other, trained or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dense_descriptor_ros.matcher.config import MatcherConfig
from dense_descriptor_ros.matcher.io import MatcherInfo, save_matcher
from dense_descriptor_ros.matcher.model import MatcherNet
from dense_descriptor_ros.matcher.runtime import LearnedMatcher, MatcherMismatchError
from dense_descriptor_ros.matching.keypoints import (
    ReferenceKeypoints,
    annotate_keypoints,
    locate_keypoints,
    model_identity,
)
from dense_descriptor_ros.models import build_model
from dense_descriptor_ros.models.config import ModelConfig
from dense_descriptor_ros.pipeline import FrameError, FrameProcessor, PipelineConfig, Wanted, make_frame, resample_map
from dense_descriptor_ros.runtime import DescriptorExtractor, DescriptorMap, ExtractorConfig
from dense_descriptor_ros.runtime.part_probe import PartProbe

from ..conftest import textured_image

H, W = 96, 128
K = np.array([[100.0, 0, 64], [0, 100.0, 48], [0, 0, 1]])
SHIFT = 8  # two cells of the lite network's stride 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    net = build_model(ModelConfig(name="lite", normalize=True, decoder_channels=16, width_mult=0.5)).eval()
    return DescriptorExtractor.from_model(net, ExtractorConfig(warmup_iters=0))


@pytest.fixture(scope="module")
def images():
    big = textured_image(np.random.default_rng(3), H, W + SHIFT)
    return big[:, SHIFT:], big[:, :W]  # frame B shows the scene moved right by SHIFT pixels


def frame(rgb, depth=None, k=K, stamp=0):
    return make_frame(rgb, depth, k, stamp, "cam_optical")


def test_outputs_and_shapes(extractor, images):
    p = FrameProcessor(extractor, config=PipelineConfig(map_stride=4, map_dtype="float16"))
    r = p.process(frame(images[0], np.full((H, W), 0.5, np.float32), stamp=7))
    assert r.stamp_ns == 7 and r.frame_id == "cam_optical" and r.image_size == (W, H)
    assert r.descriptors.shape == (H // 4, W // 4, 16) and r.descriptors.dtype == np.float16
    assert r.map_stride == 4 and r.model_id == extractor.info.model_id
    assert r.pca_rgb.shape == (H, W, 3) and r.pca_rgb.dtype == np.uint8
    assert r.keypoints is None  # no reference keypoints given
    assert r.correspondences is None  # the first frame has nothing to match against
    assert {"inference", "extract", "map", "pca", "total"} <= set(r.timings_ms)


def test_unwanted_outputs_are_not_computed(extractor, images):
    p = FrameProcessor(extractor)
    r = p.process(frame(images[0]), Wanted(descriptors=False, pca=False, keypoints=False, correspondences=False))
    assert r.descriptors is None and r.pca_rgb is None and "map" not in r.timings_ms and "pca" not in r.timings_ms
    r = p.process(frame(images[1]), Wanted(descriptors=False, pca=False, keypoints=False, correspondences=True))
    assert r.correspondences is None  # frame A was not kept while nobody wanted correspondences


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_resample_map_geometry(stride):
    """A map whose descriptor is its own pixel position resamples to the cell centres of the msg."""
    h, w = 24, 32
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    native = DescriptorMap(np.stack([xx, yy], -1), (4.0, 4.0), (w * 4, h * 4))  # cell centres at 4c + 1.5
    out = resample_map(native, stride)
    hh, ww = -(-h * 4 // stride), -(-w * 4 // stride)
    assert out.shape == (hh, ww, 2)
    cx = (np.arange(ww) + 0.5) * stride - 0.5
    expect = np.clip((cx + 0.5) / 4 - 0.5, 0, w - 1)  # map coordinate, clamped at the border
    np.testing.assert_allclose(out[hh // 2, :, 0], expect, atol=1e-4)


def test_correspondences_of_a_repeated_frame_are_the_identity(extractor, images):
    """Geometry and bookkeeping with any network: frame B = frame A matches every query to itself (the
    accuracy on real camera motion is tested with the trained model in test/node)."""
    # No ratio test: an untrained network is not distinctive enough for one; the mutual check remains.
    p = FrameProcessor(extractor, config=PipelineConfig(correspondence_mode="previous", correspondence_max=50,
                                                        correspondence_max_ratio=1.0))
    depth = np.full((H, W), 0.5, np.float32)
    assert p.process(frame(images[0], depth, stamp=1)).correspondences is None
    c = p.process(frame(images[0], depth, stamp=2)).correspondences
    assert c is not None and c.stamp_a_ns == 1 and len(c.uv_a) >= 1
    np.testing.assert_allclose(c.uv_b, c.uv_a, atol=1.0)  # sub-pixel refinement of an untrained, flat map
    assert ((c.score >= 0) & (c.score <= 1)).all()
    # 3D: constant depth 0.5 m -> z = 0.5 and x, y from the pinhole model
    assert c.valid.all()
    np.testing.assert_allclose(c.xyz_b[:, 2], 0.5, atol=1e-6)
    np.testing.assert_allclose(c.xyz_b[:, 0], (c.uv_b[:, 0] - 64) / 100 * 0.5, atol=1e-6)
    np.testing.assert_allclose(c.xyz_a[:, 0], (c.uv_a[:, 0] - 64) / 100 * 0.5, atol=1e-6)
    # previous mode: the next frame is matched against frame 2
    assert p.process(frame(images[1], depth, stamp=3)).correspondences.stamp_a_ns == 2


@pytest.fixture(scope="module")
def matcher(extractor, tmp_path_factory):
    """An untrained learned matcher for the test network, reading the images too: at init it is descriptor matching
    under a dual-softmax (its residual terms start at zero), so a shift of whole coarse cells is found."""
    torch.manual_seed(0)
    net = MatcherNet(MatcherConfig(descriptor_dim=16, d_model=16, layers=1, heads=2, fine_dim=8, image_channels=8))
    with torch.no_grad():
        net.log_scale.fill_(3.0)  # a trained matcher's sharpness (scale 20)
    path = tmp_path_factory.mktemp("matcher") / "m.safetensors"
    save_matcher(net, MatcherInfo(extractor.info.model_id, extractor.info.stride), path)
    return LearnedMatcher(path)


def test_correspondences_from_the_learned_matcher(extractor, images, matcher):
    p = FrameProcessor(extractor, config=PipelineConfig(correspondence_method="matcher",
                                                        correspondence_min_confidence=0.0, correspondence_max=40),
                       matcher=matcher)
    depth = np.full((H, W), 0.5, np.float32)
    assert p.process(frame(images[0], depth, stamp=1)).correspondences is None
    c = p.process(frame(images[1], depth, stamp=2)).correspondences
    assert c is not None and c.stamp_a_ns == 1 and 10 <= len(c.uv_a) <= 40
    # one query per coarse cell (8 px): centres at 8c + 3.5; frame B shows the scene SHIFT pixels to the right
    np.testing.assert_allclose((c.uv_a - 3.5) / 8, np.round((c.uv_a - 3.5) / 8))
    # untrained, its coarse level is descriptor matching: the right coarse cell (one to the right) ...
    cell_a, cell_b = np.floor((c.uv_a + 0.5) / 8), np.floor((c.uv_b + 0.5) / 8)
    right = np.all(cell_b == cell_a + [1, 0], axis=1)
    assert right.mean() > 0.8
    # ... while its fine level (not trained) only keeps the position inside the window searched around the coarse
    # match: fine cells 2c - 2 ... 2c + 3, i.e. within 10 px of the coarse cell's centre
    assert np.all(np.abs(c.uv_b - (c.uv_a + [SHIFT, 0]))[right] <= 10.0 + 1e-6)
    assert ((c.score >= 0) & (c.score <= 1)).all() and np.all(np.diff(c.score) <= 0)  # confidence, best first
    assert c.valid.all()
    # switching the method restarts from the next frame (frame A of the other method is not matched)
    p.update_config(PipelineConfig(correspondence_method="descriptor", correspondence_max_ratio=1.0))
    assert p.process(frame(images[0], depth, stamp=3)).correspondences is None
    assert p.process(frame(images[0], depth, stamp=4)).correspondences is not None


def test_the_matcher_method_needs_a_matcher_of_this_model(extractor, matcher):
    with pytest.raises(ValueError, match="matcher_file"):
        FrameProcessor(extractor, config=PipelineConfig(correspondence_method="matcher"))
    p = FrameProcessor(extractor)
    with pytest.raises(ValueError, match="matcher_file"):
        p.update_config(PipelineConfig(correspondence_method="matcher"))
    assert p.config.correspondence_method == "descriptor"  # unchanged
    torch.manual_seed(1)
    other = DescriptorExtractor.from_model(
        build_model(ModelConfig(name="lite", normalize=True, decoder_channels=16, width_mult=0.5)).eval(),
        ExtractorConfig(warmup_iters=0))
    with pytest.raises(MatcherMismatchError, match=other.info.model_id):
        FrameProcessor(other, matcher=matcher)
    # the same network upsampling its maps to every pixel: not the maps the matcher reads
    upsampled = DescriptorExtractor.from_model(extractor.backend.model, ExtractorConfig(warmup_iters=0,
                                                                                        output_stride=1))
    assert upsampled.info.model_id == extractor.info.model_id
    with pytest.raises(ValueError, match="stride"):
        FrameProcessor(upsampled, matcher=matcher)


def test_reference_mode_keeps_frame_a(extractor, images):
    p = FrameProcessor(extractor, config=PipelineConfig(correspondence_mode="reference"))
    p.process(frame(images[0], stamp=1))
    assert p.process(frame(images[1], stamp=2)).correspondences.stamp_a_ns == 1
    assert p.process(frame(images[1], stamp=3)).correspondences.stamp_a_ns == 1
    p.reset_reference()
    assert p.process(frame(images[1], stamp=4)).correspondences is None


@pytest.mark.parametrize("mode", ["previous", "reference"])
def test_time_going_backwards_restarts_correspondences(extractor, images, mode):
    """A bag played in a loop: frame A is never later than the frame matched against it."""
    p = FrameProcessor(extractor, config=PipelineConfig(correspondence_mode=mode))
    for stamp in (100, 200):
        p.process(frame(images[0], stamp=stamp))
    assert p.process(frame(images[1], stamp=10)).correspondences is None  # time jumped back: start again
    assert p.process(frame(images[1], stamp=20)).correspondences.stamp_a_ns == 10


def test_keypoints_located_and_lifted(extractor, images):
    """The pipeline's keypoints are locate_keypoints' pixels lifted through the depth (accuracy on real
    views is tested with the trained model in test/node)."""
    dm = extractor.extract(images[0])
    ref = annotate_keypoints(dm, {"spot": (60.0, 40.0), "left": (20.0, 30.0)}, model_identity(extractor.info),
                             "thing", "image_a.png")
    depth = np.full((H, W), 0.8, np.float32)
    depth[:, : W // 2] = np.nan  # no depth on the left half
    p = FrameProcessor(extractor, ref, PipelineConfig(keypoint_min_confidence=0.0, keypoint_max_distance=2.0))
    k = p.process(frame(images[1], depth)).keypoints
    expect = locate_keypoints(ref, extractor.extract(images[1]), min_confidence=0.0, max_distance=2.0)
    assert k.names == ["spot", "left"] and k.found.all()
    np.testing.assert_allclose(k.uv, expect.uv)
    has_depth = k.uv[:, 0] >= W // 2 + 2
    np.testing.assert_array_equal(k.xyz_valid[has_depth], True)
    i = int(np.argmax(has_depth)) if has_depth.any() else None
    if i is not None:
        np.testing.assert_allclose(k.xyz[i], [(k.uv[i, 0] - 64) / 100 * 0.8, (k.uv[i, 1] - 48) / 100 * 0.8, 0.8],
                                   atol=1e-6)
    # A confidence threshold of 1 finds nothing: not found, no pixel, no 3D point.
    p.update_config(PipelineConfig(keypoint_min_confidence=1.0))
    k1 = p.process(frame(images[1], depth)).keypoints
    assert not k1.found.any() and not k1.xyz_valid.any() and np.isnan(k1.uv).all()
    # Without intrinsics the keypoints are still located in 2D, but have no 3D point.
    p.update_config(PipelineConfig(keypoint_min_confidence=0.0, keypoint_max_distance=2.0))
    k2 = p.process(frame(images[1], depth, k=None))
    assert k2.keypoints.found.all() and not k2.keypoints.xyz_valid.any() and np.isnan(k2.keypoints.xyz).all()
    assert any("camera info" in n for n in k2.notes)


def _probe(extractor, model_id=None, dim=16) -> PartProbe:
    """Class 1 where descriptor channel 0 is positive, else background."""
    w = np.zeros((2, dim), np.float32)
    w[1, 0] = 1.0
    model = {"id": extractor.info.model_id if model_id is None else model_id}
    return PartProbe(w, np.zeros(2, np.float32), ["background", "mug/body"], model)


def test_labels_from_the_part_probe(extractor, images):
    probe = _probe(extractor)
    p = FrameProcessor(extractor, probe=probe)
    r = p.process(frame(images[0]))
    dmap = extractor.extract(images[0])
    assert r.labels.shape == (H, W) and r.labels.dtype == np.uint8 and r.label_classes == probe.classes
    # class 1 exactly where channel 0 of the map is positive, each cell nearest-upsampled over its pixels
    cells = (dmap.descriptors[..., 0] > 0).astype(np.uint8)
    np.testing.assert_array_equal(r.labels, np.kron(cells, np.ones((4, 4), np.uint8))[:H, :W])
    assert 0 < r.labels.mean() < 1 and "labels" in r.timings_ms
    assert p.process(frame(images[0]), Wanted(labels=False)).labels is None
    assert FrameProcessor(extractor).process(frame(images[0])).labels is None  # no probe: no labels


def test_a_probe_of_another_model_or_dimension_is_refused(extractor):
    with pytest.raises(ValueError, match="fitted on model"):
        FrameProcessor(extractor, probe=_probe(extractor, "0123456789abcdef"))
    with pytest.raises(ValueError, match="D=8"):
        FrameProcessor(extractor, probe=_probe(extractor, dim=8))


def test_keypoints_of_another_model_are_refused(extractor):
    ref = ReferenceKeypoints(["a"], np.ones((1, 16), np.float32) / 4, "mug",
                             {"id": "0123456789abcdef", "name": "lite", "version": "x", "normalize": True}, [[]], "")
    with pytest.raises(ValueError, match="model"):
        FrameProcessor(extractor, ref)


class TestMakeFrame:
    def test_depth_millimetres_and_invalid(self):
        d = np.array([[0, 500], [65535, 1200]], np.uint16)
        f = make_frame(np.zeros((2, 2, 3), np.uint8), d, None, 0, "c", depth_min=0.1, depth_max=10.0)
        np.testing.assert_allclose(f.depth, [[np.nan, 0.5], [np.nan, 1.2]])

    def test_size_mismatch_scale(self):
        d = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
        f = make_frame(np.zeros((6, 8, 3), np.uint8), d, None, 0, "c")
        assert f.depth.shape == (6, 8) and f.depth[5, 7] == 12 and f.depth[0, 0] == 1

    def test_size_mismatch_reject_and_aspect(self):
        with pytest.raises(FrameError, match="reject"):
            make_frame(np.zeros((6, 8, 3), np.uint8), np.ones((3, 4), np.float32), None, 0, "c",
                       size_mismatch="reject")
        with pytest.raises(FrameError, match="aspect"):
            make_frame(np.zeros((6, 8, 3), np.uint8), np.ones((6, 6), np.float32), None, 0, "c")

    def test_bad_inputs(self):
        with pytest.raises(FrameError, match="colour"):
            make_frame(np.zeros((6, 8), np.uint8), None, None, 0, "c")
        with pytest.raises(FrameError, match="intrinsics"):
            make_frame(np.zeros((6, 8, 3), np.uint8), None, np.zeros((3, 3)), 0, "c")


def test_config_validation():
    with pytest.raises(ValueError, match="map_stride"):
        PipelineConfig(map_stride=0)
    with pytest.raises(ValueError, match="depth_window"):
        PipelineConfig(depth_window=4)
    with pytest.raises(ValueError, match="correspondence_max_ratio"):
        PipelineConfig(correspondence_max_ratio=0.0)
