"""`bag recover` and what readers say about unfinished bags: a writer process killed with SIGKILL after
flushing, bags cut at 100 random byte offsets in both storages (no crash, no damaged message, every message
before the cut that the format lets survive), and the one-line errors and hints of the CLI."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dense_descriptor_ros.bag.info import bag_summary
from dense_descriptor_ros.bag.io import BagError, BagReader
from dense_descriptor_ros.bag.recover import default_recover_out, recover_bag, scan_mcap

CLI = [sys.executable, "-m", "dense_descriptor_ros.bag.cli"]
OFFSETS = 100


def _all(path: Path) -> list[tuple[str, int, bytes]]:
    with BagReader(path) as r:
        return [(t, ts, bytes(raw)) for t, _, ts, raw in r.messages()]


def _stream_order(mcap: Path) -> list[tuple[str, int, bytes]]:
    """Messages of an mcap in file order (what a cut keeps a prefix of)."""
    from dense_descriptor_ros.bag.recover import _ScanState

    topics, out = {}, []
    for kind, ev in scan_mcap(mcap, _ScanState()):
        if kind == "channel":
            topics[ev.id] = ev.topic
        elif kind == "message":
            out.append((topics[ev[0]], ev[1], ev[2]))
    return out


def _quiet(*_a) -> None:
    pass


@pytest.fixture(scope="module")
def chunked_mcap(sample_bag, tmp_path_factory) -> Path:
    """The sample's first 12 frames, flushed after every frame as `bag record` does: 12 chunks."""
    from dense_descriptor_ros.bag.io import BagWriter

    out = tmp_path_factory.mktemp("chunked") / "chunked"
    with BagReader(sample_bag) as r, BagWriter(out) as w:
        conns = {t: w.add_topic(t, r.topics[t].msgtype, r.topics[t].offered_qos, *r.topics[t].msgdef)
                 for t in sorted(r.topics)}
        last = None
        for topic, _, ts, raw in r.messages():
            if topic == "/color/camera_info" and last is not None:  # the first message of a frame
                w.flush(fsync=False)
            if w.counts.get("/color/image_raw", 0) == 12 and topic == "/color/camera_info":
                break
            w.write(conns[topic], ts, raw)
            last = ts
    return next(out.glob("*.mcap"))


