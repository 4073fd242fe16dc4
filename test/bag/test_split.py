"""Split bags (BagWriter with a duration or size limit, as `bag record --max-bag-duration / --max-bag-size`
writes them): every file is complete on its own, metadata.yaml lists them all, and info, process, recover
and training read them as they read the one-file bag. Play and record of split bags over DDS:
test_record_crash.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dense_descriptor_ros.bag.io import BagError, BagReader, BagWriter
from dense_descriptor_ros.bag.recover import recover_bag

from .conftest import FRAMES

CLI = [sys.executable, "-m", "dense_descriptor_ros.bag.cli"]


def split_copy(src: Path, dst: Path, storage: str = "mcap", **limits) -> Path:
    with BagReader(src) as r, BagWriter(dst, storage, **limits) as w:
        conns = {t: w.add_topic(t, r.topics[t].msgtype, r.topics[t].offered_qos, *r.topics[t].msgdef)
                 for t in sorted(r.topics)}
        for topic, _, ts, raw in r.messages():
            w.write(conns[topic], ts, raw)
    return dst


def _all(path: Path) -> list[tuple[str, int, bytes]]:
    with BagReader(path) as r:
        return [(t, ts, bytes(raw)) for t, _, ts, raw in r.messages()]


@pytest.fixture(scope="module")
def split_bags(sample_bag, short_bags, tmp_path_factory) -> dict[str, Path]:
    """The sample split every 10 frames (mcap), the short bag split at 600 kB (sqlite3)."""
    d = tmp_path_factory.mktemp("split")
    return {"mcap": split_copy(sample_bag, d / "by_time", max_duration_ns=333_333_000),
            "sqlite3": split_copy(short_bags["sqlite3"], d / "by_size", "sqlite3", max_bytes=600_000)}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_every_file_is_complete_and_listed(split_bags, sample_bag, short_bags, storage):
    bag = split_bags[storage]
    original = sample_bag if storage == "mcap" else short_bags["sqlite3"]
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    names = meta["relative_file_paths"]
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert names == [f"{bag.name}_{i}{suffix}" for i in range(len(names))]
    assert sorted(p.name for p in bag.iterdir()) == sorted([*names, "metadata.yaml"])
    assert [f["path"] for f in meta["files"]] == names and meta["message_count"] == len(_all(original))
    per_file = []
    for name, f in zip(names, meta["files"], strict=True):
        with BagReader(bag / name) as r:  # each file on its own: summary, footer / committed
            per_file.append([(t, ts, bytes(raw)) for t, _, ts, raw in r.messages()])
            assert r.message_count == f["message_count"] > 0
            assert r.start_ns == f["starting_time"]["nanoseconds_since_epoch"]
    assert [m for f in per_file for m in f] == _all(original) == _all(bag)
    if storage == "mcap":
        assert len(names) == 3  # 30 frames, 10 a file
        assert [len(f) for f in per_file] == [40, 40, 40]
    else:
        assert len(names) >= 3
        sizes = [(bag / n).stat().st_size for n in names]
        biggest = max(len(raw) for _, _, raw in _all(original))
        assert all(s <= 600_000 + 2 * biggest for s in sizes[:-1])


def test_info_lists_the_files(split_bags):
    p = subprocess.run([*CLI, "info", str(split_bags["mcap"])], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "files:       3 (split): by_time_0.mcap, by_time_1.mcap, by_time_2.mcap" in p.stdout
    assert "messages:    120" in p.stdout and "30.00 Hz" in p.stdout


def test_recover_keeps_the_files(split_bags, tmp_path):
    for storage, bag in split_bags.items():
        s = recover_bag(bag, tmp_path / storage, log=lambda *a: None)
        assert all(f.complete for f in s.files) and len(s.files) == len(list(bag.glob("*_*.*")))
        with BagReader(tmp_path / storage) as r:
            assert len(r.files) == len(s.files)
        assert _all(tmp_path / storage) == _all(bag)


def test_recover_a_split_recording_whose_last_file_was_cut(split_bags, tmp_path):
    import shutil

    d = tmp_path / ".rec.partial-x" / "rec"
    shutil.copytree(split_bags["mcap"], d)
    (d / "metadata.yaml").unlink()  # a killed recording has none
    last = d / "by_time_2.mcap"
    last.write_bytes(last.read_bytes()[:len(last.read_bytes()) // 2])
    s = recover_bag(d.parent, log=lambda *a: None)
    assert Path(s.out) == tmp_path / "rec"
    assert [f.complete for f in s.files] == [True, True, False]
    assert _all(tmp_path / "rec")[:80] == _all(split_bags["mcap"])[:80] and 80 <= s.messages < 120


def test_process_reads_a_split_bag_as_the_whole(split_bags, short_bags, model_files, tmp_path):
    from dense_descriptor_ros.bag.process import ProcessOptions, process_bag
    from dense_descriptor_ros.node.params import NodeSettings

    settings = NodeSettings(model_path=str(model_files / "m.onnx"), keypoints_file=str(model_files / "kp.json"))
    a = process_bag(split_bags["sqlite3"], tmp_path / "a", settings, ProcessOptions(progress=False),
                    log=lambda *a: None)
    b = process_bag(short_bags["sqlite3"], tmp_path / "b", settings, ProcessOptions(progress=False),
                    log=lambda *a: None)
    assert a.frames_processed == b.frames_processed == FRAMES
    assert _all(tmp_path / "a") == _all(tmp_path / "b")


def test_training_reads_a_split_bag_as_the_whole(split_bags, sample_bag):
    import torch

    from dense_descriptor_ros.train.config import DataConfig
    from dense_descriptor_ros.train.datasets import build_train_dataset

    def items(path):
        cfg = DataConfig(kind="bag", bag_path=str(path), image_size=[48, 64], n_matches=16,
                         bag_depth_tolerance=[0.003, 0.0])
        ds = build_train_dataset(cfg)
        return len(ds), ds.mode, ds[(3, 7)]

    (n_a, mode_a, a), (n_b, mode_b, b) = items(split_bags["mcap"]), items(sample_bag)
    assert n_a == n_b == 30 and mode_a == mode_b == "multiview"
    assert torch.equal(a.image_a, b.image_a) and torch.equal(a.image_b, b.image_b)
    for k in ("matches_a", "matches_b", "match_valid", "nonmatch_a", "nonmatch_b"):
        assert torch.equal(getattr(a.pairs, k), getattr(b.pairs, k)), k
    assert a.pairs.match_valid.any()


def test_bad_split_arguments(tmp_path):
    with pytest.raises(BagError, match=">= 0"):
        BagWriter(tmp_path / "x", max_bytes=-1)
    with pytest.raises(BagError, match="splitting"), BagWriter(tmp_path / "y") as w:
        w.split()
    p = subprocess.run([*CLI, "record", str(tmp_path / "z"), "/x", "--max-size", "0"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "--max-size" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*CLI, "record", str(tmp_path / "z"), "/x", "--max-size", "5", "--max-bag-size", "9"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not allowed with" in p.stderr
