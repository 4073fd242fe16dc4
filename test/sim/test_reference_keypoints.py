"""Category-level reference keypoints from the synthetic dataset's ground truth (sim/reference_keypoints.py)
and the `keypoints from-sim` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dense_descriptor_ros.cli import main as cli_main
from dense_descriptor_ros.matching import LocatedKeypoints, ModelMismatchError, ReferenceKeypoints, locate_keypoints
from dense_descriptor_ros.models import save_model
from dense_descriptor_ros.runtime.extractor import DescriptorExtractor, ExtractorConfig
from dense_descriptor_ros.runtime.model_files import default_model_path
from dense_descriptor_ros.sim.format import read_view
from dense_descriptor_ros.sim.generator import GenerateConfig, generate
from dense_descriptor_ros.sim.reference_keypoints import (
    build_reference_keypoints,
    keypoint_transfer_errors,
    match_ground_truth,
    select_reference_views,
    sequence_keypoints,
)
from dense_descriptor_ros.sim.sequence import MUG_INSTANCE_ID, SequenceConfig, cached_sequence, keypoint_truth

from ..runtime.tiny import tiny_model

# 10 scenes x 2 views at 160x120, 3-4 objects, no distractors: about 4 s. With these settings the train
# scenes (0-6) hold mugs mug_000, mug_003 and mug_004, the test scene (9) mug_002, the val scene (8) none.
TINY = GenerateConfig(scenes=10, views=2, width=160, height=120, seed=0, objects_min=3, objects_max=4,
                      distractors_max=0, instances_per_category=10, settle_steps=240)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    yield


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim_ref") / "data"
    generate(TINY, d, workers=1, progress=False)
    return d


@pytest.fixture(scope="module")
def extractor():
    return DescriptorExtractor.from_model(tiny_model(normalize=True), ExtractorConfig(num_threads=1, warmup_iters=0))


@pytest.fixture(scope="module")
def views(root):
    return select_reference_views(root, "mug", "train", instances=8, min_visible=3)


@pytest.fixture(scope="module")
def ref(extractor, root):
    return build_reference_keypoints(extractor, root, "mug", "train", instances=8, min_visible=3)


def scene(root, name):
    return json.loads((root / "scenes" / name / "scene.json").read_text())


def mug_keypoints(root):
    return next(c["keypoints"] for c in json.loads((root / "dataset.json").read_text())["categories"]
                if c["name"] == "mug")


class TestSelect:
    def test_distinct_train_mugs_with_their_best_view(self, root, views):
        manifest = json.loads((root / "dataset.json").read_text())
        train_scenes = set(manifest["splits"]["scenes"]["train"])
        keys = [v.key for v in views]
        assert keys == sorted(set(keys)) and len(keys) >= 2
        assert set(keys) <= set(manifest["splits"]["instances"]["train"])
        for v in views:
            assert v.scene in train_scenes
            meta = scene(root, v.scene)
            obj = meta["objects"][v.instance_id - 1]
            assert (obj["category"], obj["key"], obj["instance_id"]) == ("mug", v.key, v.instance_id)
            gt = {k["name"]: tuple(k["uv"]) for k in meta["views"][v.view]["keypoints"]
                  if k["instance_id"] == v.instance_id and k["visible"]}
            assert v.keypoints == gt and len(gt) >= 3
            # no view of a train scene shows more of this instance's keypoints
            best = max(sum(k["visible"] for k in view["keypoints"] if k["instance_id"] == o["instance_id"])
                       for s in sorted(train_scenes) for m in [scene(root, s)] for o in m["objects"]
                       if o["key"] == v.key for view in m["views"])
            assert len(v.keypoints) == best
            inst = read_view(root / "scenes" / v.scene, v.view, ("instance",))["instance"]
            assert v.pixels == int((inst == v.instance_id).sum()) > 0
            assert v.image.endswith(f"{v.scene}/{v.view:03d}_rgb.png")

    def test_deterministic_and_seeded_subsets(self, root, views):
        assert select_reference_views(root, "mug") == views
        two = select_reference_views(root, "mug", instances=2, seed=3)
        assert two == select_reference_views(root, "mug", instances=2, seed=3)
        assert len(two) == 2 and all(v in views for v in two)

    def test_min_visible_filters(self, root, views):
        strict = select_reference_views(root, "mug", min_visible=6)
        assert strict == [v for v in views if len(v.keypoints) >= 6]

    @pytest.mark.parametrize("kwargs, error, match", [
        ({"category": "mug", "split": "val"}, ValueError, "no mug instance .* 'val' split"),
        ({"category": "mug", "min_visible": 9}, ValueError, ">= 9 visible"),
        ({"category": "teapot"}, ValueError, "category 'teapot' has no keypoints .* mug, bowl"),
        ({"category": "distractor"}, ValueError, "category 'distractor' has no keypoints"),
        ({"category": "mug", "split": "training"}, ValueError, "unknown split 'training'"),
        ({"category": "mug", "instances": 0}, ValueError, "must be >= 1"),
    ])
    def test_bad_input(self, root, kwargs, error, match):
        with pytest.raises(error, match=match):
            select_reference_views(root, **kwargs)

    def test_not_a_dataset(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            select_reference_views(tmp_path / "nothing", "mug")
        with pytest.raises(FileNotFoundError, match="not a synthetic dataset"):
            select_reference_views(tmp_path, "mug")


class TestBuild:
    def test_sources_are_the_ground_truth_pixels(self, extractor, root, views, ref):
        names = mug_keypoints(root)
        assert ref.category == "mug" and ref.names == [n for n in names if n in ref.names]
        assert set(ref.names) == {n for v in views for n in v.keypoints}
        assert ref.model_id == extractor.info.model_id and ref.descriptor_dim == extractor.info.descriptor_dim
        for n, src in zip(ref.names, ref.sources, strict=True):
            having = [v for v in views if n in v.keypoints]  # only instances where the name is visible
            assert [s["image"] for s in src] == [v.image for v in having]
            assert [tuple(s["uv"]) for s in src] == [v.keypoints[n] for v in having]
            assert all(s["image_size"] == [160, 120] for s in src)
        # the category-level descriptor is the re-normalised mean of the instances'
        for d, src in zip(ref.descriptors, ref.sources, strict=True):
            m = np.mean([s["descriptor"] for s in src], 0)
            np.testing.assert_allclose(d, m / np.linalg.norm(m), atol=1e-6)
        assert "synthetic dataset" in ref.notes and "train split" in ref.notes
        assert all(v.key in ref.notes for v in views)

    def test_round_trip(self, ref, tmp_path):
        ref.save(tmp_path / "mug.json")
        back = ReferenceKeypoints.load(tmp_path / "mug.json")
        assert (back.names, back.category, back.model, back.notes) == (ref.names, ref.category, ref.model, ref.notes)
        assert back.sources == ref.sources
        np.testing.assert_allclose(back.descriptors, ref.descriptors, atol=1e-7)

    def test_resolution(self, extractor, root, views, ref):
        half = build_reference_keypoints(extractor, root, "mug", views=views[:1], resolution=(80, 60))
        native = ref.sources[0][0]["map_stride"]
        assert half.sources[0][0]["map_stride"] == [2 * native[0], 2 * native[1]]
        assert half.sources[0][0]["image_size"] == [160, 120] and "80x60" in half.notes
        assert "(train split)" in half.notes
        assert extractor.config.resolution == (0, 0)  # the caller's extractor is untouched


class TestMatchGroundTruth:
    """Hand-checkable cases: located positions made by hand in a view with two mugs."""

    @pytest.fixture(scope="class")
    @classmethod
    def view(cls, root):
        meta = scene(root, "scene_000000")  # mug_000 (instance 1) and mug_004 (instance 2)
        assert [o["category"] for o in meta["objects"]][:2] == ["mug", "mug"]
        v = meta["views"][0]
        depth = read_view(root / "scenes" / "scene_000000", 0, ("depth",))["depth"]
        return v, depth

    @staticmethod
    def located(names, uv, found=None):
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        found = np.ones(len(names), bool) if found is None else np.asarray(found)
        return LocatedKeypoints(list(names), np.where(found[:, None], uv, np.nan), found,
                                np.ones(len(names), np.float32), np.zeros(len(names), np.float32))

    def test_at_the_ground_truth_errors_are_zero(self, view):
        v, depth = view
        gt = {k["name"]: k for k in v["keypoints"] if k["instance_id"] == 2 and k["visible"]}
        names = sorted(gt)
        out = match_ground_truth(self.located(names, [gt[n]["uv"] for n in names]), v, {1, 2}, depth)
        assert sorted(out) == names
        # a pixel is ~4 mm here; on silhouettes the nearest pixel centre may show what lies behind
        assert np.median([m.error_mm for m in out.values()]) < 5.0
        K = np.array(v["K"])
        T_cw = np.linalg.inv(np.array(v["T_world_camera"]))
        for n in names:
            m = out[n]
            assert m.instance_id == 2 and m.error_px == 0.0 and m.uv_gt == tuple(gt[n]["uv"])
            # by hand: the depth at the nearest pixel, back-projected through the exact pixel
            u, w = gt[n]["uv"]
            z = float(depth[round(w), round(u)])
            p = np.array([(u - K[0, 2]) / K[0, 0] * z, (w - K[1, 2]) / K[1, 1] * z, z])
            p_gt = T_cw[:3, :3] @ np.array(gt[n]["world"]) + T_cw[:3, 3]
            assert p_gt[2] == pytest.approx(gt[n]["z"], abs=1e-9)
            assert m.error_mm == pytest.approx(1000 * np.linalg.norm(p - p_gt), abs=1e-6)
        # a median window (as the node lifts) gives other, still finite, 3D errors
        wide = match_ground_truth(self.located(names, [gt[n]["uv"] for n in names]), v, {1, 2}, depth, depth_window=5)
        assert all(np.isfinite(m.error_mm) and m.error_px == 0.0 for m in wide.values())

    def test_nearest_instance_and_shift(self, view):
        v, depth = view
        kps = [k for k in v["keypoints"] if k["visible"] and k["instance_id"] in (1, 2)]
        by_name: dict[str, list] = {}
        for k in kps:
            by_name.setdefault(k["name"], []).append(k)
        # a name visible on one instance only, located 3 px right and 4 px down of it: 5 px
        n, (k,) = next((n, ks) for n, ks in by_name.items() if len(ks) == 1)
        out = match_ground_truth(self.located([n], [np.add(k["uv"], [3, 4])]), v, {1, 2}, depth)
        assert out[n].error_px == pytest.approx(5.0) and out[n].instance_id == k["instance_id"]
        # a name visible on both: the error is to the nearer one, whichever instance the reference came from
        n2 = next(n for n, ks in by_name.items() if len(ks) == 2)
        a, b = by_name[n2]
        for near in (a, b):
            out = match_ground_truth(self.located([n2], [np.add(near["uv"], 0.5)]), v, {1, 2}, depth)
            assert out[n2].error_px == pytest.approx(math.sqrt(0.5)) and out[n2].instance_id == near["instance_id"]
        # instance 1 only: instance 2's keypoints are not ground truth
        only1 = match_ground_truth(self.located([n], [k["uv"]]), v, {1}, depth)
        assert (n in only1) == (k["instance_id"] == 1)

    def test_not_found_and_absent_names(self, view):
        v, depth = view
        n = next(k["name"] for k in v["keypoints"] if k["visible"] and k["instance_id"] == 1)
        out = match_ground_truth(self.located([n, "spout"], [[10, 10], [20, 20]], found=[False, True]), v, {1, 2},
                                 depth)
        assert list(out) == [n]  # "spout" has no ground truth: no trial
        assert math.isnan(out[n].error_px) and math.isnan(out[n].error_mm)
        assert match_ground_truth(self.located([n], [[10, 10]]), v, set(), depth) == {}


class TestTransfer:
    def test_reference_view_itself(self, extractor, root, views):
        """Located in the very view it was built from, a keypoint the model finds at its own pixel has
        ~0 error; every error is at most the distance to the annotated pixel (that instance is ground
        truth too) and equals the distance to the nearest visible same-named keypoint."""
        exact = 0
        for rv in views:
            one = build_reference_keypoints(extractor, root, "mug", views=[rv])
            err = keypoint_transfer_errors(extractor, one, root, "mug", views=[(rv.scene, rv.view)])
            assert err.split == "explicit" and err.views == [(rv.scene, rv.view)] and err.names == one.names
            rgb = read_view(root / "scenes" / rv.scene, rv.view, ("rgb",))["rgb"]
            loc = locate_keypoints(one, extractor(rgb), min_confidence=0.0)
            meta = scene(root, rv.scene)
            mugs = {o["instance_id"] for o in meta["objects"] if o["category"] == "mug"}
            for i, n in enumerate(one.names):
                t = err.trials[n]
                assert len(t.error_px) == 1 and t.view.tolist() == [0]
                np.testing.assert_allclose(t.uv[0], loc.uv[i])
                gt = [k["uv"] for k in meta["views"][rv.view]["keypoints"]
                      if k["name"] == n and k["visible"] and k["instance_id"] in mugs]
                assert t.error_px[0] == pytest.approx(np.linalg.norm(np.subtract(gt, loc.uv[i]), axis=1).min())
                to_source = np.linalg.norm(loc.uv[i] - rv.keypoints[n])
                assert t.error_px[0] <= to_source + 1e-9
                if to_source < 0.5:
                    exact += 1
                    assert t.error_px[0] < 0.5
        # an untrained model finds only some of its own points exactly (flat colours look alike)
        assert exact >= 1

    def test_held_out_split(self, extractor, root, ref):
        err = keypoint_transfer_errors(extractor, ref, root, "mug", split="test")
        manifest = json.loads((root / "dataset.json").read_text())
        assert err.split == "test" and err.views
        assert {s for s, _ in err.views} <= set(manifest["splits"]["scenes"]["test"])
        assert err.names == ref.names
        total = 0
        for n in err.names:
            t = err.trials[n]
            for vi, uv_gt, iid, e in zip(t.view, t.uv_gt, t.instance_id, t.error_px, strict=True):
                s, view = err.views[vi]
                meta = scene(root, s)
                assert meta["objects"][iid - 1]["category"] == "mug"
                assert meta["objects"][iid - 1]["key"] in manifest["splits"]["instances"]["test"]
                kp = next(k for k in meta["views"][view]["keypoints"] if k["instance_id"] == iid and k["name"] == n)
                assert kp["visible"] and tuple(uv_gt) == tuple(kp["uv"]) and np.isfinite(e)
            st = err.per_keypoint[n]
            assert st.views == st.found == len(t.error_px)  # min_confidence 0: always located
            if st.views:
                assert 0 <= st.within_5px <= st.within_10px <= 1
                assert st.median_px == pytest.approx(np.median(t.error_px))
            total += st.views
        assert err.overall.views == total > 0
        table = err.table(ref)
        assert all(n in table for n in ref.names) and "\nall " in table and "med mm" in table

    def test_confidence_threshold_and_max_views(self, extractor, root, ref):
        none = keypoint_transfer_errors(extractor, ref, root, "mug", split="train", min_confidence=1.01)
        assert none.overall.views > 0 and none.overall.found == 0 and none.overall.within_10px == 0.0
        assert all(np.isnan(t.error_px).all() and np.isnan(t.uv).all() for t in none.trials.values())
        one = keypoint_transfer_errors(extractor, ref, root, "mug", split="train", max_views=1)
        assert len(one.views) == 1

    def test_bad_input(self, extractor, root, ref):
        other = DescriptorExtractor.from_model(tiny_model(normalize=True, seed=1),
                                               ExtractorConfig(num_threads=1, warmup_iters=0))
        with pytest.raises(ModelMismatchError, match="re-annotate"):
            keypoint_transfer_errors(other, ref, root, "mug")
        d8 = DescriptorExtractor.from_model(tiny_model(normalize=True, descriptor_dim=8),
                                            ExtractorConfig(num_threads=1, warmup_iters=0))
        with pytest.raises(ValueError, match="D=16 but model lite .* makes D=8"):
            keypoint_transfer_errors(d8, ref, root, "mug")
        with pytest.raises(ValueError, match="no view of the 'val' split"):
            keypoint_transfer_errors(extractor, ref, root, "mug", split="val")
        renamed = ReferenceKeypoints([f"x{i}" for i in range(len(ref.names))], ref.descriptors, "mug", ref.model)
        with pytest.raises(ValueError, match="is a keypoint of category 'mug'"):
            keypoint_transfer_errors(extractor, renamed, root, "mug")
        with pytest.raises(ValueError, match="has no view 7"):
            keypoint_transfer_errors(extractor, ref, root, "mug", views=[("scene_000000", 7)])


class TestCommand:
    @staticmethod
    def main(argv):
        return cli_main(argv)

    @pytest.fixture(scope="class")
    @classmethod
    def model_file(cls, tmp_path_factory):
        path = tmp_path_factory.mktemp("model") / "m.safetensors"
        save_model(tiny_model(normalize=True), path)
        return path

    def test_end_to_end(self, root, model_file, tmp_path, capsys):
        out = tmp_path / "mug.json"
        assert self.main(["keypoints", "from-sim", "--model", str(model_file), "--data", str(root), "--category",
                          "mug", "--out", str(out), "--threads", "1"]) == 0
        text = capsys.readouterr().out
        ref = ReferenceKeypoints.load(out)
        assert ref.category == "mug" and ref.names and "synthetic dataset" in ref.notes
        assert "transfer to the 'test' split" in text and "\nall " in text
        assert all(n in text for n in ref.names) and "mug_000" in text
        assert "only 3 eligible instances" in text

    def test_no_eval_and_resolution(self, root, model_file, tmp_path, capsys):
        out = tmp_path / "mug.json"
        assert self.main(["keypoints", "from-sim", "--model", str(model_file), "--data", str(root), "--category",
                          "mug", "--out", str(out), "--instances", "2", "--resolution", "80x60", "--no-eval"]) == 0
        assert "transfer" not in capsys.readouterr().out
        ref = ReferenceKeypoints.load(out)
        assert max(len(s) for s in ref.sources) == 2 and "80x60" in ref.notes

    @pytest.mark.parametrize("change, message", [
        ({"--data": "MISSING"}, "dataset folder .* does not exist"),
        ({"--data": "EMPTY"}, "not a synthetic dataset"),
        ({"--category": "teapot"}, "category 'teapot' has no keypoints"),
        ({"--split": "val"}, "no mug instance"),
        ({"--eval-split": "val"}, "no view of the 'val' split"),
        ({"--model": "MISSING"}, "cannot load model"),
        ({"--out": "MISSING/mug.json"}, "folder .* does not exist"),
    ])
    def test_errors(self, root, model_file, tmp_path, change, message):
        args = {"--model": str(model_file), "--data": str(root), "--category": "mug", "--out": str(tmp_path / "k.json")}
        for k, v in change.items():
            args[k] = v.replace("MISSING", str(tmp_path / "missing")).replace("EMPTY", str(tmp_path))
        with pytest.raises(SystemExit, match=message):
            self.main(["keypoints", "from-sim", *[x for kv in args.items() for x in kv]])


@pytest.fixture(scope="module")
def mug_sequence(tmp_path_factory):
    return cached_sequence(SequenceConfig(size=(160, 120), frames=2, seed=1), tmp_path_factory.mktemp("seq"))


@pytest.fixture(scope="module")
def shipped():
    """The shipped model: a random one's descriptors are not distinctive enough to find a point again."""
    return DescriptorExtractor.load(default_model_path("onnx"), ExtractorConfig(num_threads=1, warmup_iters=0))