# ------------------------------------------------------------------------------- a killed writer process
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from dense_descriptor_ros.bag.io import BagWriter
    out, storage, flushed, more, big = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    w = BagWriter(out, storage).__enter__()
    c = w.add_topic("/n", "std_msgs/msg/String")
    S = w.store.types["std_msgs/msg/String"]
    for i in range(flushed + more):
        if i == flushed:
            w.flush()
        w.write_msg(c, 1000 + i, S(data=f"message {i} " + "x" * (big if i >= flushed else i % 50)))
    print(w.storage_path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize(("storage", "big"), [("mcap", 0), ("sqlite3", 0), ("mcap", 200_000), ("sqlite3", 200_000)],
                         ids=["mcap", "sqlite3", "mcap-big", "sqlite3-spilled"])
def test_a_killed_writer_loses_only_what_followed_its_last_flush(tmp_path, storage, big):
    """With `big`, the 40 unflushed messages are 200 kB each: mcap closes 1 MiB chunks of them (complete
    records after the flush: they come back too), sqlite3's page cache spills uncommitted pages into the
    database file, which only the journal's rollback undoes."""
    flushed, more = 300, 40
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "rec"), storage, str(flushed),
                        str(more), str(big)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    partial = Path(p.stdout.strip()).parent
    assert partial.parent.name.startswith(".rec.partial-") and not (tmp_path / "rec").exists()
    # readers refuse the unfinished bag with the way out
    for path in (partial, tmp_path / "rec"):
        with pytest.raises(BagError, match="bag recover"):
            BagReader(path)
    s = recover_bag(partial, log=_quiet)
    # mcap: every chunk rosbags closed at 1 MiB after the flush reached the file too (6 messages of 200 kB)
    per_chunk = 2**20 // (big + 60) + 1 if big else more + 1
    kept = flushed + (more // per_chunk * per_chunk if storage == "mcap" else 0)
    assert Path(s.out) == tmp_path / "rec" and s.counts == {"/n": kept}
    assert not s.files[0].complete and s.files[0].messages == kept
    if storage == "sqlite3":
        journal = partial / "rec.db3-journal"
        assert journal.is_file() and "rolled back" in s.files[0].cut
        if big:
            assert (partial / "rec.db3").stat().st_size > 40 * big // 2  # uncommitted pages reached the file
    with BagReader(tmp_path / "rec") as r:
        got = [(ts, r.deserialize(raw, t).data) for _, t, ts, raw in r.messages()]
        assert r.topics["/n"].count == kept and r.custom["recovered_from"].startswith(str(partial))
    assert got == [(1000 + i, f"message {i} " + "x" * (big if i >= flushed else i % 50)) for i in range(kept)]
    assert partial.is_dir()  # the source is left as it was


# ----------------------------------------------------------------------------------- cuts at 100 offsets
def _check_cut(path: Path, original: list, out: Path) -> int:
    """Every reader either refuses `path` with a BagError or returns only original messages; recover never
    crashes and returns original messages only. Returns how many recover kept."""
    valid = set(original)
    for read in (lambda: _all(path), lambda: bag_summary(path)):
        try:
            got = read()
        except BagError:
            continue
        if isinstance(got, list):
            assert set(got) <= valid
    try:
        s = recover_bag(path, out, log=_quiet)
    except BagError as e:
        assert "no complete message" in str(e) or "neither" in str(e), e  # a cut before the first chunk / row
        return 0
    rec = _all(out)
    assert set(rec) <= valid and len(rec) == s.messages
    assert rec == original[:len(rec)]  # what comes back is everything before the cut, in order
    shutil.rmtree(out)
    return len(rec)


def test_an_mcap_cut_anywhere_gives_a_prefix_of_its_messages(chunked_mcap, tmp_path):
    src = chunked_mcap
    data = src.read_bytes()
    order = _stream_order(src)
    assert len(order) == 48
    offsets = np.sort(np.random.default_rng(19).integers(0, len(data), OFFSETS))
    kept = []
    for k, cut in enumerate(offsets):
        f = tmp_path / "x.mcap"
        f.write_bytes(data[:cut])
        kept.append(_check_cut(f, order, tmp_path / f"out{k}"))
    assert kept == sorted(kept)  # a longer file never gives fewer messages
    assert len(set(kept)) >= 10  # cuts across the whole file (12 chunks of 4 messages)
    # exactly the messages of the chunks that end before the cut come back
    chunk_ends, pos = [], 8
    while pos < len(data) and data[pos] != 0x0F:  # top-level records up to the data end
        end = pos + 9 + int.from_bytes(data[pos + 1:pos + 9], "little")
        if data[pos] == 0x06:
            chunk_ends.append(end)
        pos = end
    assert len(chunk_ends) == 12
    assert kept == [4 * sum(e <= cut for e in chunk_ends) for cut in offsets]
    # the whole file: all of it
    assert _check_cut(src, order, tmp_path / "whole") == len(order)


def test_a_sqlite3_bag_cut_anywhere_gives_only_committed_messages(short_bags, tmp_path):
    src = next(short_bags["sqlite3"].glob("*.db3"))
    data = src.read_bytes()
    original = _all(src)
    offsets = np.sort(np.random.default_rng(19).integers(0, len(data), OFFSETS))
    kept = []
    for k, cut in enumerate(offsets):
        f = tmp_path / f"cut{k}.db3"
        f.write_bytes(data[:cut])
        kept.append(_check_cut(f, original, tmp_path / f"out{k}"))
        f.unlink()
    assert _check_cut(src, original, tmp_path / "whole") == len(original)
    assert sum(1 for n in kept if n) > OFFSETS // 2 and kept == sorted(kept)


def test_a_damaged_chunk_ends_the_recovery_there(chunked_mcap, tmp_path):
    src = chunked_mcap
    data = bytearray(src.read_bytes())
    order = _stream_order(src)
    mid = len(data) // 3
    data[mid:mid + 4000] = bytes(4000)
    f = tmp_path / "d.mcap"
    f.write_bytes(bytes(data))
    s = recover_bag(f, tmp_path / "out", log=_quiet)
    assert "damaged" in s.files[0].cut and 0 < s.messages < len(order)
    assert _stream_order(next((tmp_path / "out").glob("*.mcap"))) == order[:s.messages]


# ------------------------------------------------------------------------------------------------- CLI
def _killed_recording(tmp_path: Path, storage: str = "mcap") -> Path:
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "rec"), storage, "20", "5", "0"],
                       capture_output=True, text=True, timeout=120)
    return Path(p.stdout.strip()).parent


def test_cli_info_points_at_recover_and_recover_reports_the_cut(tmp_path):
    partial = _killed_recording(tmp_path)
    for path in (tmp_path / "rec", partial, next(partial.glob("*.mcap"))):
        p = subprocess.run([*CLI, "info", str(path)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "bag recover" in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = subprocess.run([*CLI, "recover", str(partial.parent)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"recovered {tmp_path / 'rec'}" in p.stdout and "20 messages" in p.stdout
    assert "no summary and footer" in p.stdout and "/n: 20" in p.stdout
    p = subprocess.run([*CLI, "info", str(tmp_path / "rec")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "20 msgs" in p.stdout
    # again: the output exists now
    p = subprocess.run([*CLI, "recover", str(partial)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "exists already" in p.stderr and p.stderr.count("\n") == 1


def test_cli_recover_bad_input_gives_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a bag")
    (tmp_path / "empty").mkdir()
    for path, message in ((tmp_path / "missing", "does not exist"), (tmp_path / "notes.txt", "neither"),
                          (tmp_path / "empty", "no .mcap or .db3")):
        p = subprocess.run([*CLI, "recover", str(path)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and message in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_default_output_names(tmp_path):
    inner = tmp_path / ".cut.partial-abc" / "cut"
    inner.mkdir(parents=True)
    (inner / "cut.mcap").write_bytes(b"\x89MCAP0\r\n")
    assert default_recover_out(inner) == tmp_path / "cut"
    assert default_recover_out(inner.parent) == tmp_path / "cut"
    assert default_recover_out(inner / "cut.mcap") == tmp_path / "cut"
    (tmp_path / "bag").mkdir()
    assert default_recover_out(tmp_path / "bag") == tmp_path / "bag_recovered"
    assert default_recover_out(inner / "cut.mcap").name == "cut"
