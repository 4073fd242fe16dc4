"""`dense-descriptor eval` end to end: report files, reproducible pair lists, user errors; markdown tables."""

from __future__ import annotations

import argparse
import json
import math

import cv2
import pytest

from dense_descriptor_ros.eval.cli import register
from dense_descriptor_ros.eval.report import correspondence_overlay, markdown_report, method_styles


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dense-descriptor")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def report_dir(sim_root, photo_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_report")
    rc = run_cli(["--baselines", "rgb", "lab", "rootsift", "random:lite", "--data", str(sim_root),
                  str(photo_dir), "--split", "all", "--pairs-per-set", "2", "--points", "40",
                  "--size", "128x96", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_report_files(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    assert list(report["methods"]) == ["rgb", "lab", "rootsift", "random:lite"]
    assert report["meta"]["pairs_per_set"] == {"cross_view": 2, "cross_instance": 2, "keypoints": 2,
                                               "augment": 2, "real_photo": 2, "real_stereo": 2}
    lite = report["methods"]["random:lite"]
    assert lite["dim"] == 16 and lite["stride"] == 4 and lite["ms_per_frame"] > 0
    assert set(lite["sets"]) == {"cross_view", "cross_instance", "keypoints", "augment", "real_photo", "real_stereo"}
    assert set(lite["sets"]["cross_view"]) >= {"object", "all"}
    assert "all" not in lite["sets"]["cross_instance"]  # cross-instance points are all on the object
    cv = lite["sets"]["cross_view"]["object"]
    assert 0 <= cv["pck@1"] <= cv["pck@3"] <= cv["pck@5"] <= cv["pck@10"] <= 1 and cv["n_3d"] > 0
    assert 0 <= lite["sets"]["cross_instance"]["part_accuracy"] <= 1
    assert lite["sets"]["keypoints"]["per_keypoint"]
    # per category: the points of each category add up to the set's, with part accuracy on cross-instance
    for set_name in ("cross_instance", "keypoints"):
        per = lite["sets"][set_name]["per_category"]
        assert per and set(per) <= {"mug", "bowl", "bottle", "can", "box"}
        assert sum(c["n"] for c in per.values()) == lite["sets"][set_name]["object"]["n"]
    ci = lite["sets"]["cross_instance"]
    n_ok = sum(c["part_accuracy"] * c["n"] for c in ci["per_category"].values())
    assert n_ok == pytest.approx(ci["part_accuracy"] * ci["object"]["n"])
    assert set(lite["matching"]) == {"cross_view", "augment"}
    assert set(lite["matching"]["cross_view"]) == {"coarse", "refined"}
    assert lite["health"]["effective_rank"] > 1 and lite["health"]["collapsed"] == 0
    curve = report["pck_curves"]["curves"]["rgb"]["cross_view"]["object"]
    assert len(curve) == len(report["pck_curves"]["thresholds_px"]) == 51
    md = (report_dir / "report.md").read_text()
    for name in report["methods"]:
        assert f"`{name}`" in md
    assert "| method | D | stride | ms/frame |" in md and "coarse offset px" in md and "eff. rank" in md
    assert "## cross-instance per category (PCK@10 / part accuracy / median px)" in md
    for f in report["meta"]["figures"]:
        img = cv2.imread(str(report_dir / f))
        assert img is not None and min(img.shape[:2]) > 50, f
        assert f"({f})" in md
    assert {"pck_curves.png", "error_cdf.png", "descriptor_scatter.png", "correspondences_cross_view.png",
            "descriptors_augment.png", "instance_scatter.png"} <= set(report["meta"]["figures"])


def test_pair_list_reuse_scores_the_same_pairs(report_dir, tmp_path):
    """Scoring a method again on the saved pairs.json reproduces its numbers exactly."""
    rc = run_cli(["--baselines", "rgb", "--pairs", str(report_dir / "pairs.json"), "--out", str(tmp_path),
                  "--no-figures", "--no-progress"])
    assert rc == 0
    assert (tmp_path / "pairs.json").read_text() == (report_dir / "pairs.json").read_text()
    first = json.loads((report_dir / "report.json").read_text())["methods"]["rgb"]
    again = json.loads((tmp_path / "report.json").read_text())["methods"]["rgb"]
    assert again["sets"] == first["sets"] and again["matching"] == first["matching"]


def test_sets_pick_from_a_pair_list(report_dir, tmp_path, capsys):
    """--sets with --pairs scores only the file's pairs of those sets, with the same numbers as the whole file."""
    rc = run_cli(["--baselines", "rgb", "--pairs", str(report_dir / "pairs.json"), "--sets", "augment", "real_photo",
                  "--out", str(tmp_path / "o"), "--no-figures", "--no-progress", "--no-matching"])
    assert rc == 0
    again = json.loads((tmp_path / "o" / "report.json").read_text())["methods"]["rgb"]
    first = json.loads((report_dir / "report.json").read_text())["methods"]["rgb"]
    assert set(again["sets"]) == {"augment", "real_photo"}
    assert all(again["sets"][k] == first["sets"][k] for k in again["sets"])
    rc = run_cli(["--baselines", "rgb", "--pairs", str(tmp_path / "o" / "pairs.json"), "--sets", "cross_view",
                  "--out", str(tmp_path / "p"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "has no pairs of the sets cross_view (it has augment, real_photo)" in err, err


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "samples_heldout"], "nothing to evaluate"),
    (["--baselines", "sift"], "neither a model file nor a method name"),
    (["--baselines", "rgb:2"], "takes no argument"),
    (["--baselines", "rgb", "--data", "/no/such/folder"], "neither a synthetic dataset"),
    (["--baselines", "rgb", "--sets", "cross_view"], "give --data"),
    (["--model", "/no/model.safetensors"], "neither a model file"),
])
def test_user_errors_are_one_line(argv, message, tmp_path, capsys):
    assert run_cli([*argv, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_markdown_from_a_handmade_report():
    def method(auc):
        return {"dim": 3, "stride": 1, "ms_per_frame": 1.5, "health": {"effective_rank": 2.0},
                "sets": {"cross_view": {"pairs": 1, "object": {"n": 4, "pck@3": 0.5, "auc@25": auc}}}}

    report = {"meta": {"split": "test", "pairs_per_set": {"cross_view": 1}},
              "methods": {"a": method(None), "b": method(0.25)}}
    md = markdown_report(report)
    assert "| method | D | stride | ms/frame | cross-view PCK@3 | cross-view AUC@25 | eff. rank |" in md
    assert "| `a` | 3 | 1 | 1.5 | 0.500 | – | 2.00 |" in md  # None (NaN in the run) shows as a dash
    assert "| `b` | 3 | 1 | 1.5 | 0.500 | 0.250 | 2.00 |" in md
    assert "## cross-view (object pixels)" in md and "keypoint" not in md.split("## Summary")[1]


def test_overlay_colours_by_error():
    import torch

    img = torch.zeros(3, 20, 30)
    out = correspondence_overlay(img, img, torch.tensor([[5.0, 5.0], [5.0, 15.0]]),
                                 torch.tensor([[5.0, 5.0], [25.0, 15.0]]), torch.tensor([0.0, math.inf]))
    assert out.shape == (20, 60, 3)
    assert tuple(out[5, 5]) == (40, 220, 40) and tuple(out[15, 55]) == (240, 40, 40)  # green exact, red off


def test_every_method_gets_its_own_line_style():
    """14 methods (the reference comparison) in one figure: no two share a colour, and the kind of method
    shows in the line (trained solid, fixed baselines dashed, random initialisation dotted)."""
    names = ["default", "lite_s300", "fpn18_s300", "don34_d3_s300", "don34_d16_s300", "rootsift", "rgb", "lab",
             "random:lite", "random:fpn_resnet18", "random:fpn_resnet34", "random:don_resnet18",
             "random:don_resnet34:3", "random:don_resnet34"]
    styles = method_styles(names)
    assert len({tuple(st["color"]) for st in styles.values()}) == len(names)
    assert {styles[n]["linestyle"] for n in names[:5]} == {"-"}
    assert {styles[n]["linestyle"] for n in names[5:8]} == {"--"}
    assert {styles[n]["linestyle"] for n in names[8:]} == {":"}
