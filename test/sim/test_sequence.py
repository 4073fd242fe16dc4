"""Rendered camera sequences (sim/sequence.py): shapes, determinism, the on-disk cache, the mug in view,
and ground truth (keypoints, camera poses) checked against the rendered depth."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pybullet as pb
import pytest

from dense_descriptor_ros.config import ConfigError, from_dict
from dense_descriptor_ros.sim.camera import intrinsics, project
from dense_descriptor_ros.sim.categories import CATEGORIES
from dense_descriptor_ros.sim.sequence import (
    MIN_MUG_FRACTION,
    MUG_INSTANCE_ID,
    SEQUENCE_FORMAT_VERSION,
    SequenceConfig,
    cached_sequence,
    ground_truth_dict,
    keypoint_truth,
    load_sequence,
    pose_to_position_quaternion,
    relative_pose,
    render_sequence,
    save_sequence,
    sequence_cache_path,
)

#: 4 frames at 160x120: about 0.6 s to render
TINY = SequenceConfig(size=(160, 120), frames=4, seed=1)


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    return render_sequence(TINY, tmp_path_factory.mktemp("seq_assets"))


def assert_same(a, b) -> None:
    for name in ("K", "rgb", "depth", "instance", "T_world_camera"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name
    assert a.config == b.config
    assert a.keypoints == b.keypoints
    assert a.scene == b.scene
    assert len(a.objects) == len(b.objects)
    for oa, ob in zip(a.objects, b.objects, strict=True):
        assert {k: v for k, v in oa.items() if k not in ("T_world_object", "keypoints")} == \
            {k: v for k, v in ob.items() if k not in ("T_world_object", "keypoints")}
        assert np.array_equal(oa["T_world_object"], ob["T_world_object"])
        assert oa["keypoints"].keys() == ob["keypoints"].keys()
        assert all(np.array_equal(oa["keypoints"][k], ob["keypoints"][k]) for k in oa["keypoints"])


def backproject(seq, frame: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(P, 3) camera-frame points of integer pixels (x, y) of a frame."""
    z = seq.depth[frame, y, x].astype(np.float64)
    K = seq.K
    return np.stack([(x - K[0, 2]) / K[0, 0] * z, (y - K[1, 2]) / K[1, 1] * z, z], -1)


class TestShapes:
    def test_arrays(self, seq):
        n, (w, h) = TINY.frames, TINY.size
        assert (seq.frames, seq.width, seq.height) == (n, w, h)
        assert seq.rgb.shape == (n, h, w, 3) and seq.rgb.dtype == np.uint8
        assert seq.depth.shape == (n, h, w) and seq.depth.dtype == np.float32
        assert seq.instance.shape == (n, h, w) and seq.instance.dtype == np.uint8
        assert seq.T_world_camera.shape == (n, 4, 4)
        np.testing.assert_allclose(seq.K, intrinsics(w, h, TINY.fov_y_deg))
        assert len(seq.keypoints) == n

    def test_images_are_not_blank(self, seq):
        assert (seq.rgb.reshape(seq.frames, -1, 3).std(1) > 5).all()
        assert ((seq.depth > 0.2) & (seq.depth < 5.0)).mean() > 0.9

    def test_objects(self, seq):
        assert 2 <= len(seq.objects) <= 4  # the mug and 1-3 others
        mug = seq.objects[0]
        assert (mug["category"], mug["instance_id"]) == ("mug", MUG_INSTANCE_ID)
        assert [o["instance_id"] for o in seq.objects] == list(range(1, len(seq.objects) + 1))
        assert set(mug["keypoints"]) == set(CATEGORIES["mug"].keypoints)
        assert mug["T_world_object"][2, 2] > 0.99  # upright
        assert sum(o["category"] == "mug" for o in seq.objects) == 1  # unambiguous keypoint names
        # the instance masks name only these objects
        assert set(np.unique(seq.instance).tolist()) <= set(range(len(seq.objects) + 1))

    def test_keypoints_per_frame(self, seq):
        expected = sum(len(o["keypoints"]) for o in seq.objects)
        for frame in seq.keypoints:
            assert len(frame) == expected
            assert {"name", "instance_id", "uv", "z", "world", "visible"} <= set(frame[0])

    def test_held_out_instance(self, seq):
        from dense_descriptor_ros.sim.generator import GenerateConfig, instance_pools

        test_keys = {r.key for r in instance_pools(GenerateConfig())["test"]}
        assert all(o["key"] in test_keys for o in seq.objects if o["category"] in CATEGORIES)


