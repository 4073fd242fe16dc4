"""The main job end to end, shortened: it trains, scores, and writes its picture and summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_writes_picture_and_summary(tmp_path):
    env = dict(os.environ, DENSE_DESCRIPTOR_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "dense_descriptor_ros.cli", "demo", "--out", str(tmp_path / "demo"),
                        "--steps", "2", "--size", "96x64", "--val-pairs", "2"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["steps"] == 2 and 0.0 <= summary["trained"]["pck@5"] <= 1.0
    assert (tmp_path / "demo" / "descriptors_pca.png").stat().st_size > 1000
    assert "random init: PCK@5px" in r.stdout


def test_demo_rejects_bad_size(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dense_descriptor_ros.cli", "demo", "--size", "big"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--size" in r.stderr and "Traceback" not in r.stderr