class TestSequenceKeypoints:
    """Instance-level keypoints of a rendered sequence's mug, annotated in one frame (`--keypoints first-frame`)."""

    def test_the_visible_keypoints_of_the_mug_located_where_they_were_annotated(self, shipped, mug_sequence):
        seq = mug_sequence
        ref = sequence_keypoints(shipped, seq, 0)
        truth = {t.name: t.uv for t in keypoint_truth(seq, 0, instance_id=MUG_INSTANCE_ID) if t.visible}
        assert ref.names == list(truth) and len(truth) >= 2 and ref.category == "mug"
        assert ref.model_id == shipped.info.model_id and "frame 0" in ref.notes
        assert all(s[0]["uv"] == pytest.approx(list(truth[n])) for n, s in zip(ref.names, ref.sources, strict=True))
        # in the frame it was annotated in, each descriptor's best match is its own pixel (to a map cell)
        loc = locate_keypoints(ref, shipped(seq.rgb[0]), min_confidence=0.0)
        err = np.linalg.norm(loc.uv - np.array([truth[n] for n in ref.names]), axis=1)
        assert np.median(err) <= shipped.info.stride, err

    def test_unusable_frames_and_objects_are_clear_errors(self, extractor, mug_sequence):
        with pytest.raises(ValueError, match="at least 99 are needed"):
            sequence_keypoints(extractor, mug_sequence, 0, min_visible=99)
        with pytest.raises(ValueError, match="no object 42"):
            sequence_keypoints(extractor, mug_sequence, 0, instance_id=42)
        with pytest.raises(IndexError, match="out of range"):
            sequence_keypoints(extractor, mug_sequence, 5)


