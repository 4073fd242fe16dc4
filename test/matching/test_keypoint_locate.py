"""Reference keypoint files and locating named keypoints (subpixel, confidence, not-found, masks)."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest

from dense_descriptor_ros.matching import (
    ModelMismatchError,
    ReferenceKeypoints,
    annotate_keypoints,
    average_keypoints,
    locate_keypoints,
    sample_map,
)
from dense_descriptor_ros.matching.cli import register

from ..conftest import textured_image
from ..runtime.tiny import tiny_model
from .synthetic import as_map, shifted, smooth_field

MODEL = {"id": "m", "name": "lite", "version": "step-1", "descriptor_dim": 16, "normalize": False}
POINTS = {"handle_top": (30.0, 40.0), "rim_left": (75.5, 20.25), "base": (50.3, 70.8), "spout": (100.0, 61.0)}
SHIFT = np.array([2.6, -1.7])


@pytest.fixture(scope="module")
def field():
    return smooth_field(90, 120, sigma=3.0, seed=4)


@pytest.fixture(scope="module")
def ref(field):
    return annotate_keypoints(as_map(field), POINTS, MODEL, "mug", image="ref.png")


class TestLocate:
    @pytest.mark.parametrize("method", ["ratio", "softmax"])
    def test_known_shift_subpixel(self, field, ref, method):
        loc = locate_keypoints(ref, as_map(shifted(field, *SHIFT)), method=method, min_confidence=0.5)
        assert loc.found.all() and loc.names == list(POINTS)
        err = np.linalg.norm(loc.uv - (np.array(list(POINTS.values())) + SHIFT), axis=1)
        assert err.max() < 0.15 and np.median(err) < 0.1
        assert (loc.confidence > 0.5).all() and (loc.distance < 0.1).all()

    def test_integer_cells_without_subpixel(self, field, ref):
        loc = locate_keypoints(ref, as_map(shifted(field, *SHIFT)), subpixel=False)
        np.testing.assert_array_equal(loc.uv % 1, 0)
        assert np.abs(loc.uv - (np.array(list(POINTS.values())) + SHIFT)).max() < 1

    def test_stride_and_anisotropic_scale(self, field, ref):
        # The same map seen as the native-stride output of an image resized by (2, 3): positions scale.
        dmap = as_map(shifted(field, *SHIFT))
        dmap.stride = (2.0, 3.0)
        loc = locate_keypoints(ref, dmap, radius=30.0)
        expected = (np.array(list(POINTS.values())) + SHIFT + 0.5) * [2.0, 3.0] - 0.5
        assert np.abs(loc.uv - expected).max() < 0.5

    def test_repeated_structure_is_not_found_never_guessed(self, field):
        """Two identical copies: the best match is ambiguous, so every keypoint is reported missing."""
        half = field[:, :60]
        ref = annotate_keypoints(as_map(half), {"a": (20.0, 30.0), "b": (40.0, 60.0)}, MODEL, "mug")
        twice = as_map(np.concatenate([half, half], axis=1))
        for method, thr in (("ratio", 0.2), ("softmax", 0.6)):
            loc = locate_keypoints(ref, twice, method=method, min_confidence=thr)
            assert not loc.found.any()
            assert np.isnan(loc.uv).all()
            assert loc.as_dict() == {"a": None, "b": None}
        # A mask that keeps only the right copy makes them unambiguous again.
        mask = np.zeros((90, 120), bool)
        mask[:, 60:] = True
        loc = locate_keypoints(ref, twice, mask=mask)
        assert loc.found.all()
        np.testing.assert_allclose(loc.uv, [[80.0, 30.0], [100.0, 60.0]], atol=0.05)

    def test_absent_object_is_not_found(self, field, ref):
        # A different scene: best matches exist but are far in descriptor space.
        other = as_map(smooth_field(90, 120, sigma=3.0, seed=11))
        assert locate_keypoints(ref, other, max_distance=0.5).found.sum() == 0

    def test_empty_mask_finds_nothing(self, field, ref):
        loc = locate_keypoints(ref, as_map(field), mask=np.zeros((90, 120), bool))
        assert not loc.found.any() and np.isnan(loc.distance).all() and (loc.confidence == 0).all()

    def test_prototypes_from_sources(self, field):
        """Two instances whose descriptors of a point differ: their mean matches neither, each instance's own
        prototype ("sources") finds its point exactly, in a frame that shows the second instance."""
        a = annotate_keypoints(as_map(field), {"p": (30.0, 40.0)}, MODEL, "mug", image="a.png")
        b = annotate_keypoints(as_map(field), {"p": (90.0, 20.0)}, MODEL, "mug", image="b.png")
        both = average_keypoints([a, b])
        assert len(both.sources[0]) == 2
        protos, owner = both.prototypes()
        assert protos.shape == (2, 16) and owner.tolist() == [0, 0]
        frame = np.array(field)
        frame[:, :60] = smooth_field(90, 60, sigma=3.0, seed=9)  # instance a's point is gone, b's is there
        loc = locate_keypoints(both, as_map(frame), prototypes="sources", min_confidence=0.3)
        assert loc.found.all()
        np.testing.assert_allclose(loc.uv[0], [90.0, 20.0], atol=0.05)
        assert loc.distance[0] < 1e-3  # refined against the prototype that matched, not the mean
        mean = locate_keypoints(both, as_map(frame), min_confidence=0.0)
        assert mean.distance[0] > 0.5
        with pytest.raises(ValueError, match="prototypes"):
            locate_keypoints(both, as_map(frame), prototypes="median")

    def test_model_mismatch(self, field, ref):
        other = as_map(field, model_id="other")
        with pytest.raises(ModelMismatchError, match="re-annotate"):
            locate_keypoints(ref, other)
        with pytest.warns(RuntimeWarning, match="re-annotate"):
            locate_keypoints(ref, other, on_model_mismatch="warn")

    def test_dimension_mismatch(self, ref):
        with pytest.raises(ValueError, match="D=16"):
            locate_keypoints(ref, as_map(np.zeros((10, 10, 8), np.float32)))


class TestFile:
    def test_round_trip(self, ref, tmp_path):
        ref.save(tmp_path / "kp.json")
        back = ReferenceKeypoints.load(tmp_path / "kp.json")
        assert back.names == ref.names and back.category == "mug" and back.model == ref.model
        np.testing.assert_array_equal(back.descriptors, ref.descriptors)  # float32 survives JSON exactly
        assert back.sources[1][0]["uv"] == [75.5, 20.25] and back.sources[1][0]["image"] == "ref.png"
        data = json.loads((tmp_path / "kp.json").read_text())
        assert data["format"] == "dense_descriptor_ros.keypoints" and data["format_version"] == 1

    def test_rejects_other_versions_and_files(self, ref, tmp_path):
        data = ref.to_json()
        data["format_version"] = 99
        (tmp_path / "v.json").write_text(json.dumps(data))
        with pytest.raises(ValueError, match="format_version 99"):
            ReferenceKeypoints.load(tmp_path / "v.json")
        (tmp_path / "x.json").write_text("{}")
        with pytest.raises(ValueError, match="not a dense_descriptor_ros.keypoints file"):
            ReferenceKeypoints.load(tmp_path / "x.json")

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
    def test_rejects_non_finite_descriptors(self, ref, tmp_path, bad):
        """JSON allows NaN and Infinity: a file with one would pass configure and then drop every frame."""
        data = ref.to_json()
        data["keypoints"][1]["descriptor"][3] = bad
        (tmp_path / "nan.json").write_text(json.dumps(data))
        name = data["keypoints"][1]["name"]
        with pytest.raises(ValueError, match=rf"descriptors of \['{name}'\] are not finite"):
            ReferenceKeypoints.load(tmp_path / "nan.json")

    def test_annotate_outside_the_image(self, field):
        with pytest.raises(ValueError, match="outside"):
            annotate_keypoints(as_map(field), {"far": (500.0, 2.0)}, MODEL, "mug")

    def test_average_over_instances(self, field):
        delta = np.linspace(-1, 1, 16, dtype=np.float32)
        a = annotate_keypoints(as_map(field + delta), {"p": (20.0, 20.0), "q": (5.0, 5.0)}, MODEL, "mug", "a.png")
        b = annotate_keypoints(as_map(field - delta), {"p": (20.0, 20.0)}, MODEL, "mug", "b.png")
        avg = average_keypoints([a, b], category="mugs")
        assert avg.names == ["p", "q"] and avg.category == "mugs"
        np.testing.assert_allclose(avg.descriptors[0], field[20, 20], atol=1e-6)  # the deltas cancel
        np.testing.assert_allclose(avg.descriptors[1], field[5, 5] + delta, atol=1e-6)  # one instance only
        assert [s["image"] for s in avg.sources[0]] == ["a.png", "b.png"]

    def test_average_normalised_model(self):
        m = dict(MODEL, normalize=True, descriptor_dim=2)
        x = np.zeros((2, 2, 2), np.float32)
        x[..., 0] = 1
        y = np.zeros((2, 2, 2), np.float32)
        y[..., 1] = 1
        avg = average_keypoints([annotate_keypoints(as_map(x), {"p": (0.0, 0.0)}, m, "c"),
                                 annotate_keypoints(as_map(y), {"p": (0.0, 0.0)}, m, "c")])
        np.testing.assert_allclose(avg.descriptors, [[np.sqrt(0.5), np.sqrt(0.5)]], atol=1e-6)

    def test_average_refuses_mixed_models(self, field, ref):
        other = annotate_keypoints(as_map(field, model_id="zz"), {"p": (1.0, 1.0)}, MODEL, "mug")
        with pytest.raises(ModelMismatchError):
            average_keypoints([ref, other])


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dense-descriptor")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_cli_annotate_average_show(tmp_path, capsys):
    from dense_descriptor_ros.models import save_model
    from dense_descriptor_ros.runtime import DescriptorExtractor, ExtractorConfig

    save_model(tiny_model("lite", normalize=True), tmp_path / "m.safetensors")
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"mug{i}.png"), textured_image(rng, 64, 80)[:, :, ::-1])
        assert _cli("keypoints", "annotate", "--model", str(tmp_path / "m.safetensors"), "--image",
                    str(tmp_path / f"mug{i}.png"), "--point", "handle_top:10,12.5", "--point", "rim:40,30",
                    "--category", "mug", "--out", str(tmp_path / f"kp{i}.json")) == 0
    assert _cli("keypoints", "average", str(tmp_path / "kp0.json"), str(tmp_path / "kp1.json"),
                "--out", str(tmp_path / "mug.json")) == 0
    assert _cli("keypoints", "show", str(tmp_path / "mug.json")) == 0
    out = capsys.readouterr().out
    assert "instances per keypoint: handle_top (2), rim (2)" in out and "mug0.png @ (10.0, 12.5)" in out
    # The file holds the extractor's (normalised) descriptors at the clicked pixels.
    ref = ReferenceKeypoints.load(tmp_path / "kp0.json")
    ext = DescriptorExtractor.load(tmp_path / "m.safetensors", ExtractorConfig(warmup_iters=0))
    dmap = ext(cv2.imread(str(tmp_path / "mug0.png"))[:, :, ::-1].copy())
    d = sample_map(dmap.descriptors, dmap.to_map(np.array([[10.0, 12.5], [40.0, 30.0]])))
    np.testing.assert_allclose(ref.descriptors, d / np.linalg.norm(d, axis=1, keepdims=True), atol=1e-6)
    assert ref.model_id == ext.info.model_id and ref.model["version"] == "unknown"
    avg = ReferenceKeypoints.load(tmp_path / "mug.json")
    np.testing.assert_allclose(np.linalg.norm(avg.descriptors, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--point", "nocoords"], "NAME:U,V"),
    (["--point", "a:1,2", "--point", "a:3,4"], "unique"),
])
def test_cli_annotate_errors(tmp_path, argv, message, capsys):
    base = ["keypoints", "annotate", "--model", "m.onnx", "--image", str(tmp_path / "none.png"),
            "--category", "c", "--out", str(tmp_path / "o.json")]
    with pytest.raises(SystemExit) as e:
        _cli(*base, *argv)
    assert message in str(e.value) + capsys.readouterr().err


def test_cli_missing_image(tmp_path):
    with pytest.raises(SystemExit, match="cannot read image"):
        _cli("keypoints", "annotate", "--model", "m.onnx", "--image", str(tmp_path / "none.png"),
             "--point", "a:1,2", "--category", "c", "--out", str(tmp_path / "o.json"))
