"""The `sim generate` pipeline: on-disk format, splits, determinism, resume and user errors."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dense_descriptor_ros.sim.cli import register
from dense_descriptor_ros.sim.format import VIEW_FILES, read_view
from dense_descriptor_ros.sim.generator import (
    SCENE_SPLIT_PATTERN,
    GenerateError,
    generate,
    instance_pools,
    scene_split,
)

from .simdata import TINY, tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory)


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_and_metadata(tiny):
    meta = json.loads((tiny / "dataset.json").read_text())
    assert meta["format_version"] == "1.1"
    assert meta["generator"] == dataclasses.asdict(TINY)
    assert [c["name"] for c in meta["categories"]] == ["mug", "bowl", "bottle", "can", "box", "distractor"]
    assert meta["splits"]["scenes"]["train"] == ["scene_000000", "scene_000001"]
    for i in range(2):
        scene = json.loads((tiny / "scenes" / f"scene_{i:06d}" / "scene.json").read_text())
        assert len(scene["views"]) == 3 and scene["split"] == "train"
        cats = [o["category"] for o in scene["objects"]]
        assert 4 <= sum(c != "distractor" for c in cats)
        for o in scene["objects"]:
            T = np.array(o["T_world_object"])
            np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
            assert -0.05 < T[2, 3] < 0.3  # resting on the table
        for v in scene["views"]:
            for suffix in VIEW_FILES:
                assert (tiny / "scenes" / scene["name"] / f"{v['index']:03d}_{suffix}").is_file()
            K = np.array(v["K"])
            assert K[0, 2] == 160 and K[1, 2] == 119  # TinyRenderer's principal point
            img = read_view(tiny / "scenes" / scene["name"], v["index"])
            assert img["rgb"].shape == (240, 320, 3) and img["rgb"].dtype == np.uint8
            assert img["depth"].dtype == np.float32 and (img["depth"] > 0).all()  # the room closes the view
            # 16-bit millimetres agree with the float depth
            np.testing.assert_allclose(img["depth_mm"], img["depth"], atol=0.0005 + 1e-6)
            inst, cat, part = img["instance"], img["category"], img["part"]
            ids = {o["instance_id"]: o for o in scene["objects"]}
            assert set(np.unique(inst)) - {0} <= set(ids)
            for i_, o in ids.items():  # category / part labels are consistent with the instance
                m = inst == i_
                if m.any():
                    assert (cat[m] == o["category_id"]).all()
                    assert set(np.unique(part[m])) <= set(o["part_ids"]) | ({0} if o["category"] == "distractor"
                                                                             else set())
            has_coords = np.isfinite(img["coords"]).all(-1)
            assert np.array_equal(has_coords, (cat > 0) & (cat < 6))


def test_scene_and_instance_splits():
    assert [scene_split(i) for i in range(10)] == list(SCENE_SPLIT_PATTERN)
    assert scene_split(17) == "test_scenes" and scene_split(29) == "test"
    pools = instance_pools(TINY)
    keys = {s: {r.key for r in pools[s]} for s in pools}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"]
    assert len(keys["train"]) == 5 * 48


def test_deterministic_across_workers_and_resume(tiny, tmp_path):
    # same settings with 2 worker processes: byte-identical files
    other = tmp_path / "again"
    report = generate(TINY, other, workers=2, progress=False)
    assert report.views_done == 6
    reference = digests(tiny)
    assert digests(other) == reference
    # interrupted run: one scene missing, another half-written; resume redoes only the missing one
    shutil.rmtree(other / "scenes" / "scene_000001")
    (other / "scenes" / ".scene_000001.partial").mkdir()
    (other / "scenes" / ".scene_000001.partial" / "000_rgb.png").write_bytes(b"truncated")
    report = generate(TINY, other, workers=1, progress=False)
    assert (report.scenes_done, report.scenes_skipped) == (1, 1)
    assert digests(other) == reference
    assert generate(TINY, other, workers=1, progress=False).views_done == 0


def test_user_errors(tiny, tmp_path):
    with pytest.raises(GenerateError, match="other settings"):
        generate(dataclasses.replace(TINY, seed=1), tiny, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(GenerateError, match="not empty"):
        generate(TINY, tmp_path / "junk", progress=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(GenerateError, match="cannot write"):
        generate(TINY, tmp_path / "afile" / "out", progress=False)
    with pytest.raises(ValueError, match="objects_min"):
        generate(dataclasses.replace(TINY, objects_min=5, objects_max=2), tmp_path / "o", progress=False)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dense-descriptor")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_arguments_and_errors(tmp_path, capsys):
    args = parse(["sim", "generate", "--out", str(tmp_path / "d"), "--scenes", "3", "--views", "2",
                  "--size", "640x480", "--seed", "5", "--workers", "2"])
    assert (args.scenes, args.views, args.size, args.seed, args.workers) == (3, 2, (640, 480), 5, 2)
    for bad in (["--size", "640"], ["--size", "8x8"], ["--views", "0"], ["--scenes", "-1"], ["--workers", "x"]):
        with pytest.raises(SystemExit) as e:
            parse(["sim", "generate", "--out", str(tmp_path), "--scenes", "1", "--views", "1", *bad])
        assert e.value.code == 2
    capsys.readouterr()
    (tmp_path / "afile").write_text("x")
    args = parse(["sim", "generate", "--out", str(tmp_path / "afile"), "--scenes", "1", "--views", "1"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err


def test_cli_contact_sheet(tiny, tmp_path):
    out = tmp_path / "sheet.png"
    args = parse(["sim", "sheet", "--data", str(tiny), "--out", str(out), "--views", "0:0", "1:2"])
    assert args.func(args) == 0
    import cv2

    sheet = cv2.imread(str(out))
    assert sheet.shape[0] > 2 * 240 and sheet.shape[1] == 4 * (320 + 4)