def test_confidence_rows_by_hand():
    """Each threshold keeps the trials at or above it: recall over every trial, precision over the kept ones."""
    from dense_descriptor_ros.sim.reference_keypoints import KeypointTrials, TransferErrors

    def trials(conf, err):
        n = len(conf)
        return KeypointTrials(np.arange(n), np.zeros((n, 2)), np.zeros((n, 2)), np.ones(n, int), np.array(conf),
                              np.array(err, float), np.full(n, np.nan))

    te = TransferErrors("mug", "test", [], ["a", "b"], {"a": trials([0.0, 0.1, 0.3], [30.0, 8.0, 2.0]),
                                                        "b": trials([0.2, 0.05], [4.0, np.nan])})
    rows = {r["threshold"]: r for r in te.confidence_rows((0.0, 0.1, 0.25, 0.5))}
    assert rows[0.0]["located"] == 4 and rows[0.0]["recall"] == pytest.approx(4 / 5)  # the NaN trial was a miss
    assert rows[0.0]["precision@10"] == pytest.approx(3 / 4) and rows[0.0]["precision@5"] == pytest.approx(2 / 4)
    assert rows[0.1]["located"] == 3 and rows[0.1]["precision@10"] == 1.0 and rows[0.1]["median_px"] == 4.0
    assert rows[0.25]["located"] == 1 and rows[0.25]["precision@5"] == 1.0
    assert rows[0.5]["located"] == 0 and math.isnan(rows[0.5]["precision@10"])
    assert "min conf" in te.confidence_table((0.0, 0.5))
