"""`dense-descriptor bag recover`: rebuild a complete rosbag2 from what a killed recording left behind.

A recording killed with SIGKILL (a crash, the OOM killer, a power cut) leaves its hidden
`.NAME.partial-*/NAME` folder: storage files without a footer or summary (mcap), or with a hot rollback
journal (sqlite3), and no metadata.yaml. Neither rosbags nor our readers open that.

- **mcap**: the file is streamed record by record from its start; every complete record is kept (a
  chunk only as a whole: its length must fit in the file, it must decompress to its stated size and, where
  the writer stored one, match its CRC). The first incomplete or damaged record ends the file: what
  follows it cannot be trusted. Schemas and channels come from the records themselves.
- **sqlite3**: a copy of the database and its journal is opened read-write, so SQLite's own crash safety
  rolls back the transaction that was open at the kill; every committed row is read in insertion order
  until the first page SQLite reports damaged.

The complete records are written into a new bag (the same storage, one output file per input file, in
order) with metadata.yaml. The input is never changed. No rclpy here.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import MCAP_MAGIC, SQLITE_MAGIC, BagError, BagWriter

__all__ = ["FileReport", "RecoverSummary", "recover_bag", "partial_recording_of", "default_recover_out",
           "storage_files", "scan_mcap"]

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-[^/]+$")


class _Damaged(Exception):
    """A record that does not parse (damaged, or cut off)."""


# ------------------------------------------------------------------------------------ finding the files
def _split_index(p: Path) -> tuple[int, str]:
    """Files in split order: NAME_0, NAME_1, ..., NAME_10 (a number after the last '_'), then by name."""
    m = re.search(r"_(\d+)$", p.stem)
    return (int(m.group(1)) if m else -1, p.name)


def storage_files(path: Path) -> tuple[str, list[Path], dict | None]:
    """(storage, storage files in order, metadata.yaml's rosbag2_bagfile_information or None) of a bag
    folder, a partial folder or a lone .mcap / .db3 file.

    Raises:
        BagError: nothing recoverable there.
    """
    p = Path(path)
    if not p.exists():
        raise BagError(f"{p} does not exist")
    if p.is_file():
        with p.open("rb") as f:
            head = f.read(16)
        if head.startswith(MCAP_MAGIC[:5]):  # even a file cut inside its magic
            return "mcap", [p], None
        if head.startswith(SQLITE_MAGIC):
            return "sqlite3", [p], None
        raise BagError(f"{p} is neither an .mcap nor a .db3 file" + (" (the file is empty)" if not head else ""))
    inner = [d for d in p.iterdir() if d.is_dir() and not d.is_symlink()]
    m = _PARTIAL.match(p.name)
    if m and (p / m.group("name")).is_dir():  # the hidden .NAME.partial-* folder itself: its NAME inside
        return storage_files(p / m.group("name"))
    meta = None
    if (p / "metadata.yaml").is_file():
        import yaml

        try:
            meta = yaml.safe_load((p / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        except Exception:  # noqa: BLE001 - damaged metadata: recover from the files alone
            meta = None
    found = [f for f in p.iterdir() if f.is_file() and not f.is_symlink() and f.suffix in (".mcap", ".db3")]
    if meta and isinstance(meta.get("relative_file_paths"), list):
        listed = [p / Path(str(x)).name for x in meta["relative_file_paths"]]
        found = [f for f in listed if f.is_file()] + sorted((f for f in found if f not in listed), key=_split_index)
    else:
        found = sorted(found, key=_split_index)
    if not found:
        hint = f" (folders inside: {', '.join(d.name for d in inner)})" if inner else ""
        raise BagError(f"{p} holds no .mcap or .db3 file to recover{hint}")
    kinds = {f.suffix for f in found}
    if len(kinds) > 1:
        raise BagError(f"{p} holds both .mcap and .db3 files: pass one file")
    return ("mcap" if ".mcap" in kinds else "sqlite3"), found, meta


def partial_recording_of(out: Path) -> Path | None:
    """The inner folder of an unfinished recording (or other output) of `out`: `.NAME.partial-*/NAME` next
    to it, the newest if several; None if there is none."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return None
    cands = [d / out.name for d in parent.glob(f".{out.name}.partial-*") if (d / out.name).is_dir()]
    return max(cands, key=lambda d: d.stat().st_mtime) if cands else None


def default_recover_out(path: Path) -> Path:
    """Where `bag recover PATH` writes without --out: for an unfinished recording `.NAME.partial-*/NAME`
    (or a file in it) the bag it was meant to become, `NAME` next to the hidden folder; otherwise
    `NAME_recovered` next to PATH."""
    p = Path(path).absolute()
    folder = p.parent if p.is_file() else p
    m = _PARTIAL.match(folder.name)
    if m and (folder / m.group("name")).is_dir():
        folder = folder / m.group("name")
    m = _PARTIAL.match(folder.parent.name)
    if m and m.group("name") == folder.name:
        return folder.parent.parent / folder.name
    return p.parent / f"{p.stem if p.is_file() else p.name}_recovered"


# ---------------------------------------------------------------------------------------- mcap records
class _Cursor:
    """Little-endian fields of one MCAP record body; running past its end raises _Damaged."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.d, self.i = memoryview(data), 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.i + n > len(self.d):
            raise _Damaged("a field runs past the end of its record")
        out = self.d[self.i:self.i + n]
        self.i += n
        return out

    def u16(self) -> int:
        return struct.unpack_from("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack_from("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack_from("<Q", self.take(8))[0]

    def string(self) -> str:
        try:
            return bytes(self.take(self.u32())).decode()
        except UnicodeDecodeError:
            raise _Damaged("a string is not UTF-8") from None

    def rest(self) -> bytes:
        return bytes(self.take(len(self.d) - self.i))


@dataclass
class McapSchema:
    id: int
    name: str  # the message type, e.g. "sensor_msgs/msg/Image"
    encoding: str  # "ros2msg" or "ros2idl"
    data: str  # the definition text


@dataclass
class McapChannel:
    id: int
    schema_id: int
    topic: str
    encoding: str  # "cdr"
    qos: str  # offered_qos_profiles as rosbag2 stores it ("" if absent)


@dataclass
class _ScanState:
    """Where a scan stopped and why."""

    size: int = 0
    good_bytes: int = 0  # the file's first good_bytes bytes are complete records
    cut: str = ""  # why the scan stopped before the end ("" = it reached a footer / the data end cleanly)
    compression: set[str] = field(default_factory=set)
    footer: bool = False
    chunks: int = 0


def _schema(c: _Cursor) -> McapSchema:
    sid = c.u16()
    return McapSchema(sid, c.string(), c.string(), bytes(c.take(c.u32())).decode(errors="replace"))


def _channel(c: _Cursor) -> McapChannel:
    cid, sid, topic, enc = c.u16(), c.u16(), c.string(), c.string()
    meta = _Cursor(c.take(c.u32()))
    qos = ""
    while meta.i < len(meta.d):
        k, v = meta.string(), meta.string()
        if k == "offered_qos_profiles":
            qos = v
    return McapChannel(cid, sid, topic, enc, qos)


def _records(data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """(opcode, body) of the records packed in a chunk; a record running past the end raises _Damaged."""
    i, n = 0, len(data)
    while i < n:
        if i + 9 > n:
            raise _Damaged("a record header runs past the end of its chunk")
        op = data[i]
        length = struct.unpack_from("<Q", data, i + 1)[0]
        if i + 9 + length > n:
            raise _Damaged("a record runs past the end of its chunk")
        yield op, data[i + 9:i + 9 + length]
        i += 9 + length


Event = tuple[str, Any]  # ("schema", McapSchema) | ("channel", McapChannel) | ("message", (cid, log_ns, bytes))


def _chunk_events(body: memoryview, st: _ScanState) -> list[Event]:
    """Every record of one chunk, or _Damaged: a chunk counts only as a whole."""
    from rosbags.rosbag2.storage_mcap import decompress

    c = _Cursor(body)
    c.u64(), c.u64()  # message start / end time: recomputed from the messages
    size, crc = c.u64(), c.u32()
    compression = c.string()
    data = c.take(c.u64())
    try:
        raw = decompress(bytes(data), compression, size, crc)
    except Exception as e:  # unsupported compression, zstd / lz4 errors, size or CRC mismatch
        raise _Damaged(f"a chunk does not decompress ({type(e).__name__}: {e})") from None
    st.compression.add(compression or "none")
    events: list[Event] = []
    for op, rec in _records(memoryview(raw)):
        events.extend(_record_events(op, rec, inside_chunk=True))
    return events


def _record_events(op: int, body: memoryview, inside_chunk: bool = False) -> list[Event]:
    r = _Cursor(body)
    if op == 0x03:
        return [("schema", _schema(r))]
    if op == 0x04:
        return [("channel", _channel(r))]
    if op == 0x05:
        cid, _seq, log_ns, _pub = r.u16(), r.u32(), r.u64(), r.u64()
        return [("message", (cid, log_ns, r.rest()))]
    if op == 0x06 and inside_chunk:
        raise _Damaged("a chunk inside a chunk")
    return []  # indexes, attachments, metadata, ...: rebuilt or not needed


def scan_mcap(path: Path, st: _ScanState) -> Iterator[Event]:
    """Stream an mcap file's complete records from its start, footer or not. Yields events in file order;
    `st` says afterwards how far the file was good and why the scan stopped."""
    with Path(path).open("rb") as f:
        f.seek(0, 2)
        st.size = size = f.tell()
        f.seek(0)
        magic = f.read(8)
        if magic != MCAP_MAGIC:
            st.cut = "the file is cut inside its magic" if MCAP_MAGIC.startswith(magic) else "no MCAP magic"
            return
        pos = st.good_bytes = 8
        while True:
            head = f.read(9)
            if not head:
                st.cut = "no summary and footer (the recording did not finish)"
                return
            if len(head) < 9:
                st.cut = f"the file ends inside a record header at byte {pos}"
                return
            op, length = head[0], struct.unpack_from("<Q", head, 1)[0]
            if length > size - pos - 9:
                st.cut = (f"a record (opcode 0x{op:02x}) at byte {pos} needs {length} bytes, the file has "
                          f"{size - pos - 9} more")
                return
            if op == 0x0F:  # data end: the summary that follows only repeats what the data held
                st.good_bytes = pos + 9 + length
                st.footer = True
                st.cut = ""
                return
            body = memoryview(f.read(length))
            try:
                if op == 0x06:
                    events = _chunk_events(body, st)
                    st.chunks += 1
                elif op == 0x02:  # a footer right after the data (no summary)
                    st.footer = True
                    st.good_bytes = pos + 9 + length
                    return
                else:
                    events = _record_events(op, body)
            except _Damaged as e:
                st.cut = f"a damaged record (opcode 0x{op:02x}) at byte {pos}: {e}"
                return
            yield from events
            pos += 9 + length
            st.good_bytes = pos


# ---------------------------------------------------------------------------------------------- sqlite3
def _sqlite_events(path: Path, st: _ScanState, workdir: Path) -> Iterator[Event]:
    """Committed rows of a rosbag2 sqlite3 database: a copy with its journal / WAL is opened read-write so
    SQLite rolls back (or replays) what the kill interrupted; the original stays untouched."""
    st.size = path.stat().st_size
    copy = workdir / path.name
    shutil.copyfile(path, copy)
    # SQLite reads a last, partial page with its missing tail as zeros: a cut file keeps whole pages only
    with copy.open("r+b") as f:
        head = f.read(100)
        page = int.from_bytes(head[16:18], "big") if len(head) >= 18 else 0
        page = 65536 if page == 1 else page
        if page >= 512:
            f.truncate(st.size // page * page)
    hot = ""
    for suffix in ("-journal", "-wal"):
        side = path.with_name(path.name + suffix)
        if side.is_file():
            shutil.copyfile(side, copy.with_name(copy.name + suffix))
            hot = hot or (f"SQLite rolled back the transaction open at the end ({side.name}); every "
                          "committed row is kept")
    conn = None
    try:
        conn = sqlite3.connect(f"file:{copy}?mode=rw", uri=True)
        cur = conn.cursor()
        # a cut file is shorter than its header says: SQLite then refuses the whole file unless the schema is
        # "writable", and reads it up to the first missing page instead (nothing is written here)
        cur.execute("PRAGMA writable_schema=ON")
        defs = {row[0]: (row[1], row[2]) for row in cur.execute(
            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions")} if _has_table(
            cur, "message_definitions") else {}
        schemas = {}
        for tid, name, typ, fmt, qos, _digest in cur.execute(
                "SELECT id, name, type, serialization_format, offered_qos_profiles, type_description_hash "
                "FROM topics ORDER BY id").fetchall():
            if typ not in schemas:
                schemas[typ] = McapSchema(len(schemas) + 1, typ, *defs.get(typ, ("ros2msg", "")))
                yield "schema", schemas[typ]
            yield "channel", McapChannel(int(tid), schemas[typ].id, name, fmt, qos or "")
        # row by row: SQLite checks each page as it steps onto it, so a damaged page ends the scan there
        for tid, ts, data in conn.cursor().execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            if not (isinstance(tid, int) and isinstance(ts, int) and isinstance(data, bytes)):
                raise sqlite3.DatabaseError("a message row with missing fields (a damaged page)")
            yield "message", (tid, ts, data)
        st.good_bytes = st.size
        st.footer = True
        closed = _has_table(cur, "metadata") and cur.execute("SELECT count(*) FROM metadata").fetchone()[0] > 0
        st.cut = hot or ("" if closed else "the database was not closed (no metadata row); every committed "
                                           "row is kept")
    except sqlite3.DatabaseError as e:
        st.cut = f"SQLite: {e}"
    finally:
        if conn is not None:
            conn.close()


def _has_table(cur: Any, name: str) -> bool:
    return cur.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()[0] > 0


# --------------------------------------------------------------------------------------------- summary
@dataclass
class FileReport:
    """What one storage file gave."""

    name: str
    size: int  # bytes
    messages: int  # recovered
    good_bytes: int  # mcap: the file's first good_bytes bytes held complete records
    complete: bool  # the file ended cleanly (mcap footer / data end; sqlite3: no damaged page)
    cut: str  # why reading stopped early ("" when complete)
    dropped: int = 0  # messages skipped: undefined channel, unknown type, undecodable message compression


@dataclass
class RecoverSummary:
    source: str
    out: str
    storage: str
    files: list[FileReport] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # topic -> messages recovered
    start_ns: int = 0
    end_ns: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def format(self) -> str:
        span = (self.end_ns - self.start_ns) / 1e9 if self.messages else 0.0
        lines = [f"recovered {self.out} from {self.source}: {self.messages} messages, {span:.3f} s"]
        for f in self.files:
            state = ("complete" if f.complete else
                     f"cut: {f.cut}; kept bytes 0-{f.good_bytes} of {f.size}, "
                     f"{f.size - f.good_bytes} bytes after that dropped")
            if self.storage == "sqlite3" and not f.complete:
                state = f"cut: {f.cut}"
            lines.append(f"  {f.name}: {f.messages} messages ({state})"
                         + (f"; {f.dropped} messages skipped" if f.dropped else ""))
        for t, n in sorted(self.counts.items()):
            lines.append(f"  {t}: {n}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- recover
class _Copier:
    """Adds topics to the output as the input defines them and copies messages."""

    def __init__(self, w: BagWriter, message_compressed: bool | None) -> None:
        self.w = w
        self.schemas: dict[int, McapSchema] = {}
        self.channels: dict[int, McapChannel] = {}
        self.conns: dict[int, Any] = {}
        self.unusable: dict[str, str] = {}
        self.message_compressed = message_compressed  # sqlite3 per-message zstd: None = detect

    def reset_file(self) -> None:  # ids are per file
        self.schemas.clear()
        self.channels.clear()
        self.conns.clear()

    def conn(self, cid: int) -> Any | None:
        if cid in self.conns:
            return self.conns[cid]
        ch = self.channels.get(cid)
        if ch is None:
            return None
        sc = self.schemas.get(ch.schema_id)
        msgtype = sc.name if sc is not None else ""
        conn = None
        if msgtype:
            conn = self._add(ch, sc)
        self.conns[cid] = conn
        return conn

    def _add(self, ch: McapChannel, sc: McapSchema) -> Any | None:
        from rosbags.rosbag2.metadata import parse_qos
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        store = self.w.store
        msgtype = sc.name
        try:
            qos = parse_qos(ch.qos) if ch.qos else []
        except Exception:  # noqa: BLE001 - unreadable QoS text: record the topic without it
            qos = []
        if msgtype not in store.fielddefs and sc.data:
            try:
                store.register(get_types_from_idl(sc.data) if sc.encoding.endswith("idl")
                               else get_types_from_msg(sc.data, msgtype))
            except Exception:  # noqa: BLE001 - an unparsable definition
                pass
        if msgtype not in store.fielddefs:
            self.unusable[ch.topic] = f"type {msgtype} has no usable definition"
            return None
        for existing in self.w.connections_of(ch.topic):
            if existing.msgtype == msgtype and list(existing.ext.offered_qos_profiles) == qos:
                return existing
        try:
            return self.w.add_topic(ch.topic, msgtype, qos, sc.data, store.hash_rihs01(msgtype)
                                    if sc.data else "")
        except Exception as e:  # noqa: BLE001
            self.unusable[ch.topic] = f"{type(e).__name__}: {e}"
            return None

    def payload(self, data: bytes) -> bytes | None:
        """The CDR bytes (sqlite3 messages may be zstd frames); None for bytes that do not decompress."""
        if self.message_compressed is None:
            self.message_compressed = data.startswith(_ZSTD_MAGIC)
        if not self.message_compressed:
            return data
        from backports import zstd

        try:
            return zstd.decompress(data)
        except Exception:  # noqa: BLE001 - a damaged frame
            return None


def recover_bag(path: str | Path, out: str | Path | None = None, overwrite: bool = False,
                log: Callable[[str], None] = print, progress_every_s: float = 5.0) -> RecoverSummary:
    """Rebuild a complete rosbag2 at `out` (default: `default_recover_out(path)`) from the complete
    records of `path` (a bag folder, a hidden partial folder, or a lone .mcap / .db3).

    Raises:
        BagError: nothing to recover at `path`, or `out` exists (without `overwrite`).
    """
    src = Path(path)
    storage, files, meta = storage_files(src)
    dst = Path(out) if out is not None else default_recover_out(src)
    if dst.exists() and not overwrite:
        raise BagError(f"{dst} exists already (choose another name with --out, or --overwrite)")
    if src.absolute() == dst.absolute() or dst.absolute() in src.absolute().parents:
        raise BagError(f"{dst}: the recovered bag cannot replace its own source")
    # mcap: zstd chunks whatever the input had; sqlite3: uncompressed (zstd messages are decompressed)
    compression = "auto"
    message_compressed = None
    custom = {}
    if meta:
        custom = {str(k): str(v) for k, v in (meta.get("custom_data") or {}).items()}
        if storage == "sqlite3":
            message_compressed = str(meta.get("compression_mode", "")).lower() == "message"
    summary = RecoverSummary(str(src), str(dst), storage)
    total = sum(f.stat().st_size for f in files)
    done = 0
    t_said = time.monotonic()
    first = last = None

    with tempfile.TemporaryDirectory(prefix=".recover-") as work, \
            BagWriter(dst, storage, compression, overwrite=overwrite, splitting=len(files) > 1) as w:
        copier = _Copier(w, message_compressed)
        for k, f in enumerate(files):
            if k:
                w.split()
            st = _ScanState()
            report = FileReport(f.name, f.stat().st_size, 0, 0, False, "")
            copier.reset_file()
            events = scan_mcap(f, st) if storage == "mcap" else _sqlite_events(f, st, Path(work))
            for kind, ev in events:
                if time.monotonic() - t_said >= progress_every_s:  # long work: say where it is
                    t_said = time.monotonic()
                    read = (f"{(done + st.good_bytes) / 2**20:.0f} of {total / 2**20:.0f} MiB, "
                            if storage == "mcap" else "")
                    log(f"recover: file {k + 1} of {len(files)} ({f.name}), {read}{summary.messages} messages "
                        "so far")
                if kind == "schema":
                    copier.schemas[ev.id] = ev
                elif kind == "channel":
                    copier.channels[ev.id] = ev
                    copier.conns.pop(ev.id, None)
                    copier.conn(ev.id)  # topics appear in the output even without messages
                else:
                    cid, log_ns, data = ev
                    conn = copier.conn(cid)
                    raw = copier.payload(data) if conn is not None else None
                    if raw is None:
                        report.dropped += 1
                        continue
                    w.write(conn, log_ns, raw)
                    report.messages += 1
                    summary.counts[conn.topic] = summary.counts.get(conn.topic, 0) + 1
                    first = log_ns if first is None else min(first, log_ns)
                    last = log_ns if last is None else max(last, log_ns)
            report.good_bytes, report.cut = st.good_bytes, st.cut
            report.complete = not st.cut
            if storage == "mcap" and not st.cut and not st.footer:
                report.complete = False
            summary.files.append(report)
            done += report.size
        if not summary.messages:  # nothing to write: no output at all (the writer removes its partial folder)
            why = "; ".join(f"{r.name}: {r.cut}" for r in summary.files if r.cut)
            raise BagError(f"{src}: no complete message found" + (f" ({why})" if why else ""))
        for k, v in custom.items():
            w.set_custom(k, v)
        cut = [f"{r.name}: {r.cut}" if r.good_bytes in (0, r.size) else
               f"{r.name} cut at byte {r.good_bytes} of {r.size}" for r in summary.files if not r.complete]
        w.set_custom("recovered_from", f"{src.absolute()}" + (f" ({'; '.join(cut)})" if cut else ""))
    for topic, why in sorted(copier.unusable.items()):
        summary.notes.append(f"{topic} not recovered: {why}")
    summary.start_ns, summary.end_ns = first or 0, last or 0
    return summary