def test_deterministic_whatever_the_asset_cache(seq, tmp_path):
    assert_same(seq, render_sequence(TINY, tmp_path))


def test_chosen_categories_and_a_still_camera(tmp_path):
    cfg = SequenceConfig(size=(96, 72), frames=2, seed=4, categories=("bowl", "distractor"), arc_deg=0.0,
                         distance_m=(0.6, 0.6), elevation_deg=(40.0, 40.0))
    s = render_sequence(cfg, tmp_path)
    assert [o["category"] for o in s.objects] == ["mug", "bowl", "distractor"]
    np.testing.assert_allclose(s.T_world_camera[0], s.T_world_camera[1], atol=1e-12)
    assert np.array_equal(s.rgb[0], s.rgb[1])


class TestCache:
    def test_save_load_round_trip(self, seq, tmp_path):
        path = tmp_path / "s.npz"
        save_sequence(seq, path)
        assert_same(seq, load_sequence(path))
        assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # no temporary files left

    def test_renders_once_then_loads(self, seq, tmp_path):
        lines: list[str] = []
        first = cached_sequence(TINY, tmp_path, log=lines.append)
        path = sequence_cache_path(TINY, tmp_path)
        assert path.is_file() and lines[-1].startswith("rendered")
        assert_same(seq, first)
        stamp = path.stat().st_mtime_ns
        second = cached_sequence(TINY, tmp_path, log=lines.append)
        assert lines[-1].startswith("loaded") and path.stat().st_mtime_ns == stamp
        assert_same(seq, second)
        other = dataclasses.replace(TINY, seed=2)
        assert sequence_cache_path(other, tmp_path) != path

    def test_broken_cache_file_is_rendered_again(self, seq, tmp_path):
        path = sequence_cache_path(TINY, tmp_path)
        path.write_bytes(b"not an npz")
        lines: list[str] = []
        assert_same(seq, cached_sequence(TINY, tmp_path, log=lines.append))
        assert "rendering it again" in lines[0]
        assert_same(seq, load_sequence(path))

    def test_other_format_version_is_refused(self, seq, tmp_path):
        path = tmp_path / "s.npz"
        save_sequence(seq, path)
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays["meta"].tobytes())
        meta["format_version"] = SEQUENCE_FORMAT_VERSION + 1
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match="format"):
            load_sequence(path)

    def test_not_a_sequence(self, tmp_path):
        np.savez(tmp_path / "x.npz", a=np.zeros(3))
        with pytest.raises(ValueError, match="not a sequence"):
            load_sequence(tmp_path / "x.npz")
        with pytest.raises(FileNotFoundError):
            load_sequence(tmp_path / "missing.npz")


class TestMugInView:
    def test_every_frame_shows_the_mug(self, seq):
        px = (seq.instance == MUG_INSTANCE_ID).reshape(seq.frames, -1).sum(1)
        assert (px >= max(MIN_MUG_FRACTION * seq.width * seq.height, 100)).all(), px

    def test_camera_looks_at_the_mug(self, seq):
        target = np.asarray(seq.scene["look_at"])
        mug = seq.objects[0]["T_world_object"]
        in_mug = np.linalg.inv(mug) @ np.array([*target, 1.0])
        np.testing.assert_allclose(in_mug[:2], 0.0, atol=1e-9)  # on the mug's axis
        assert 0.03 < in_mug[2] < 0.07  # half way up
        for i in range(seq.frames):
            uv, z = project(target[None], seq.K, seq.T_world_camera[i])
            np.testing.assert_allclose(uv[0], seq.K[:2, 2], atol=1e-6)

    def test_mug_keypoints_visible(self, seq):
        for i in range(seq.frames):
            visible = {k.name for k in keypoint_truth(seq, i, instance_id=MUG_INSTANCE_ID) if k.visible}
            assert len(visible) >= 3, (i, visible)
            assert "bottom_center" not in visible  # underneath the mug, on the table


