"""Reading and writing rosbag2 files (sqlite3 and mcap) with rosbags, with errors a user can act on.

No rclpy here. Types: ROS 2 Kilted's standard messages plus ours, registered from msg/*.msg (the same
type names and RIHS01 hashes as the ROS build), plus whatever definitions a bag carries itself.

`BagReader` opens a rosbag2 folder (metadata.yaml + storage files) or a bare .mcap / .db3 file and turns
every failure (missing, not a bag, corrupt, truncated) into a `BagError` that names the file and says
why. `BagWriter` writes into a hidden folder next to the destination and renames it into place only
when everything was written: a bag at OUT is always complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BagError", "STORAGES", "MCAP_MAGIC", "SQLITE_MAGIC", "new_typestore", "message_types", "qos_profile",
           "ensure_type",
           "TopicInfo", "BagReader", "BagWriter", "detect_storage"]

#: storage plugins rosbags reads and writes
STORAGES = ("mcap", "sqlite3")
MCAP_MAGIC = b"\x89MCAP0\r\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
_SUFFIX = {"mcap": ".mcap", "sqlite3": ".db3"}
RECOVER = "dense-descriptor bag recover"


class BagError(ValueError):
    """A bag that cannot be used for what was asked; the message names it and says why."""


def new_typestore():
    """A rosbags typestore with ROS 2 Kilted's messages and ours (dense_descriptor_ros/msg/*)."""
    from rosbags.typesys import Stores, get_typestore

    from ..ros_core.msg_types import register_messages

    store = get_typestore(Stores.ROS2_KILTED)
    register_messages(store)
    return store


def message_types(store):
    """pipeline.outputs.MessageTypes with rosbags classes (numpy arrays) from `store`."""
    from ..pipeline.outputs import MessageTypes

    t = store.types
    return MessageTypes(Header=t["std_msgs/msg/Header"], Time=t["builtin_interfaces/msg/Time"],
                        Point=t["geometry_msgs/msg/Point"], DescriptorMap=t["dense_descriptor_ros/msg/DescriptorMap"],
                        Keypoint=t["dense_descriptor_ros/msg/Keypoint"],
                        KeypointArray=t["dense_descriptor_ros/msg/KeypointArray"],
                        Correspondences=t["dense_descriptor_ros/msg/Correspondences"],
                        Image=t["sensor_msgs/msg/Image"], arrays="numpy")


