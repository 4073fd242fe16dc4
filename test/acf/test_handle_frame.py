"""acf/handle_frame.py: the mug handle frame from named keypoints, its errors and the temporal filter,
against values computed by hand from a mug in its canonical frame (handle towards +x, z up)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dense_descriptor_ros.acf.handle_frame import (
    FrameFilterConfig,
    HandleFrame,
    HandleFrameFilter,
    estimate_handle_frame,
    frame_errors,
    truth_handle_frame,
)

# A mug in its canonical frame (the shape of sim/categories.py build_mug's keypoints, metres).
MUG = {
    "handle_top": np.array([0.060, 0.0, 0.090]),
    "handle_bottom": np.array([0.060, 0.0, 0.020]),
    "handle_outer": np.array([0.075, 0.0, 0.055]),
    "rim_front": np.array([-0.046, 0.0, 0.118]),
    "rim_back": np.array([0.046, 0.0, 0.118]),
    "body_front": np.array([-0.048, 0.0, 0.059]),
    "bottom_center": np.array([0.0, 0.0, 0.0]),
    "inside_bottom": np.array([0.0, 0.0, 0.007]),
}
# By hand: origin = handle_outer, axis = +z, approach = +x (centre on the z axis).
ORIGIN = np.array([0.075, 0.0, 0.055])


def rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def moved(points: dict, R: np.ndarray, t=(0.0, 0.0, 0.0)) -> dict:
    return {k: R @ v + np.asarray(t) for k, v in points.items()}


class TestEstimate:
    def test_canonical_mug(self):
        f = estimate_handle_frame(MUG)
        np.testing.assert_allclose(f.origin, ORIGIN, atol=1e-12)
        np.testing.assert_allclose(f.axis, [0, 0, 1], atol=1e-12)
        np.testing.assert_allclose(f.approach, [1, 0, 0], atol=1e-12)
        np.testing.assert_allclose(f.rotation(), np.eye(3), atol=1e-12)
        np.testing.assert_allclose(f.matrix()[:3, 3], ORIGIN)
        assert set(f.keypoints) == set(MUG) - {"body_front"}  # the far-side points only without axis points

    def test_exact_truth_has_zero_error(self):
        assert frame_errors(estimate_handle_frame(MUG), truth_handle_frame(MUG)) == (0.0, 0.0, 0.0)

    def test_rigid_motion_moves_the_frame_with_the_object(self):
        R = rot_z(30) @ rot_x(-50)
        t = np.array([0.1, -0.2, 0.6])
        f = estimate_handle_frame(moved(MUG, R, t))
        np.testing.assert_allclose(f.origin, R @ ORIGIN + t, atol=1e-12)
        np.testing.assert_allclose(f.rotation(), R, atol=1e-12)

    def test_known_rotations(self):
        truth = truth_handle_frame(MUG)
        # 10 deg about x: axis off by 10 deg, approach (+x) unchanged; the origin moves on a circle of radius
        # |(0, 0.055)| in the yz plane: 2 * 0.055 * sin(5 deg) m
        pos, axis, approach = frame_errors(estimate_handle_frame(moved(MUG, rot_x(10))), truth)
        assert pos == pytest.approx(2 * 55.0 * math.sin(math.radians(5)), abs=1e-9)
        assert axis == pytest.approx(10.0, abs=1e-9)
        assert approach == pytest.approx(0.0, abs=1e-9)
        # 90 deg about z plus 10 mm along x: axis unchanged, approach 90 deg, origin (0.075, 0, .) ->
        # (0.01, 0.075, .): |(-0.065, 0.075)| m
        pos, axis, approach = frame_errors(estimate_handle_frame(moved(MUG, rot_z(90), (0.01, 0, 0))), truth)
        assert pos == pytest.approx(1000 * math.hypot(0.065, 0.075), abs=1e-9)
        assert axis == pytest.approx(0.0, abs=1e-9)
        assert approach == pytest.approx(90.0, abs=1e-9)

    def test_translation_is_a_pure_position_error(self):
        pos, axis, approach = frame_errors(estimate_handle_frame(moved(MUG, np.eye(3), (0.003, -0.004, 0))),
                                           truth_handle_frame(MUG))
        assert pos == pytest.approx(5.0, abs=1e-9) and axis == pytest.approx(0, abs=1e-6)
        assert approach == pytest.approx(0, abs=1e-6)

    def test_one_keypoint_off(self):
        # handle_top 5 mm further out: the origin (handle_outer) stays, the axis tilts by atan(5 / 70);
        # handle_outer 5 mm off moves the origin by 5 mm and nothing else
        pts = dict(MUG, handle_top=MUG["handle_top"] + [0.005, 0, 0])
        pos, axis, _ = frame_errors(estimate_handle_frame(pts), truth_handle_frame(MUG))
        assert pos == pytest.approx(0, abs=1e-9)
        assert axis == pytest.approx(math.degrees(math.atan2(5, 70)), abs=1e-9)
        pts = dict(MUG, handle_outer=MUG["handle_outer"] + [0.003, 0.004, 0])
        pos, axis, _ = frame_errors(estimate_handle_frame(pts), truth_handle_frame(MUG))
        assert pos == pytest.approx(5, abs=1e-9) and axis == pytest.approx(0, abs=1e-9)

    def test_missing_handle_outer_shifts_the_origin(self):
        # to the midpoint of the handle's ends, 15 mm inside handle_outer
        pts = {k: v for k, v in MUG.items() if k != "handle_outer"}
        f = estimate_handle_frame(pts)
        np.testing.assert_allclose(f.origin, [0.060, 0, 0.055], atol=1e-12)
        assert frame_errors(f, truth_handle_frame(MUG))[0] == pytest.approx(15.0, abs=1e-9)
        assert "handle_outer" not in f.keypoints

    @pytest.mark.parametrize("name", ["handle_top", "handle_bottom"])
    def test_no_axis_without_both_ends_or_the_rim(self, name):
        handle = {k: MUG[k] for k in ("handle_top", "handle_bottom", "handle_outer", "body_front", "bottom_center")}
        assert estimate_handle_frame({k: v for k, v in handle.items() if k != name}) is None
        assert estimate_handle_frame(handle, {k: k != name for k in handle}) is None  # present but not valid
        assert estimate_handle_frame(dict(handle, **{name: np.array([np.nan, 0, 0])})) is None
        # one rim point is no rim line
        assert estimate_handle_frame({**{k: v for k, v in handle.items() if k != name},
                                      "rim_front": MUG["rim_front"]}) is None

    def test_without_handle_bottom_the_axis_is_the_mug_s_symmetry_axis(self):
        # rim_center (0, 0, 0.118) minus the bottom points' mean: +z; origin handle_outer as ever
        f = estimate_handle_frame({k: v for k, v in MUG.items() if k != "handle_bottom"})
        np.testing.assert_allclose(f.axis, [0, 0, 1], atol=1e-12)
        np.testing.assert_allclose(f.origin, ORIGIN, atol=1e-12)
        np.testing.assert_allclose(f.approach, [1, 0, 0], atol=1e-12)
        assert set(f.keypoints) == {"handle_top", "handle_outer", "rim_front", "rim_back", "bottom_center",
                                    "inside_bottom"}
        # the very frame of the truth, which has every keypoint
        pos, axis, approach = frame_errors(f, truth_handle_frame(MUG))
        assert pos == pytest.approx(0, abs=1e-9)
        assert axis == pytest.approx(0, abs=1e-9) and approach == pytest.approx(0, abs=1e-9)

    @pytest.mark.parametrize("missing", ["handle_bottom", "handle_top"])
    def test_from_the_rim_line_and_the_handle_when_no_bottom_point_is_seen(self, missing):
        # what the simulated camera's default arc shows: handle_top, handle_outer and the two rim points
        seen = {k: MUG[k] for k in ("handle_top", "handle_bottom", "handle_outer", "rim_front", "rim_back")
                if k != missing}
        f = estimate_handle_frame(seen)
        np.testing.assert_allclose(f.axis, [0, 0, 1], atol=1e-12)
        np.testing.assert_allclose(f.approach, [1, 0, 0], atol=1e-12)
        assert set(f.keypoints) == set(seen)
        R, t = rot_z(-70) @ rot_x(35), np.array([0.2, 0.1, 0.5])
        g = estimate_handle_frame(moved(seen, R, t))
        np.testing.assert_allclose(g.rotation(), R @ f.rotation(), atol=1e-12)
        np.testing.assert_allclose(g.origin, R @ f.origin + t, atol=1e-12)

    def test_a_leaning_handle_is_axis_error_without_its_bottom(self):
        # a tapered mug: handle_bottom 10 mm further in than handle_top, so the true chord leans by
        # atan(10 / 70) from the mug's up direction, which is what the estimate without handle_bottom gives
        mug = dict(MUG, handle_bottom=np.array([0.050, 0.0, 0.020]))
        seen = {k: mug[k] for k in ("handle_top", "handle_outer", "rim_front", "rim_back")}
        _, axis, _ = frame_errors(estimate_handle_frame(seen), truth_handle_frame(mug))
        assert axis == pytest.approx(math.degrees(math.atan2(10, 70)), abs=1e-9)

    def test_degenerate_rim_gives_no_axis(self):
        seen = {k: MUG[k] for k in ("handle_top", "handle_outer", "rim_front", "rim_back")}
        assert estimate_handle_frame(dict(seen, rim_back=MUG["rim_front"] + [0.001, 0, 0])) is None
        # handle points on the rim line: no direction out of it
        assert estimate_handle_frame(dict(seen, handle_top=np.array([0.02, 0, 0.118]),
                                          handle_outer=np.array([0.03, 0, 0.118]))) is None

    def test_degenerate_axis(self):
        # ends closer than MIN_AXIS_LENGTH_M count as missing: no axis from the handle alone, the mug's up otherwise
        collapsed = dict(MUG, handle_top=MUG["handle_bottom"] + [0, 0, 0.004])
        assert estimate_handle_frame({k: collapsed[k] for k in ("handle_top", "handle_bottom", "handle_outer")}) is None
        np.testing.assert_allclose(estimate_handle_frame(collapsed).axis, [0, 0, 1], atol=1e-12)

    def test_approach_fallbacks(self):
        handle = {k: MUG[k] for k in ("handle_top", "handle_bottom", "handle_outer")}
        # nothing but the handle: no approach; the rotation's x points from the origin towards the camera
        # (the parent frame's origin), orthogonal to the axis
        f = estimate_handle_frame(handle)
        assert f.approach is None
        np.testing.assert_allclose(f.rotation()[:, 0], [-1, 0, 0], atol=1e-12)
        assert math.isnan(frame_errors(f, truth_handle_frame(MUG))[2])
        # one far-side point is enough: centre -> handle is still +x
        for name in ("rim_front", "body_front"):
            f = estimate_handle_frame({**handle, name: MUG[name]})
            np.testing.assert_allclose(f.approach, [1, 0, 0], atol=1e-12)
            assert name in f.keypoints
        # rim_back alone (next to the handle) is not a centre
        assert estimate_handle_frame({**handle, "rim_back": MUG["rim_back"]}).approach is None
        # a centre on the handle axis gives no direction
        assert estimate_handle_frame({**handle, "bottom_center": np.array([0.075, 0, -0.1])}).approach is None

    def test_rotation_without_approach_is_right_handed(self):
        f = HandleFrame(np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0]), None)
        R = f.rotation()
        np.testing.assert_allclose(R[:, 0], [0, 0, -1])
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        with pytest.raises(ValueError, match="parallel"):
            HandleFrame(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]), None).rotation()

    def test_flipped_axis_is_180_degrees(self):
        pts = dict(MUG, handle_top=MUG["handle_bottom"], handle_bottom=MUG["handle_top"])
        assert frame_errors(estimate_handle_frame(pts), truth_handle_frame(MUG))[1] == pytest.approx(180.0)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="handle_top.*shape"):
            estimate_handle_frame(dict(MUG, handle_top=np.zeros(2)))
        with pytest.raises(ValueError, match="no complete mug handle frame"):
            truth_handle_frame({k: MUG[k] for k in ("handle_top", "handle_bottom")})


def frame(x: float, axis=(0.0, 0.0, 1.0), approach=(1.0, 0.0, 0.0)) -> HandleFrame:
    a = np.asarray(axis, float)
    return HandleFrame(np.array([x, 0.0, 0.0]), a / np.linalg.norm(a),
                       None if approach is None else np.asarray(approach, float), ("handle_top",))


class TestFilter:
    def test_none_passes_frames_through(self):
        f = HandleFrameFilter()
        a = frame(1.0)
        assert f.update(a) is a and f.update(None) is None

    def test_ema(self):
        f = HandleFrameFilter(FrameFilterConfig("ema", alpha=0.5))
        assert f.update(frame(0.0)).origin[0] == 0.0
        out = f.update(frame(0.01, axis=(1.0, 0.0, 0.0), approach=(0.0, 1.0, 0.0)))
        assert out.origin[0] == pytest.approx(0.005)
        # half way between z and x: 45 degrees; the approaches (x, y) average to (1, 1, 0) / sqrt 2, which
        # re-orthogonalised against the new axis (1, 0, 1) / sqrt 2 is (1, 2, -1) / sqrt 6
        np.testing.assert_allclose(out.axis, np.array([1, 0, 1]) / math.sqrt(2), atol=1e-12)
        np.testing.assert_allclose(out.approach, np.array([1, 2, -1]) / math.sqrt(6), atol=1e-12)
        assert out.approach @ out.axis == pytest.approx(0, abs=1e-12)
        # a frame without approach keeps the previous one
        assert f.update(frame(0.0, approach=None)).approach is not None

    def test_median_rejects_an_outlier(self):
        f = HandleFrameFilter(FrameFilterConfig("median", window=3))
        for x in (0.0, 0.01, 1.0):  # 1 m off in one frame
            out = f.update(frame(x))
        assert out.origin[0] == pytest.approx(0.01)
        for x in (0.02, 0.03):
            out = f.update(frame(x))
        assert out.origin[0] == pytest.approx(0.03)  # median of 1.0, 0.02, 0.03: the outlier never wins

    @pytest.mark.parametrize("method", ["ema", "median"])
    def test_holds_for_max_gap_frames_then_resets(self, method):
        f = HandleFrameFilter(FrameFilterConfig(method, alpha=0.5, max_gap=2))
        f.update(frame(0.0))
        held = f.update(frame(0.02))
        assert f.update(None) is held and f.update(None) is held  # two missing frames are bridged
        assert f.update(None) is None  # the third resets the filter
        assert f.update(frame(1.0)).origin[0] == pytest.approx(1.0)  # a fresh start, no memory of 0 and 0.02

    @pytest.mark.parametrize(("cfg", "match"), [
        (FrameFilterConfig("kalman"), "method"), (FrameFilterConfig("ema", alpha=0.0), "alpha"),
        (FrameFilterConfig("median", window=0), "window"), (FrameFilterConfig(max_gap=-1), "max_gap")])
    def test_bad_config(self, cfg, match):
        with pytest.raises(ValueError, match=match):
            HandleFrameFilter(cfg)