class TestTrajectory:
    def test_arc(self, seq):
        target = np.asarray(seq.scene["look_at"])
        rel = seq.T_world_camera[:, :3, 3] - target
        dist = np.linalg.norm(rel, axis=1)
        np.testing.assert_allclose(dist[[0, -1]], TINY.distance_m, atol=1e-9)
        elev = np.degrees(np.arcsin(rel[:, 2] / dist))
        np.testing.assert_allclose(elev[[0, -1]], TINY.elevation_deg, atol=1e-9)
        az = np.unwrap(np.arctan2(rel[:, 1], rel[:, 0]))
        np.testing.assert_allclose(np.diff(az), math.radians(TINY.arc_deg) / (TINY.frames - 1), atol=1e-9)

    def test_poses_are_rigid(self, seq):
        R = seq.T_world_camera[:, :3, :3]
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
        np.testing.assert_allclose(seq.T_world_camera[:, 3], np.tile([0, 0, 0, 1.0], (seq.frames, 1)))


class TestKeypointTruth:
    def test_projection_is_exact(self, seq):
        for i in range(seq.frames):
            for k in keypoint_truth(seq, i):
                assert k.xyz[2] > 0
                np.testing.assert_allclose(k.uv, (seq.K @ k.xyz)[:2] / k.xyz[2], atol=1e-9)

    def test_visible_keypoints_lie_on_the_rendered_depth(self, seq):
        checked = 0
        for i in range(seq.frames):
            for k in keypoint_truth(seq, i):
                if not k.visible:
                    continue
                x0, y0 = np.round(k.uv).astype(int)
                ys, xs = np.mgrid[max(y0 - 1, 0):y0 + 2, max(x0 - 1, 0):x0 + 2]
                pts = backproject(seq, i, xs.ravel(), ys.ravel())
                # within two pixel footprints (or 3 mm) of some rendered point next to the keypoint's pixel
                assert np.linalg.norm(pts - k.xyz, axis=1).min() <= max(0.003, 2 * k.xyz[2] / seq.K[0, 0]), k
                checked += 1
        assert checked >= 3 * seq.frames

    def test_hidden_keypoint_is_behind_the_rendered_surface(self, seq):
        for i in range(seq.frames):
            (k,) = keypoint_truth(seq, i, "bottom_center", instance_id=MUG_INSTANCE_ID)
            x, y = np.round(k.uv).astype(int)
            assert seq.depth[i, y, x] < k.xyz[2] - 0.005

    def test_filters(self, seq):
        everything = keypoint_truth(seq, 0)
        assert len(everything) == len(seq.keypoints[0])
        (top,) = keypoint_truth(seq, 0, "handle_top")
        assert top.name == "handle_top" and top.uv.shape == (2,) and top.xyz.shape == (3,)
        assert keypoint_truth(seq, 0, "no_such_keypoint") == []
        assert len(keypoint_truth(seq, -1, instance_id=MUG_INSTANCE_ID)) == len(CATEGORIES["mug"].keypoints)

    def test_frame_out_of_range(self, seq):
        with pytest.raises(IndexError, match="frame 4"):
            keypoint_truth(seq, 4)
        with pytest.raises(IndexError):
            relative_pose(seq, 0, -5)


