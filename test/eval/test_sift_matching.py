"""Tests of dense_descriptor_ros.eval.sift_matching: RootSIFT descriptors and mutual-NN + ratio matching,
checked against a known homography."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from dense_descriptor_ros.eval.sift_matching import detect_and_describe, match_rootsift, root_sift

H, W = 240, 320


def shapes_image(seed: int = 0) -> np.ndarray:
    """(240, 320, 3) RGB uint8: random filled circles, rectangles and lines over smoothed noise."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((H, W, 3)) * 255).astype(np.uint8), (0, 0), 3)
    for _ in range(60):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers([0, 0], [W, H]))
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(img, (x, y), int(rng.integers(3, 18)), colour, -1)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 40)), y + int(rng.integers(5, 40))), colour, -1)
        else:
            cv2.line(img, (x, y), tuple(int(v) for v in rng.integers([0, 0], [W, H])), colour, int(rng.integers(1, 4)))
    return cv2.GaussianBlur(img, (0, 0), 0.8)


def homography(deg: float = 12.0, scale: float = 0.9) -> np.ndarray:
    """Rotation and scale about the image centre with a little perspective."""
    c, s = scale * math.cos(math.radians(deg)), scale * math.sin(math.radians(deg))
    cx, cy = (W - 1) / 2, (H - 1) / 2
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    back = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
    return back @ np.array([[c, -s, 0], [s, c, 0], [2e-4, -1e-4, 1.0]]) @ to_centre


def apply_h(Hm: np.ndarray, uv: np.ndarray) -> np.ndarray:
    p = np.c_[uv, np.ones(len(uv))] @ Hm.T
    return p[:, :2] / p[:, 2:]


@pytest.fixture(scope="module")
def pair():
    img_a = shapes_image()
    Hm = homography()
    img_b = cv2.warpPerspective(img_a, Hm, (W, H), flags=cv2.INTER_LINEAR)  # B(H x) = A(x)
    return img_a, img_b, Hm


class TestRootSift:
    def test_hand_computed(self):
        # L1-normalise [1, 3, 0, 0] -> [1/4, 3/4, 0, 0], sqrt -> [1/2, sqrt(3)/2, 0, 0] (unit L2 norm)
        np.testing.assert_allclose(root_sift(np.array([[1.0, 3.0, 0.0, 0.0]])),
                                   [[0.5, math.sqrt(3) / 2, 0.0, 0.0]], rtol=1e-6)
        assert root_sift(np.zeros((1, 4))).tolist() == [[0.0] * 4]  # no NaN from 0 / 0

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="non-negative"):
            root_sift(np.array([[1.0, -1.0]]))
        with pytest.raises(ValueError, match="desc"):
            root_sift(np.ones(128))


class TestDetectAndDescribe:
    def test_shapes_and_rootsift(self, pair):
        uv, desc = detect_and_describe(pair[0])
        assert len(uv) > 100 and uv.shape == (len(uv), 2) and uv.dtype == np.float64
        assert desc.shape == (len(uv), 128) and desc.dtype == np.float32
        assert (desc >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-5)
        assert ((uv >= 0) & (uv <= [W - 1, H - 1])).all()

    def test_keeps_the_strongest(self, pair):
        gray = cv2.cvtColor(pair[0], cv2.COLOR_RGB2GRAY)
        kps = cv2.SIFT_create().detect(gray, None)
        strongest = sorted(kps, key=lambda k: -k.response)[:50]
        uv, desc = detect_and_describe(pair[0], max_keypoints=50)
        assert len(kps) > 100 and uv.shape == (50, 2) and desc.shape == (50, 128)
        assert {tuple(k.pt) for k in strongest} == {tuple(p) for p in uv}

    def test_is_rootsift_of_opencv_sift(self, pair):
        # the same keypoints and the square root of OpenCV's L1-normalised descriptors
        gray = cv2.cvtColor(pair[0], cv2.COLOR_RGB2GRAY)
        kps, raw = cv2.SIFT_create(nfeatures=100).detectAndCompute(gray, None)
        uv, desc = detect_and_describe(pair[0], max_keypoints=100)
        pts = np.array([k.pt for k in kps])
        for p, d in zip(uv, desc, strict=True):
            i = np.flatnonzero((pts == p).all(1))
            assert len(i) >= 1
            ref = np.sqrt(raw[i] / raw[i].sum(1, keepdims=True))
            assert np.abs(ref - d).max(1).min() < 1e-6

    def test_constant_image(self):
        uv, desc = detect_and_describe(np.full((H, W, 3), 128, np.uint8))
        assert uv.shape == (0, 2) and desc.shape == (0, 128)

    @pytest.mark.parametrize("image", [np.zeros((H, W, 3), np.float32), np.zeros((H, W, 4), np.uint8),
                                       np.zeros((2, H, W, 3), np.uint8)])
    def test_bad_images(self, image):
        with pytest.raises(ValueError, match="image"):
            detect_and_describe(image)


class TestMatchRootSift:
    def test_homography(self, pair):
        img_a, img_b, Hm = pair
        uv_a, uv_b, ratio = match_rootsift(img_a, img_b)
        assert uv_a.shape == uv_b.shape == (len(ratio), 2)
        err = np.linalg.norm(apply_h(Hm, uv_a) - uv_b, axis=1)
        assert len(err) >= 50
        assert (err <= 3.0).mean() >= 0.9, np.sort(err)[-20:]
        assert (ratio <= 0.8).all() and (np.diff(ratio) >= 0).all()  # sorted, most distinctive first

    def test_mutual_and_ratio_filter(self, pair):
        img_a, img_b, _ = pair
        strict = match_rootsift(img_a, img_b, max_ratio=0.6)[2]
        loose = match_rootsift(img_a, img_b, max_ratio=1.0, mutual=False)[2]
        default = match_rootsift(img_a, img_b)[2]
        assert len(strict) < len(default) < len(loose)
        assert (strict <= 0.6).all()

    def test_itself_gives_identity(self, pair):
        uv_a, uv_b, ratio = match_rootsift(pair[0], pair[0], max_keypoints=500)
        assert len(uv_a) >= 100
        np.testing.assert_array_equal(uv_a, uv_b)
        assert (ratio < 0.05).all()  # 0 distance over the second best (up to the epsilon)

    def test_no_texture(self, pair):
        flat = np.full((H, W, 3), 90, np.uint8)
        for a, b in ((flat, flat), (flat, pair[0]), (pair[0], flat)):
            uv_a, uv_b, ratio = match_rootsift(a, b)
            assert uv_a.shape == uv_b.shape == (0, 2) and ratio.shape == (0,)