def qos_profile(reliable: bool = True, depth: int = 10, transient_local: bool = False):
    """A rosbags Qos record for a topic's offered_qos_profiles (durations unspecified)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)


def _share_definition(msgtype: str) -> str | None:
    """The .msg text of `msgtype` from an installed ROS package (share/<pkg>/msg/<Name>.msg under the
    AMENT_PREFIX_PATH prefixes or this Python's prefix), or None."""
    import sys

    pkg, _, name = msgtype.partition("/msg/")
    if not pkg or not name:
        return None
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    for prefix in prefixes:
        f = Path(prefix) / "share" / pkg / "msg" / f"{name}.msg"
        if f.is_file():
            return f.read_text()
    return None


def _referenced_types(spec: Any) -> Iterator[str]:
    """Type names a rosbags field definition refers to (nested arrays and sequences included)."""
    from rosbags.typesys.base import Nodetype

    if isinstance(spec, tuple):
        if len(spec) == 2 and spec[0] == Nodetype.NAME and isinstance(spec[1], str):
            yield spec[1]
            return
        for part in spec:
            yield from _referenced_types(part)


def ensure_type(store: Any, msgtype: str, _seen: set[str] | None = None) -> bool:
    """Make `msgtype` (and what it refers to) known to `store`, from installed ROS packages' .msg files
    where the typestore lacks it. False if some definition cannot be found."""
    from rosbags.typesys import get_types_from_msg

    seen = _seen if _seen is not None else set()
    if msgtype in seen:
        return True
    seen.add(msgtype)
    if msgtype not in store.fielddefs:
        text = _share_definition(msgtype)
        if text is None:
            return False
        try:
            store.register(get_types_from_msg(text, msgtype))
        except Exception:  # an unparsable definition
            return False
    fields = store.fielddefs[msgtype][1]
    return all(dep in store.fielddefs or ensure_type(store, dep, seen)
               for _, spec in fields for dep in _referenced_types(spec))


def detect_storage(path: str | Path) -> str:
    """"mcap" or "sqlite3" for a bag folder (its metadata.yaml) or a bare storage file (its first bytes).

    Raises:
        BagError: the path does not exist or is neither.
    """
    p = Path(path)
    if not p.exists():
        from .recover import partial_recording_of

        partial = partial_recording_of(p)
        hint = (f"; an unfinished recording of it is in {partial}: `{RECOVER} {partial}` rebuilds it"
                if partial is not None else "")
        raise BagError(f"{p} does not exist{hint}")
    if p.is_dir():
        meta = p / "metadata.yaml"
        if not meta.is_file():
            found = sorted(x.name for x in p.iterdir() if x.suffix in (".mcap", ".db3"))
            hint = (f"; it holds {', '.join(found)}: pass that file to read it without metadata, or if a "
                    f"recording was killed, `{RECOVER} {p}` rebuilds a complete bag" if found else "")
            raise BagError(f"{p} is not a rosbag2 folder (no metadata.yaml){hint}")
        import yaml

        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            storage = str(info["storage_identifier"])
        except (yaml.YAMLError, OSError, KeyError, TypeError) as e:
            first = (str(e).strip().splitlines() or [""])[0]
            raise BagError(f"{meta} is not rosbag2 metadata: {type(e).__name__}: {first}") from None
        if storage not in STORAGES:
            raise BagError(f"{p}: storage {storage!r} is not supported (supported: {', '.join(STORAGES)})")
        return storage
    try:
        with p.open("rb") as f:
            head = f.read(16)
    except OSError as e:
        raise BagError(f"cannot read {p}: {e}") from None
    if head.startswith(MCAP_MAGIC):
        return "mcap"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite3"
    raise BagError(f"{p} is neither a rosbag2 folder nor an .mcap / .db3 file"
                   + (" (the file is empty)" if not head else ""))


def _explain(path: Path, e: BaseException, when: str) -> BagError:
    """A BagError for any exception a reader raised on a bad file (rosbags, sqlite, zstd, struct, ...)."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if "magic" in text.lower() or "footer" in text.lower():
        text += " (the file is truncated: a recording that did not finish?)"
    return BagError(f"{path} is corrupt or truncated ({when}): {text}; `{RECOVER} {path}` rebuilds a "
                    "readable bag from its complete records")


def _hot_journal(path: Path) -> Path | None:
    """The rollback journal / WAL of a sqlite3 bag that was not closed (a killed recording), or None.
    rosbags opens databases immutable, ignoring it: what it read could be half-written pages."""
    files = [f for f in path.iterdir() if f.suffix == ".db3"] if path.is_dir() else [path]
    for f in files:
        for suffix in ("-journal", "-wal"):
            side = f.with_name(f.name + suffix)
            if side.is_file() and side.stat().st_size > 0:
                return side
    return None


@dataclass
class TopicInfo:
    """One topic of a bag."""

    name: str
    msgtype: str  # e.g. "sensor_msgs/msg/Image"
    count: int  # messages, from the bag's index
    connections: list[Any] = field(default_factory=list)  # rosbags Connections (one per type/QoS combination)

    @property
    def offered_qos(self) -> list[Any]:
        """rosbags Qos records the publishers offered when it was recorded (may be empty)."""
        return [q for c in self.connections for q in getattr(c.ext, "offered_qos_profiles", [])]

    @property
    def msgdef(self) -> tuple[str, str]:
        """(message definition text, RIHS01 hash) as recorded ("" where the bag has none)."""
        for c in self.connections:
            if c.msgdef.data:
                return c.msgdef.data, c.digest
        return "", self.connections[0].digest if self.connections else ""


class BagReader:
    """An open rosbag2: a folder with metadata.yaml, or a bare .mcap / .db3 file. Use as a context manager.

    Attributes:
        path, storage ("mcap" | "sqlite3"), compression (e.g. "none", "zstd (mcap chunks)"), custom (the
        metadata's custom_data), files (storage file names; several for a split bag),
        topics (name -> TopicInfo), start_ns / end_ns (first / last log time), message_count, store (the
        typestore: standard types, ours, and the definitions the bag carries).

    Raises:
        BagError: missing, not a bag, unsupported, corrupt or truncated.
    """

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        self.storage = detect_storage(self.path)
        if self.path.is_file() and self.path.suffix != _SUFFIX[self.storage]:
            raise BagError(f"{self.path} is an {self.storage} file: rosbags reads it only with the suffix "
                           f"{_SUFFIX[self.storage]} (rename it)")
        if self.storage == "sqlite3" and (journal := _hot_journal(self.path)) is not None:
            raise BagError(f"{self.path} was not closed (its database has the hot journal {journal.name}: a "
                           f"recording that was killed or is still running); `{RECOVER} {self.path}` rebuilds "
                           "a complete bag from what was committed")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except BagError:
            raise
        except FileNotFoundError as e:
            raise BagError(f"{self.path}: {e}") from None
        except Exception as e:  # rosbags, apsw, zstd and struct errors on a damaged file
            raise _explain(self.path, e, "opening") from None
        r = self._reader
        self.message_count = int(r.message_count)
        self.start_ns = int(r.start_time) if self.message_count else 0
        self.end_ns = int(r.end_time) - 1 if self.message_count else 0
        self.topics: dict[str, TopicInfo] = {}
        for c in r.connections:
            t = self.topics.setdefault(c.topic, TopicInfo(c.topic, c.msgtype, 0))
            t.count += int(c.msgcount)
            t.connections.append(c)
        self.compression = self._compression()
        listed = getattr(r.storage, "files", None) or []  # metadata.yaml's files (split bags have several)
        self.files: list[str] = ([str(f.get("path", "")) for f in listed if isinstance(f, dict)]
                                 if self.path.is_dir() else [self.path.name])
        self.custom: dict[str, str] = dict(getattr(r.storage.metadata, "custom", None) or {})
        self.store = new_typestore()
        self._register_bag_types()

    # ------------------------------------------------------------------ metadata
    def _compression(self) -> str:
        r = self._reader
        mode, fmt = r.compression_mode, r.compression_format
        if mode:
            return f"{fmt} ({mode})"
        storages = getattr(r.storage, "storages", None) or [r.storage]
        chunk = {c.compression for s in storages for c in getattr(s, "chunks", [])} - {""}
        return f"{', '.join(sorted(chunk))} (mcap chunks)" if chunk else "none"

    def _register_bag_types(self) -> None:
        """Definitions stored in the bag for types this typestore does not know (custom messages)."""
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        for t in self.topics.values():
            if t.msgtype in self.store.fielddefs:
                continue
            for c in t.connections:
                try:
                    if c.msgdef.format == MessageDefinitionFormat.MSG and c.msgdef.data:
                        self.store.register(get_types_from_msg(c.msgdef.data, c.msgtype))
                    elif c.msgdef.format == MessageDefinitionFormat.IDL and c.msgdef.data:
                        self.store.register(get_types_from_idl(c.msgdef.data))
                except Exception:  # noqa: S112 - an unparsable definition: the topic stays "unknown type"
                    continue
                break

    def known_type(self, msgtype: str) -> bool:
        """Whether messages of `msgtype` can be deserialised (standard, ours, or defined in the bag)."""
        return msgtype in self.store.fielddefs

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns if self.message_count else 0

    @property
    def size_bytes(self) -> int:
        """Bytes on disk (all files of the folder, or the file)."""
        if self.path.is_dir():
            return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return self.path.stat().st_size

    # ------------------------------------------------------------------ messages
    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, log time ns, serialised CDR bytes) in log-time order (ties in storage order).

        Raises:
            BagError: a topic the bag does not have, or damaged data met while reading.
        """
        if topics is None:
            conns = [c for t in self.topics.values() for c in t.connections]
        else:
            names = list(topics)
            missing = [n for n in names if n not in self.topics]
            if missing:
                raise BagError(f"{self.path} has no topic {', '.join(missing)} "
                               f"(topics: {', '.join(sorted(self.topics)) or 'none'})")
            conns = [c for n in names for c in self.topics[n].connections]
        if not conns:
            return
        it = self._reader.messages(conns, start=start_ns, stop=stop_ns)
        while True:
            try:
                conn, ts, raw = next(it)
            except StopIteration:
                return
            except Exception as e:  # a damaged chunk / page in the middle of the file
                raise _explain(self.path, e, "reading messages") from None
            yield conn.topic, conn.msgtype, int(ts), raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        """A rosbags message object. Raises ValueError for bytes that do not decode as `msgtype`."""
        try:
            return self.store.deserialize_cdr(raw, msgtype)
        except KeyError:
            raise ValueError(f"unknown message type {msgtype} (not a standard type, not ours, and the bag "
                             "carries no definition of it)") from None
        except Exception as e:  # struct.error, IndexError, UnicodeDecodeError on damaged bytes
            raise ValueError(f"a {msgtype} message does not decode: {type(e).__name__}: {e}") from None

    def close(self) -> None:
        if getattr(self, "_reader", None) is not None and self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class BagWriter:
    """Writes a rosbag2 folder at `out`, atomically: into a hidden sibling folder first, renamed to `out`
    when the `with` block ends without an error; on an error (or Ctrl-C) the partial bag is removed.

    Args:
        out: the bag folder to create. Its parent is created if needed.
        storage: "mcap" or "sqlite3".
        compression: "zstd" or "none"; "auto" = zstd chunks for mcap, none for sqlite3. mcap compresses
            chunks (the storage plugin's own compression); sqlite3 compresses each message.
        overwrite: replace an existing `out` (only once the new bag is complete).
        store: typestore for definitions and serialisation (default: a new one with our messages).
        max_bytes: start a new file once the current one holds this many bytes (0: no limit). mcap counts
            its pending chunk uncompressed, sqlite3 the message bytes plus 40 a row, so files stay at or
            a little below the limit plus one message.
        max_duration_ns: start a new file at the first message this much log time after the current
            file's first message (0: no limit).
        splitting: name the files OUT_0, OUT_1, ... (rosbag2's naming for split bags; implied by a limit).

    Every file but the open one is complete (summary, footer / committed) once a new one starts, and
    metadata.yaml lists them all. `flush()` makes what was written so far survive a kill of the process.
    Splitting and flushing use rosbags 0.11's storage writers directly (McapWriter's pending `chunk`,
    `close_chunk()`, `bio`, `chunks`; Sqlite3Writer's `conn`): test_recover / test_split fail if a rosbags
    update changes them.
    """

    def __init__(self, out: str | Path, storage: str = "mcap", compression: str = "auto", overwrite: bool = False,
                 store: Any | None = None, max_bytes: int = 0, max_duration_ns: int = 0,
                 splitting: bool = False) -> None:
        if storage not in STORAGES:
            raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
        if compression not in ("auto", "zstd", "none"):
            raise BagError(f"compression must be auto, zstd or none, got {compression!r}")
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise BagError(f"{self.out} exists already (choose another name or --overwrite)")
        self.storage = storage
        self.compression = ("zstd" if storage == "mcap" else "none") if compression == "auto" else compression
        self.overwrite = overwrite
        self.store = store if store is not None else new_typestore()
        if max_bytes < 0 or max_duration_ns < 0:
            raise BagError("split limits must be >= 0")
        self.max_bytes, self.max_duration_ns = int(max_bytes), int(max_duration_ns)
        self.splitting = bool(splitting or max_bytes or max_duration_ns)
        self._tmp: Path | None = None
        self._writer: Any = None
        self.counts: dict[str, int] = {}
        self.files: list[dict[str, int | str]] = []  # closed files: path, count, start / end log time
        self._file = self._new_file_stats()

    def __enter__(self) -> BagWriter:
        from rosbags.rosbag2 import Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

        parent = self.out.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        except OSError as e:
            raise BagError(f"cannot create {self.out}: {e}") from None
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._tmp / self.out.name, version=9, storage_plugin=plugin)
        if self.compression == "zstd":
            mode = CompressionMode.STORAGE if self.storage == "mcap" else CompressionMode.MESSAGE
            self._writer.set_compression(mode, CompressionFormat.ZSTD)
        try:
            self._writer.open()
            if self.splitting:  # rosbags names its one file OUT.mcap: start with OUT_0.mcap instead
                first = self._writer.storage
                first.abort()
                first.path.unlink()
                self._writer.storage = self._new_storage(0)
        except Exception as e:
            self._discard()
            raise BagError(f"cannot create {self.out}: {e}") from None
        return self

    # ------------------------------------------------------------------ files, splits and flushing
    @staticmethod
    def _new_file_stats() -> dict[str, int]:
        return {"count": 0, "start": 2**63 - 1, "end": 0, "bytes": 0}

    def _new_storage(self, index: int) -> Any:
        folder = self._tmp / self.out.name
        file = folder / f"{self.out.name}_{index}{_SUFFIX[self.storage]}"
        return type(self._writer.storage)(_StorageFile(file), self._writer.compression_mode)

    @property
    def storage_path(self) -> Path:
        """The file being written now (inside the hidden partial folder until the bag is complete)."""
        return Path(self._writer.storage.path)

    def current_file_bytes(self) -> int:
        """Bytes of the open file (mcap: written + the pending chunk uncompressed; sqlite3: estimated)."""
        s = self._writer.storage
        if self.storage == "mcap":
            return s.bio.tell() + s.chunk.bio.tell()
        return self._file["bytes"]

    def connections_of(self, topic: str) -> list[Any]:
        """The connections (one per type / QoS combination) declared for `topic`."""
        return [c for c in self._writer.connections if c.topic == topic]

    def split(self) -> None:
        """Close the open file (complete, with summary and footer) and continue in the next one."""
        import yaml

        if not self.splitting:
            raise BagError("split() needs a BagWriter made with splitting=True (or a size / duration limit)")
        w = self._writer
        old = w.storage
        f = self._file
        info = {"relative_file_paths": [old.path.name], "message_count": f["count"],
                "starting_time": {"nanoseconds_since_epoch": f["start"] if f["count"] else 0},
                "duration": {"nanoseconds": f["end"] - f["start"] if f["count"] else 0}}
        old.close(w.version, yaml.safe_dump(info).strip())
        self.files.append({"path": old.path.name, **f})
        new = w.storage = self._new_storage(len(self.files))
        self._file = self._new_file_stats()
        declared: set[str] = set()
        for conn in w.connections:  # every file is readable on its own: types and topics again
            if conn.msgtype not in declared:
                new.add_msgtype(conn)
                declared.add(conn.msgtype)
            new.add_connection(conn, _dumped_qos(w, conn))

    def flush(self, fsync: bool = True) -> None:
        """Make every message written so far survive a kill of this process (and, with `fsync`, a power
        cut): mcap closes its pending chunk and writes it out, sqlite3 commits."""
        s = self._writer.storage
        if self.storage == "mcap":
            if s.chunk.bio.tell():  # messages, or a new topic's channel record
                s.close_chunk()
            s.bio.flush()
            if fsync:
                os.fsync(s.bio.fileno())
        else:
            s.conn.commit()  # SQLite's commit is durable (synchronous=FULL)

    def add_topic(self, topic: str, msgtype: str, qos: Iterable[Any] = (), msgdef: str = "", rihs01: str = "") -> Any:
        """Declare a topic; returns the connection to write to. Without `msgdef`/`rihs01` the definition
        comes from the typestore (BagError if it does not know `msgtype`)."""
        if not (msgdef and rihs01) and msgtype not in self.store.fielddefs:
            raise BagError(f"cannot record {topic}: message type {msgtype} is unknown (not a standard type, "
                           "not ours, no definition given)")
        kw = {"msgdef": msgdef, "rihs01": rihs01} if msgdef and rihs01 else {"typestore": self.store}
        self.counts.setdefault(topic, 0)
        return self._writer.add_connection(topic, msgtype, offered_qos_profiles=list(qos), **kw)

    def set_custom(self, key: str, value: str) -> None:
        """A key/value string pair in the bag's metadata (custom_data), e.g. provenance."""
        self._writer.set_custom_data(key, value)

    def write(self, connection: Any, log_ns: int, raw: bytes | memoryview) -> None:
        """One serialised message at log time `log_ns` (in a new file first if a split limit is reached)."""
        log_ns = int(log_ns)
        f = self._file
        if f["count"] and ((self.max_duration_ns and log_ns - f["start"] >= self.max_duration_ns)
                           or (self.max_bytes and self.current_file_bytes() >= self.max_bytes)):
            self.split()
            f = self._file
        storage = self._writer.storage
        chunks = len(storage.chunks) if self.storage == "mcap" else 0
        self._writer.write(connection, log_ns, raw)
        if chunks != (len(storage.chunks) if self.storage == "mcap" else 0):
            # rosbags closed a 1 MiB chunk: hand it to the OS now, not once 8 KiB of compressed chunks piled
            # up in Python's buffer (a killed process keeps what the OS has)
            storage.bio.flush()
        self.counts[connection.topic] = self.counts.get(connection.topic, 0) + 1
        f["count"] += 1
        f["start"], f["end"] = min(f["start"], log_ns), max(f["end"], log_ns)
        f["bytes"] += len(raw) + 40

    def write_msg(self, connection: Any, log_ns: int, msg: Any) -> bytes:
        """Serialise a rosbags message object and write it; returns the bytes."""
        raw = bytes(self.store.serialize_cdr(msg, connection.msgtype))
        self.write(connection, log_ns, raw)
        return raw

    def _discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.abort()
            except Exception:  # noqa: S110 - the folder is removed below anyway
                pass
            self._writer = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._discard()
            return
        assert self._tmp is not None
        try:
            last = Path(self._writer.storage.path).name
            self._writer.close()
            self._writer = None
            staged = self._tmp / self.out.name
            if self.splitting:
                self._list_files(staged / "metadata.yaml", last)
            old = None
            if self.out.exists():  # overwrite: move the old bag aside, then swap
                old = self._tmp / f"{self.out.name}.old"
                os.replace(self.out, old)
            os.replace(staged, self.out)
        except BaseException as e:
            self._discard()
            if isinstance(e, OSError):
                raise BagError(f"cannot write {self.out}: {e}") from None
            raise
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None

    def _list_files(self, meta: Path, last: str) -> None:
        """metadata.yaml of a split bag: rosbags' Writer listed only the last file."""
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        doc = yaml.load(meta.read_text())
        info = doc["rosbag2_bagfile_information"]
        files = [*self.files, {"path": last, **self._file}]
        info["relative_file_paths"] = [f["path"] for f in files]
        info["files"] = [{"path": f["path"],
                          "starting_time": {"nanoseconds_since_epoch": f["start"] if f["count"] else 0},
                          "duration": {"nanoseconds": f["end"] - f["start"] if f["count"] else 0},
                          "message_count": f["count"]} for f in files]
        tmp = meta.with_suffix(".yaml.tmp")
        with tmp.open("w") as out:
            yaml.dump(doc, out)
        os.replace(tmp, meta)


class _StorageFile:
    """What rosbags' storage writers take as their folder: they name their file after it
    (FOLDER / "FOLDER.mcap"). This one puts that file at `file` instead (OUT/OUT_3.mcap of a split bag)."""

    def __init__(self, file: Path) -> None:
        self.file, self.name = file, file.stem

    def __truediv__(self, _name: str) -> Path:
        return self.file


def _dumped_qos(writer: Any, conn: Any) -> str:
    """A connection's offered QoS as rosbags' Writer passes it to a storage (YAML text)."""
    from io import StringIO

    from rosbags.rosbag2.metadata import dump_qos_v8, dump_qos_v9
    from ruamel.yaml import YAML

    dumped = (dump_qos_v9 if writer.version >= 9 else dump_qos_v8)(list(conn.ext.offered_qos_profiles))
    if isinstance(dumped, str):
        return dumped
    stream = StringIO()
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.dump(dumped, stream)
    return stream.getvalue().strip()
