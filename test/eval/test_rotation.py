"""The rotation evaluation (issue #16): exact rotated pairs, repeatability by hand, and the curve end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dense_descriptor_ros.eval.methods import build_method
from dense_descriptor_ros.eval.rotation import evaluate_rotation, repeatability, rotated_pair

from ..conftest import textured_image


@pytest.fixture(scope="module")
def canvas():
    return textured_image(np.random.default_rng(5), 96, 128)


def test_zero_degrees_is_the_identity(canvas):
    p = rotated_pair(canvas, (60, 80), 0.0)
    ys, xs = np.mgrid[0:60, 0:80]
    np.testing.assert_allclose(p.map_ab, np.stack([xs, ys], -1), atol=1e-3)
    assert p.valid.all() and np.array_equal(p.image_a, p.image_b)


@pytest.mark.parametrize("angle", [90.0, 180.0, 33.0])
def test_the_map_is_the_rotation_about_the_centre(canvas, angle):
    h, w = 60, 80
    p = rotated_pair(canvas, (h, w), angle)
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    pts = np.array([[10.0, 12.0], [70.0, 50.0], [40.0, 30.0]])
    got = p.map_ab[pts[:, 1].astype(int), pts[:, 0].astype(int)]
    # the distance to the centre is kept and the angle between A's and B's offsets is the rotation
    va, vb = pts - c, got - c
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1), atol=0.05)
    turn = np.degrees(np.arctan2(va[:, 0] * vb[:, 1] - va[:, 1] * vb[:, 0], (va * vb).sum(1)))
    np.testing.assert_allclose(np.abs(turn[np.linalg.norm(va, axis=1) > 1]), angle if angle <= 180 else 360 - angle,
                               atol=0.1)
    # B shows at map_ab[p] what A shows at p (bilinear resampling of the same canvas)
    y, x = 30, 40
    bx, by = np.round(p.map_ab[y, x]).astype(int)
    if angle in (90.0, 180.0):
        np.testing.assert_array_equal(p.image_b[by, bx], p.image_a[y, x])


def test_repeatability_by_hand():
    valid = np.ones((10, 10), bool)
    map_ab = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1) + [1.0, 0.0]  # B = A moved 1 px right
    uv_a = np.array([[2.0, 2.0], [5.0, 5.0], [9.0, 9.0]])
    uv_b = np.array([[3.0, 2.0], [6.0, 9.0]])
    r, n = repeatability(uv_a, uv_b, map_ab, valid, tol=1.0)
    assert n == 3 and r == pytest.approx(1 / 3)
    valid[9, 9] = False
    assert repeatability(uv_a, uv_b, map_ab, valid, tol=1.0) == (pytest.approx(0.5), 2)
    assert repeatability(np.zeros((0, 2)), uv_b, map_ab, valid)[1] == 0


def test_curve_of_raw_rgb_is_flat_and_a_grid_descriptor_falls(canvas):
    """Raw RGB does not care about rotation; dense RootSIFT on a fixed grid does (no orientation assignment)."""
    methods = [build_method("rgb"), build_method("rootsift")]
    res = evaluate_rotation(methods, [canvas], (60, 80), angles=(0, 90, 180), points=60, seed=0)
    s = res.summary()
    assert s["rgb"]["0"]["pck@3"] > 0.3 and abs(s["rgb"]["180"]["pck@3"] - s["rgb"]["0"]["pck@3"]) < 0.2
    assert s["rootsift"]["0"]["pck@3"] > 0.8 and s["rootsift"]["90"]["kept"] < 0.5
    assert s["rgb"]["0"]["kept"] == 1.0 and s["rgb"]["180"]["n"] == 60


def test_lifted_and_oriented_methods_keep_the_curve_and_know_the_angle(canvas):
    """The grid RootSIFT lifted to C4 and pooled is exactly invariant at 180 degrees (the same window turned), and
    the rotation-normalised RootSIFT keeps its matches at any angle; the rings of both return the rotation."""
    methods = [build_method("rootsift"), build_method("c4:rootsift"), build_method("rootsift_oriented")]
    s = evaluate_rotation(methods, [canvas], (60, 80), angles=(0, 180), points=60, seed=0).summary()
    assert s["rootsift"]["180"]["kept"] < 0.3
    assert s["c4:rootsift"]["180"]["kept"] > 0.9 and s["rootsift_oriented"]["180"]["kept"] > 0.9
    for name in ("c4:rootsift", "rootsift_oriented"):
        assert s[name]["180"]["orientation_n"] > 5 and s[name]["180"]["orientation@10"] > 0.9
        assert s[name]["0"]["orientation_median_deg"] < 1.0


def test_command_end_to_end(tmp_path):
    from dense_descriptor_ros.cli import main

    out = tmp_path / "rot"
    assert main(["rotation", "--baselines", "rgb", "--out", str(out), "--angles", "0", "45", "--points", "20",
                 "--size", "80x60", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]["rgb"]) == {"0", "45"} and report["meta"]["photos"] >= 5
    assert (out / "rotation_curve.png").stat().st_size > 0 and "PCK@3" in (out / "report.md").read_text()
    assert "orientation from circular matching" in (out / "report.md").read_text()
    assert main(["rotation", "--out", str(out)]) == 2