class TestRelativePose:
    def test_matches_world_poses(self, seq):
        T = seq.T_world_camera
        np.testing.assert_allclose(relative_pose(seq, 0, 2), np.linalg.inv(T[2]) @ T[0], atol=1e-12)
        np.testing.assert_allclose(relative_pose(seq, 1, 1), np.eye(4), atol=1e-12)
        np.testing.assert_allclose(relative_pose(seq, 0, 3) @ relative_pose(seq, 3, 0), np.eye(4), atol=1e-12)

    def test_maps_keypoints_between_frames(self, seq):
        a, b = 0, seq.frames - 1
        T_ba = relative_pose(seq, a, b)
        for ka, kb in zip(keypoint_truth(seq, a), keypoint_truth(seq, b), strict=True):
            np.testing.assert_allclose(T_ba[:3, :3] @ ka.xyz + T_ba[:3, 3], kb.xyz, atol=1e-9)

    def test_maps_rendered_mug_pixels_onto_the_other_depth(self, seq):
        """Back-project the mug in frame a, move it to frame b, project: where b sees the same surface the
        rendered depth agrees (intrinsics, poses and depth all consistent)."""
        a, b = 0, seq.frames - 1
        ys, xs = np.nonzero(seq.instance[a] == MUG_INSTANCE_ID)
        T = relative_pose(seq, a, b)
        pb_ = backproject(seq, a, xs, ys) @ T[:3, :3].T + T[:3, 3]
        u = np.round(seq.K[0, 0] * pb_[:, 0] / pb_[:, 2] + seq.K[0, 2]).astype(int)
        v = np.round(seq.K[1, 1] * pb_[:, 1] / pb_[:, 2] + seq.K[1, 2]).astype(int)
        inside = (u >= 0) & (u < seq.width) & (v >= 0) & (v < seq.height)
        err = np.abs(seq.depth[b, v[inside], u[inside]] - pb_[inside, 2])
        same = err < 0.01  # not hidden in b
        assert same.mean() > 0.6
        assert np.median(err[same]) < 0.002


def test_ground_truth_dict_is_json(seq):
    gt = json.loads(json.dumps(ground_truth_dict(seq)))
    np.testing.assert_allclose(gt["K"], seq.K)
    np.testing.assert_allclose(gt["T_world_camera"], seq.T_world_camera)
    assert gt["keypoints"] == seq.keypoints
    assert [o["key"] for o in gt["objects"]] == [o["key"] for o in seq.objects]


def test_pose_to_position_quaternion_round_trip():
    rng = np.random.default_rng(0)
    quats = [q / np.linalg.norm(q) for q in rng.standard_normal((200, 4))]
    quats += [np.array(q, float) for q in ([0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                            [0, 0, 0.7071067811865476, 0.7071067811865476])]
    for q in quats:
        T = np.eye(4)
        T[:3, :3] = np.asarray(pb.getMatrixFromQuaternion(q.tolist())).reshape(3, 3)
        T[:3, 3] = [1.0, -2.0, 3.0]
        xyz, out = pose_to_position_quaternion(T)
        np.testing.assert_allclose(xyz, [1.0, -2.0, 3.0])
        assert out[3] >= 0
        np.testing.assert_allclose(np.asarray(pb.getMatrixFromQuaternion(out.tolist())).reshape(3, 3), T[:3, :3],
                                   atol=1e-12)
    with pytest.raises(ValueError, match="4, 4"):
        pose_to_position_quaternion(np.eye(3))


@pytest.mark.parametrize(("change", "message"), [
    ({"size": (8, 120)}, "size"),
    ({"frames": 0}, "frames"),
    ({"seed": -1}, "seed"),
    ({"split": "holdout"}, "split"),
    ({"categories": ("mug", "spoon")}, "categories"),
    ({"distance_m": (0.05, 0.6)}, "distance_m"),
    ({"elevation_deg": (40.0, 90.0)}, "elevation_deg"),
    ({"arc_deg": 270.0}, "arc_deg"),
    ({"near": 6.0}, "near"),
])
def test_bad_config(change, message, tmp_path):
    cfg = dataclasses.replace(TINY, **change)
    with pytest.raises(ValueError, match=message):
        cfg.validate()
    with pytest.raises(ValueError, match=message):
        cached_sequence(cfg, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing rendered or written


def test_config_from_dict_names_bad_keys():
    assert from_dict(SequenceConfig, {"size": [96, 72], "categories": ["bowl"]}).size == (96, 72)
    with pytest.raises(ConfigError, match="unknown config key fps"):
        from_dict(SequenceConfig, {"fps": 30})
    with pytest.raises(ConfigError, match="frames"):
        from_dict(SequenceConfig, {"frames": "many"})
