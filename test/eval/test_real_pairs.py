"""Real-image evaluation pairs: exact geometry of the photo pairs, the stereo pair's ground truth, and the
sets in pair lists and the CLI."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from dense_descriptor_ros.data.sample_images import HELDOUT_IMAGES, REAL_HELDOUT, TRAIN_IMAGES
from dense_descriptor_ros.eval.pairs import PairList, PairLoader, make_pair_list
from dense_descriptor_ros.eval.real_pairs import _visible_in_right, photo_pair, photometric, stereo_pair


def _smooth_canvas(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (h // 16, w // 16, 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    return cv2.remap(img.astype(np.float32), uv[..., 0].astype(np.float32), uv[..., 1].astype(np.float32),
                     cv2.INTER_LINEAR)


class TestPhotoPair:
    def test_map_is_exact(self):
        """Without illumination change, B sampled where the map sends A's pixels is A (up to interpolation)."""
        canvas = _smooth_canvas(384, 512)
        for seed in range(5):
            rp = photo_pair(canvas, (240, 320), seed, illumination=False)
            assert rp.valid.mean() > 0.3
            back = _bilinear(rp.image_b, rp.map_ab)
            err = np.abs(back - rp.image_a.astype(np.float32))[rp.valid]
            assert np.median(err) < 2.0, seed
            wrong = _bilinear(rp.image_b, rp.map_ab + 6.0)  # a 6 px shifted map is clearly worse
            assert np.median(np.abs(wrong - rp.image_a.astype(np.float32))[rp.valid]) > 3 * np.median(err) + 1

    def test_views_differ_by_rotation_scale_and_light(self):
        rp = photo_pair(_smooth_canvas(384, 512), (240, 320), 7)
        d = rp.map_ab[rp.valid] - np.stack(np.nonzero(rp.valid)[::-1], -1)
        assert np.abs(d).max() > 10  # a real viewpoint change, not the identity
        assert rp.image_a.dtype == np.uint8 and rp.image_b.shape == (240, 320, 3)

    def test_pure_function_of_the_seed(self):
        canvas = _smooth_canvas(384, 512)
        a, b = photo_pair(canvas, (120, 160), 3), photo_pair(canvas, (120, 160), 3)
        assert np.array_equal(a.image_b, b.image_b) and np.array_equal(a.map_ab, b.map_ab)
        assert not np.array_equal(a.image_b, photo_pair(canvas, (120, 160), 4).image_b)

    def test_photometric_strength_zero_is_identity(self):
        img = _smooth_canvas(64, 96)
        assert np.array_equal(photometric(img, np.random.default_rng(0), 0.0), img)
        assert not np.array_equal(photometric(img, np.random.default_rng(0), 1.0), img)


class TestStereo:
    def test_ground_truth_matches_the_images(self):
        """The right image at the true correspondence looks like the left pixel; 8 px off it does not."""
        for seed in range(3):
            rp = stereo_pair((240, 320), seed)
            assert rp.valid.mean() > 0.5
            a = rp.image_a.astype(np.float32)
            true = np.abs(_bilinear(rp.image_b, rp.map_ab) - a)[rp.valid].mean()
            off = np.abs(_bilinear(rp.image_b, rp.map_ab + [8.0, 0.0]) - a)[rp.valid].mean()
            assert true < 0.6 * off, (seed, true, off)

    def test_occluded_points_are_left_out(self):
        disp = np.full((1, 20), 2.0)
        disp[0, 10:13] = 8.0  # a near object: lands on right x = 2..4, hiding the far points that land there
        vis = _visible_in_right(disp)
        assert vis[0, 10:13].all()
        assert not vis[0, 4:7].any()  # far points at x 4..6 -> right x 2..4, behind the near object
        assert vis[0, 8] and vis[0, 15]
        disp[0, 0] = np.nan
        assert not _visible_in_right(disp)[0, 0]


def test_real_photos_are_held_out():
    assert not set(REAL_HELDOUT) & set(TRAIN_IMAGES)
    assert set(HELDOUT_IMAGES) <= set(REAL_HELDOUT)


class TestPairLists:
    def test_real_sets_need_no_data(self, tmp_path):
        plist = make_pair_list(None, None, n_per_set=2, points=50, sets=("real_photo", "real_stereo"))
        assert [p.set for p in plist.pairs] == ["real_photo"] * 2 + ["real_stereo"] * 2
        plist.save(tmp_path / "p.json")
        back = PairList.load(tmp_path / "p.json")
        loader = PairLoader(back)
        for spec in back.pairs:
            pair = loader(spec)
            assert len(pair.uv_a) == 50 and not pair.object_sample.any()
            h, w = pair.size
            assert (pair.uv_b[:, 0] <= w - 1).all() and (pair.uv_b[:, 1] <= h - 1).all()
        assert back.pairs[0].id.startswith("real_photo/") and back.pairs[2].id.startswith("real_stereo/")

    def test_eval_cli_scores_the_real_sets(self, tmp_path):
        out = tmp_path / "ev"
        r = subprocess.run([sys.executable, "-m", "dense_descriptor_ros.cli", "eval", "--baselines", "rgb",
                            "--sets", "real_photo", "real_stereo", "--pairs-per-set", "2", "--points", "40",
                            "--out", str(out), "--no-figures", "--no-progress", "--threads", "1"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        md = (out / "report.md").read_text()
        assert "real photos (all pixels)" in md and "real stereo (all pixels)" in md
        assert "real photo PCK@3" in md


@pytest.mark.parametrize("name", REAL_HELDOUT)
def test_every_real_photo_loads(name):
    from dense_descriptor_ros.sample_images import _load

    img = _load(name)
    assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256
