"""Tests of dense_descriptor_ros.eval.pose: relative poses, essential-matrix pose estimation, pose errors,
pose AUC and match precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dense_descriptor_ros.eval.pose import (
    PoseEstimate,
    estimate_pose,
    match_precision,
    pose_auc,
    pose_errors,
    relative_pose,
)
from dense_descriptor_ros.geometry.camera import invert_pose, transform_points

W, H, F = 320, 240, 300.0
K = np.array([[F, 0.0, (W - 1) / 2], [0.0, F, (H - 1) / 2], [0.0, 0.0, 1.0]])


def rot(axis: tuple[float, float, float], deg: float) -> np.ndarray:
    """Rotation by `deg` degrees about `axis` (Rodrigues)."""
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    S = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    th = math.radians(deg)
    return np.eye(3) + math.sin(th) * S + (1 - math.cos(th)) * S @ S


def pose(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """T_world_camera (OpenCV axes) looking from `eye` at `target`, world +y appearing downwards."""
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return pose(np.stack([x, np.cross(z, x), z], 1), eye)


def to_camera(T: np.ndarray, P: np.ndarray) -> np.ndarray:
    """World points (N, 3) into the frame of the camera with pose T_world_camera."""
    return (P - T[:3, 3]) @ T[:3, :3]


def project(K_: np.ndarray, X: np.ndarray) -> np.ndarray:
    return (X @ K_.T)[:, :2] / X[:, 2:]


def two_view_scene(seed: int, n: int, noise_px: float = 0.0, outliers: float = 0.0,
                   K_a: np.ndarray = K, K_b: np.ndarray = K):
    """Points in a 4 m cube 4 m in front of camera A; B looks at the cube's centre 20-30 degrees
    around it. Returns uv_a, uv_b (n, 2) (the first `outliers * n` of uv_b replaced by random pixels),
    T_a, T_b."""
    rng = np.random.default_rng(seed)
    centre = np.array([0.0, 0.0, 4.0])
    ang = math.radians(rng.uniform(20, 30))
    T_a = look_at(np.zeros(3), centre)
    T_b = look_at(centre + 4.0 * np.array([math.sin(ang), 0.2, -math.cos(ang)]), centre)
    P = centre + rng.uniform(-2.0, 2.0, (30 * n, 3))
    Xa, Xb = to_camera(T_a, P), to_camera(T_b, P)
    uv_a, uv_b = project(K_a, Xa), project(K_b, Xb)
    seen = ((Xa[:, 2] > 0) & (Xb[:, 2] > 0) & (uv_a >= 0).all(1) & (uv_a <= [W - 1, H - 1]).all(1)
            & (uv_b >= 0).all(1) & (uv_b <= [W - 1, H - 1]).all(1))
    uv_a, uv_b = uv_a[seen][:n], uv_b[seen][:n]
    assert len(uv_a) == n
    uv_a = uv_a + rng.normal(0, noise_px, uv_a.shape)
    uv_b = uv_b + rng.normal(0, noise_px, uv_b.shape)
    k = int(round(outliers * n))
    uv_b[:k] = rng.uniform([0, 0], [W - 1, H - 1], (k, 2))
    return uv_a, uv_b, T_a, T_b


def is_rotation(R: np.ndarray) -> bool:
    return np.allclose(R @ R.T, np.eye(3), atol=1e-9) and abs(np.linalg.det(R) - 1) < 1e-9


class TestRelativePose:
    def test_hand_built(self):
        # A at the origin; B turned 90 degrees about z (its x axis is world +y) and standing at x = 1.
        # B's frame: X_b = R_b^T (X_w - (1, 0, 0)) with R_b^T = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], so
        # R = R_b^T and t = -R_b^T (1, 0, 0) = (0, 1, 0).
        R, t = relative_pose(np.eye(4), pose(rot((0, 0, 1), 90), [1.0, 0.0, 0.0]))
        np.testing.assert_allclose(R, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)
        np.testing.assert_allclose(t, [0, 1, 0], atol=1e-12)
        # the world point (1, 1, 0) is 1 m along B's x axis
        np.testing.assert_allclose(R @ [1.0, 1.0, 0.0] + t, [1, 0, 0], atol=1e-12)

    def test_same_pose_is_identity(self):
        T = pose(rot((1, 2, 3), 40), [0.3, -2.0, 5.0])
        R, t = relative_pose(T, T)
        np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(t, 0, atol=1e-12)

    def test_moves_points_between_cameras(self):
        rng = np.random.default_rng(1)
        T_a = pose(rot((0.2, 1, -0.4), 35), [1.0, 2.0, -0.5])
        T_b = pose(rot((1, -0.3, 0.5), -60), [-0.7, 0.4, 2.0])
        P = rng.normal(size=(50, 3)) * 3
        R, t = relative_pose(T_a, T_b)
        assert is_rotation(R)
        np.testing.assert_allclose(to_camera(T_a, P) @ R.T + t, to_camera(T_b, P), atol=1e-10)
        # the same convention as geometry.camera / geometry.reprojection: inv(T_b) @ T_a
        T_ba = invert_pose(torch.from_numpy(T_b)) @ torch.from_numpy(T_a)
        Xa = torch.from_numpy(to_camera(T_a, P))
        np.testing.assert_allclose(transform_points(T_ba, Xa).numpy(), to_camera(T_a, P) @ R.T + t, atol=1e-10)

    @pytest.mark.parametrize(("T_a", "T_b", "name"), [(np.eye(3), np.eye(4), "T_a"),
                                                       (np.eye(4), np.zeros(4), "T_b"),
                                                       (np.eye(4), np.zeros((1, 4, 4)), "T_b")])
    def test_shapes_checked(self, T_a, T_b, name):
        with pytest.raises(ValueError, match=name):
            relative_pose(T_a, T_b)


class TestEstimatePose:
    def test_noisy_matches_with_outliers(self):
        n = 300
        uv_a, uv_b, T_a, T_b = two_view_scene(seed=0, n=n, noise_px=0.3, outliers=0.2)
        est = estimate_pose(uv_a, uv_b, K, K)
        assert isinstance(est, PoseEstimate)
        assert is_rotation(est.R) and est.t.shape == (3,) and abs(np.linalg.norm(est.t) - 1) < 1e-9
        assert est.inliers.shape == (n,) and est.inliers.dtype == bool
        err_R, err_t = pose_errors(est.R, est.t, *relative_pose(T_a, T_b))
        # RANSAC keeps the best minimal (5-point) model without refining it on all inliers, as in the
        # LoFTR / SuperGlue protocol: typically 0.3-0.5 degrees here, not the ~0.06 of the noise alone.
        assert err_R < 1.0 and err_t < 3.0, (err_R, err_t)
        k = n // 5
        assert est.inliers[:k].sum() <= 2  # a random pixel rarely falls within 0.5 px of its epipolar line
        assert est.inliers[k:].mean() > 0.6

    def test_exact_without_noise_and_own_intrinsics(self):
        # different intrinsics per view, with skew and an off-centre principal point: each view must be
        # normalised with its own K, or the pose is off by far more than this tolerance
        K_a = np.array([[250.0, 0.0, 150.0], [0.0, 260.0, 125.0], [0.0, 0.0, 1.0]])
        K_b = np.array([[340.0, 2.0, 165.0], [0.0, 330.0, 112.0], [0.0, 0.0, 1.0]])
        uv_a, uv_b, T_a, T_b = two_view_scene(seed=2, n=200, outliers=0.2, K_a=K_a, K_b=K_b)
        est = estimate_pose(uv_a, uv_b, K_a, K_b)
        err_R, err_t = pose_errors(est.R, est.t, *relative_pose(T_a, T_b))
        assert err_R < 1e-5 and err_t < 1e-5
        # X_b = R X_a + t with the sign of t right (the cheirality check fixes it)
        _, t_true = relative_pose(T_a, T_b)
        assert est.t @ t_true > 0.999 * np.linalg.norm(t_true)
        assert not est.inliers[:40].any() and est.inliers[40:].all()

    @pytest.mark.parametrize("seed", [2, 6, 7])
    def test_five_matches_picks_the_best_of_several_solutions(self, seed):
        # Five points give several essential matrices (stacked 3x3 blocks); for these seeds the first one
        # puts some points behind a camera. The kept one must satisfy the epipolar constraint and have
        # all five points in front of both cameras.
        uv_a, uv_b, _, _ = two_view_scene(seed=seed, n=5)
        est = estimate_pose(uv_a, uv_b, K, K)
        assert est is not None and est.inliers.all()
        tx = np.array([[0, -est.t[2], est.t[1]], [est.t[2], 0, -est.t[0]], [-est.t[1], est.t[0], 0]])
        xa = np.c_[uv_a, np.ones(5)] @ np.linalg.inv(K).T
        xb = np.c_[uv_b, np.ones(5)] @ np.linalg.inv(K).T
        np.testing.assert_allclose(np.einsum("ni,ij,nj->n", xb, tx @ est.R, xa), 0, atol=1e-8)

    def test_fewer_than_five_matches(self):
        uv_a, uv_b, _, _ = two_view_scene(seed=0, n=4)
        assert estimate_pose(uv_a, uv_b, K, K) is None
        assert estimate_pose(np.zeros((0, 2)), np.zeros((0, 2)), K, K) is None

    def test_degenerate_matches(self):
        # ten copies of one match constrain nothing (OpenCV would still return a pose), nor do ten
        # matches from only four distinct points of A
        assert estimate_pose(np.full((10, 2), 50.0), np.full((10, 2), 60.0), K, K) is None
        uv_a, uv_b, _, _ = two_view_scene(seed=0, n=10)
        assert estimate_pose(uv_a[[0, 1, 2, 3] * 2 + [0, 1]], uv_b, K, K) is None

    def test_deterministic(self):
        uv_a, uv_b, _, _ = two_view_scene(seed=4, n=150, noise_px=0.3, outliers=0.3)
        a, b = estimate_pose(uv_a, uv_b, K, K, seed=7), estimate_pose(uv_a, uv_b, K, K, seed=7)
        np.testing.assert_array_equal(a.R, b.R)
        np.testing.assert_array_equal(a.t, b.t)
        np.testing.assert_array_equal(a.inliers, b.inliers)

    def test_bad_inputs(self):
        uv = np.zeros((10, 2))
        with pytest.raises(ValueError, match="uv_b"):
            estimate_pose(uv, np.zeros((9, 2)), K, K)
        with pytest.raises(ValueError, match="uv_a"):
            estimate_pose(np.zeros((10, 3)), uv, K, K)
        with pytest.raises(ValueError, match="K_b"):
            estimate_pose(uv, uv, K, np.eye(4))
        with pytest.raises(ValueError, match="non-finite"):
            estimate_pose(np.full((10, 2), np.nan), uv, K, K)
        with pytest.raises(ValueError, match="threshold_px"):
            estimate_pose(uv, uv, K, K, threshold_px=0.0)


class TestPoseErrors:
    def test_identity(self):
        assert pose_errors(np.eye(3), np.array([0.0, 0, 1]), np.eye(3), np.array([0.0, 0, 2])) == (0.0, 0.0)

    def test_known_rotation(self):
        R_true = rot((1, -2, 0.5), 33)
        err_R, _ = pose_errors(R_true @ rot((0.3, 0.1, 1), 10), np.ones(3), R_true, np.ones(3))
        assert err_R == pytest.approx(10.0, abs=1e-9)
        # precise at tiny angles too (the trace formula would give ~1e-6 degrees of round-off)
        assert pose_errors(rot((0, 1, 0), 1e-7), np.ones(3), np.eye(3), np.ones(3))[0] == pytest.approx(1e-7, rel=1e-6)
        assert pose_errors(rot((0, 1, 0), 180), np.ones(3), np.eye(3), np.ones(3))[0] == pytest.approx(180)

    def test_translation_direction(self):
        t_true = np.array([2.0, 0.0, 0.0])
        e = lambda t: pose_errors(np.eye(3), np.asarray(t, float), np.eye(3), t_true)[1]  # noqa: E731
        assert e([-1, 0, 0]) == 0.0  # the sign of t is not observable
        assert e([5, 0, 0]) == 0.0  # nor its scale
        assert e([math.cos(math.radians(30)), math.sin(math.radians(30)), 0]) == pytest.approx(30)
        assert e([math.cos(math.radians(170)), math.sin(math.radians(170)), 0]) == pytest.approx(10)
        assert e([0, 0, 1]) == pytest.approx(90)

    def test_no_true_translation(self):
        assert pose_errors(np.eye(3), np.array([0.0, 1, 0]), np.eye(3), np.zeros(3))[1] == 0.0

    def test_shapes_checked(self):
        with pytest.raises(ValueError, match="t_est"):
            pose_errors(np.eye(3), np.ones(2), np.eye(3), np.ones(3))
        with pytest.raises(ValueError, match="R_true"):
            pose_errors(np.eye(3), np.ones(3), np.eye(4), np.ones(3))
        with pytest.raises(ValueError, match="zero vector"):
            pose_errors(np.eye(3), np.zeros(3), np.eye(3), np.ones(3))


class TestPoseAuc:
    def test_hand_computed(self):
        # errors [0, 2.5, 7.5, inf] (the inf a failed pair, given as None): the curve starts at (0, 0),
        # then (0, 1/4), (2.5, 1/2), (7.5, 3/4), and stays flat to the threshold.
        # @5:  0 + (1/4 + 1/2)/2 * 2.5 + 1/2 * 2.5                 = 0.9375 + 1.25         = 2.1875  / 5
        # @10: 0.9375 + (1/2 + 3/4)/2 * 5 + 3/4 * 2.5              = 0.9375 + 3.125 + 1.875 = 5.9375  / 10
        # @20: 0.9375 + 3.125 + 3/4 * 12.5                         = 13.4375 / 20
        auc = pose_auc([7.5, None, 0.0, 2.5])
        assert auc == pytest.approx({"auc@5": 0.4375, "auc@10": 0.59375, "auc@20": 0.671875}, abs=1e-12)
        assert pose_auc(np.array([0.0, 2.5, 7.5, np.inf])) == auc

    def test_extremes(self):
        assert pose_auc(np.zeros(7)) == {"auc@5": 1.0, "auc@10": 1.0, "auc@20": 1.0}
        assert pose_auc([np.inf, None, np.nan]) == {"auc@5": 0.0, "auc@10": 0.0, "auc@20": 0.0}

    def test_single_error_is_the_area_over_the_threshold(self):
        # one pair at error e = 4: SuperGlue's curve is (0, 0) -> (4, 1) -> (10, 1) (the trapezoid ramps
        # up instead of stepping), so the area is 4/2 + 6 = 8, over the threshold 10
        assert pose_auc([4.0], thresholds=(10,)) == {"auc@10": pytest.approx((2.0 + 6.0) / 10)}

    def test_error_at_the_threshold_is_not_recalled(self):
        # SuperGlue counts errors strictly below the threshold (searchsorted, side "left")
        assert pose_auc([5.0], thresholds=(5,)) == {"auc@5": 0.0}

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="non-empty"):
            pose_auc([])
        with pytest.raises(ValueError, match="negative"):
            pose_auc([1.0, -1.0])
        with pytest.raises(ValueError, match="positive"):
            pose_auc([1.0], thresholds=(0,))


class TestMatchPrecision:
    def test_hand_built(self):
        pred = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0], [40.0, 40.0], [50.0, 50.0]])
        true = np.array([[10.5, 10.0],      # error 0.5
                         [22.0, 20.0],      # error 2
                         [np.nan, np.nan],  # no truth (occluded)
                         [43.0, 44.0],      # error 5 (3-4-5), correct at 5 (<=)
                         [50.0, np.nan]])   # no truth either
        out = match_precision(pred, true)
        assert out == {"matches": 5, "with_truth": 3,
                       "correct@1px": 1, "precision@1px": pytest.approx(1 / 3),
                       "correct@3px": 2, "precision@3px": pytest.approx(2 / 3),
                       "correct@5px": 3, "precision@5px": pytest.approx(1.0)}

    def test_no_truth(self):
        out = match_precision(np.zeros((2, 2)), np.full((2, 2), np.nan), thresholds=(2.5,))
        assert out["with_truth"] == 0 and out["correct@2.5px"] == 0 and math.isnan(out["precision@2.5px"])
        out = match_precision(np.zeros((0, 2)), np.zeros((0, 2)))
        assert out["matches"] == 0 and math.isnan(out["precision@1px"])

    def test_shapes_checked(self):
        with pytest.raises(ValueError, match="uv_b_true"):
            match_precision(np.zeros((3, 2)), np.zeros((4, 2)))
        with pytest.raises(ValueError, match="uv_b_pred"):
            match_precision(np.zeros((3,)), np.zeros((3, 2)))
        with pytest.raises(ValueError, match="non-finite"):
            match_precision(np.full((1, 2), np.nan), np.zeros((1, 2)))
