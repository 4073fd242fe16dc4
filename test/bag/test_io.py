"""Reading and writing real rosbag2 files in both storages: round trips, compression, the atomic writer,
`bag info`, and what a damaged or wrong input says."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from dense_descriptor_ros.bag.info import bag_summary, format_summary
from dense_descriptor_ros.bag.io import BagError, BagReader, BagWriter, detect_storage, ensure_type, new_typestore
from dense_descriptor_ros.ros_core import image_to_rgb, rgb_to_image

from .conftest import FRAMES, copy_bag, messages

CLI = [sys.executable, "-m", "dense_descriptor_ros.bag.cli"]


def _image(store, stamp_ns: int, rgb: np.ndarray):
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                                                              nanosec=stamp_ns % 10**9),
                                      frame_id="cam")
    return t["sensor_msgs/msg/Image"](header=header, **rgb_to_image(rgb).to_kwargs("numpy"))


@pytest.mark.parametrize(("storage", "compression", "expect"), [
    ("mcap", "auto", "zstd (mcap chunks)"), ("mcap", "none", "none"),
    ("sqlite3", "auto", "none"), ("sqlite3", "zstd", "zstd (message)")])
def test_round_trip(tmp_path, storage, compression, expect):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (12, 16, 3), np.uint8) for _ in range(3)]
    with BagWriter(tmp_path / "b", storage, compression) as w:
        conn = w.add_topic("/cam/image", "sensor_msgs/msg/Image")
        raws = [w.write_msg(conn, 100 + i, _image(w.store, 10**9 + i, img)) for i, img in enumerate(imgs)]
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["b"]  # no temporary folder left
    assert detect_storage(tmp_path / "b") == storage
    with BagReader(tmp_path / "b") as r:
        assert r.storage == storage and r.compression == expect
        assert r.topics["/cam/image"].count == 3 and r.message_count == 3
        assert (r.start_ns, r.end_ns) == (100, 102)
        got = list(r.messages())
        assert [g[2] for g in got] == [100, 101, 102] and [bytes(g[3]) for g in got] == raws
        back = [image_to_rgb(r.deserialize(g[3], g[1])) for g in got]
    for a, b in zip(back, imgs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_copies_are_byte_identical_across_storages(short_bags, sample_bag):
    """The short bags are raw copies of the sample: every message's bytes and log time survive both plugins."""
    ref = messages(sample_bag, "/color/image_raw")[:FRAMES]
    for path in short_bags.values():
        assert messages(path, "/color/image_raw") == ref


def test_bare_storage_file_reads_without_metadata(short_bags):
    mcap = next(short_bags["mcap"].glob("*.mcap"))
    with BagReader(mcap) as r:
        assert r.storage == "mcap" and r.topics["/color/image_raw"].count == FRAMES


def test_writer_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), BagWriter(tmp_path / "b") as w:
        conn = w.add_topic("/x", "std_msgs/msg/String")
        w.write_msg(conn, 1, w.store.types["std_msgs/msg/String"](data="hi"))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_existing_output_and_overwrites_on_request(tmp_path):
    (tmp_path / "b").mkdir()
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "b")
    with BagWriter(tmp_path / "b", overwrite=True) as w:
        w.add_topic("/x", "std_msgs/msg/String")
    assert (tmp_path / "b" / "metadata.yaml").is_file() and len(list(tmp_path.iterdir())) == 1


def test_unknown_type_without_definition(tmp_path):
    with pytest.raises(BagError, match="unknown"), BagWriter(tmp_path / "b") as w:
        w.add_topic("/x", "nobody_msgs/msg/Nothing")
    store = new_typestore()
    assert ensure_type(store, "sensor_msgs/msg/Image") and not ensure_type(store, "nobody_msgs/msg/Nothing")


def test_custom_type_defined_in_the_bag_is_readable(tmp_path):
    """A bag carries its own definitions: a type this typestore lacks still decodes and shows as known."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg("int32 answer\nstring note", "acme_msgs/msg/Thing"))
    with BagWriter(tmp_path / "b", store=store) as w:
        conn = w.add_topic("/thing", "acme_msgs/msg/Thing")
        w.write_msg(conn, 5, store.types["acme_msgs/msg/Thing"](answer=42, note="hi"))
    with BagReader(tmp_path / "b") as r:
        assert r.known_type("acme_msgs/msg/Thing")
        (_, t, _, raw), = r.messages()
        assert r.deserialize(raw, t).answer == 42


def test_info(short_bags):
    s = bag_summary(short_bags["sqlite3"])
    assert s.storage == "sqlite3" and s.message_count == 4 * FRAMES
    rates = {t.name: t.rate_hz for t in s.topics}
    assert rates["/color/image_raw"] == pytest.approx(30.0, rel=1e-6)
    text = format_summary(s)
    for word in ("sqlite3", "/aligned_depth_to_color/image_raw", "sensor_msgs/msg/CameraInfo", "30.00 Hz",
                 "best_effort", "duration"):
        assert word in text


# ------------------------------------------------------------------------------------------ bad bags
def _truncated(short_bags, tmp_path):
    d = tmp_path / "trunc"
    shutil.copytree(short_bags["mcap"], d)
    f = next(d.glob("*.mcap"))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    return d


def _garbage(short_bags, tmp_path):
    f = tmp_path / "garbage.mcap"
    f.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 10)
    return f


def _corrupt_chunk(short_bags, tmp_path):
    """The mcap's middle overwritten: the index is intact, a chunk's compressed data is not."""
    d = tmp_path / "corrupt"
    shutil.copytree(short_bags["mcap"], d)
    f = next(d.glob("*.mcap"))
    data = bytearray(f.read_bytes())
    mid = len(data) // 3
    data[mid:mid + 4000] = bytes(4000)
    f.write_bytes(bytes(data))
    return d


def _no_metadata(short_bags, tmp_path):
    d = tmp_path / "nometa"
    shutil.copytree(short_bags["mcap"], d)
    (d / "metadata.yaml").unlink()
    return d


def _empty_file(short_bags, tmp_path):
    f = tmp_path / "empty.db3"
    f.write_bytes(b"")
    return f


def _text_file(short_bags, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a bag")
    return f


@pytest.mark.parametrize(("make", "message"), [
    (_truncated, "truncated"), (_garbage, "corrupt or truncated"), (_corrupt_chunk, "corrupt or truncated"),
    (_no_metadata, "no metadata.yaml.*pass that file"), (_empty_file, "empty"),
    (_text_file, "neither a rosbag2 folder"),
    (lambda b, p: p / "missing", "does not exist")])
def test_bad_bags_give_one_clear_error(short_bags, tmp_path, make, message):
    path = make(short_bags, tmp_path)
    with pytest.raises(BagError, match=message):
        with BagReader(path) as r:
            for _ in r.messages():
                pass


def test_info_cli_on_a_truncated_bag_prints_no_traceback(short_bags, tmp_path):
    p = subprocess.run([*CLI, "info", str(_truncated(short_bags, tmp_path))], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2
    assert "error:" in p.stderr and "truncated" in p.stderr and "Traceback" not in p.stderr


def test_missing_topic(short_bags):
    with BagReader(short_bags["mcap"]) as r, pytest.raises(BagError, match="has no topic /nope.*topics: /"):
        list(r.messages(["/nope"]))


def test_copy_helper_keeps_only_the_first_frames(sample_bag, tmp_path):
    out = copy_bag(sample_bag, tmp_path / "two", "mcap", 2, topics=["/color/image_raw"])
    with BagReader(out) as r:
        assert list(r.topics) == ["/color/image_raw"] and r.message_count == 2
