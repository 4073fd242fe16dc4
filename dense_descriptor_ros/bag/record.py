"""`dense-descriptor bag record`: record live topics into a rosbag2.

Raw (serialised) subscriptions feed a `BagWriter` directly: nothing is decoded. A topic's type comes
from the ROS graph; it is subscribed once it has a publisher (topics without one are looked for again
every `discovery_period_s`). The subscription QoS adapts to the publishers (reliable only if all of them
offer it, so a best-effort camera is still received), and what they offered is stored with the topic, so
`bag play` can offer it again. Messages are logged at their receive time on the node's clock (ROS time
with use_sim_time). Ctrl-C, SIGTERM, `duration_s` or `count` end the recording with a complete bag.

Crash safety: the writer is flushed every `flush_interval_s` (an mcap chunk closed and written out, or a
sqlite3 commit), so a SIGKILL, an OOM kill or a power cut loses only what arrived since the last flush;
`bag recover` rebuilds the bag from the hidden partial folder. With `max_bag_duration_s` /
`max_bag_size` the bag is split into files that are each complete once the next one starts.

Imports rclpy.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .io import BagError, BagWriter, ensure_type

__all__ = ["RecordOptions", "record_bag"]

NODE_NAME = "dense_descriptor_bag_recorder"


@dataclass
class RecordOptions:
    """How to record."""

    storage: str = "mcap"  # "mcap" or "sqlite3"
    compression: str = "auto"  # "auto" (zstd chunks for mcap, none for sqlite3), "zstd" or "none"
    duration_s: float | None = None  # stop after this long (None: until interrupted)
    count: int = 0  # stop once every topic has this many messages (0: no limit)
    reliability: str = "auto"  # "auto" (adapt to the publishers), "best_effort" or "reliable"
    overwrite: bool = False  # replace an existing output bag
    depth: int = 100  # subscription history depth (a burst of messages waits here while one is written)
    discovery_period_s: float = 0.5  # how often missing topics are looked for in the graph
    max_bag_duration_s: float = 0.0  # start a new file after this much log time (0: one file)
    max_bag_size: int = 0  # start a new file once the current one holds this many bytes (0: no limit)
    # write out (mcap: close the chunk, flush, fsync; sqlite3: commit) this often: what a kill can lose is
    # what arrived since the last flush
    flush_interval_s: float = 0.5
    fsync: bool = True  # flushes also survive a power cut (fsync), not only a killed process

    def validate(self) -> None:
        if self.duration_s is not None and not self.duration_s > 0:
            raise BagError(f"duration must be > 0, got {self.duration_s}")
        if self.max_bag_duration_s < 0 or self.max_bag_size < 0:
            raise BagError("--max-bag-duration and --max-bag-size must be >= 0")
        if not self.flush_interval_s > 0:
            raise BagError(f"flush interval must be > 0, got {self.flush_interval_s}")
        if self.count < 0 or self.depth < 1:
            raise BagError("count must be >= 0 and depth >= 1")
        if self.reliability not in ("auto", "best_effort", "reliable"):
            raise BagError(f"reliability must be auto, best_effort or reliable, got {self.reliability!r}")


class _Recorder:
    """Subscribes to the wanted topics as they appear and writes what arrives."""

    def __init__(self, node, writer: BagWriter, topics: list[str], o: RecordOptions, log) -> None:
        self.node, self.writer, self.o, self.log = node, writer, o, log
        self.wanted = topics
        self.subs: dict[str, object] = {}
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        self.skipped: dict[str, str] = {}  # topic -> why it cannot be recorded
        self.bad: dict[str, str] = {}  # topic -> why writing failed (recording stops)

    def discover(self) -> None:
        """Subscribe to the wanted topics that now have a publisher (its type from the graph)."""
        from .rclpy_io import message_class, recorded_from_qos

        graph = dict(self.node.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.subs or topic in self.skipped or topic not in graph:
                continue
            types = graph[topic]
            if len(types) > 1:
                self.skipped[topic] = f"published with several types ({', '.join(types)})"
                print(f"cannot record {topic}: {self.skipped[topic]}", file=sys.stderr)
                continue
            msgtype = types[0]
            cls = message_class(msgtype)
            if cls is None or not ensure_type(self.writer.store, msgtype):
                self.skipped[topic] = f"message type {msgtype} is not installed here (no class or definition)"
                print(f"cannot record {topic}: {self.skipped[topic]}", file=sys.stderr)
                continue
            pubs = self.node.get_publishers_info_by_topic(topic)
            if not pubs:  # only subscribers so far: wait for a publisher, whose QoS the subscription adapts to
                continue
            offered = [recorded_from_qos(p.qos_profile) for p in pubs]
            conn = self.writer.add_topic(topic, msgtype, offered)
            qos = self._qos(pubs)
            self.subs[topic] = self.node.create_subscription(cls, topic, lambda raw, c=conn: self._write(c, raw),
                                                             qos, raw=True)
            self.log(f"recording {topic} ({msgtype}, {qos.reliability.name.lower()}, "
                     f"{len(pubs)} publisher(s))")

    def _qos(self, pubs):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        if self.o.reliability == "auto":
            reliable = bool(pubs) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
        else:
            reliable = self.o.reliability == "reliable"
        latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.o.depth,
                          reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def _write(self, conn, raw: bytes) -> None:
        if self.bad:
            return
        try:
            self.writer.write(conn, self.node.get_clock().now().nanoseconds, raw)
        except Exception as e:  # disk full, ...: stop, keep what was written
            self.bad[conn.topic] = f"{type(e).__name__}: {e}"
            return
        self.counts[conn.topic] += 1

    def done_counting(self) -> bool:
        return bool(self.o.count) and all(self.counts[t] >= self.o.count for t in self.wanted)


def record_bag(out: str | Path, topics: list[str], options: RecordOptions | None = None,
               ros_args: list[str] | None = None, log=print) -> int:
    """Record `topics` into `out` until interrupted / duration / count; returns the exit code.

    Raises:
        BagError: bad options, `out` exists, ROS arguments rcl rejects.
    """
    o = options or RecordOptions()
    o.validate()
    if not topics:
        raise BagError("name at least one topic to record")
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from .rclpy_io import sigterm_as_interrupt, start_node

    with BagWriter(out, o.storage, o.compression, o.overwrite, max_bytes=o.max_bag_size,
                   max_duration_ns=int(o.max_bag_duration_s * 1e9)) as writer:
        try:
            context, node = start_node(NODE_NAME, ros_args or [])
        except ValueError as e:
            raise BagError(str(e)) from None
        sigterm_as_interrupt()
        names = sorted({node.resolve_topic_name(t) for t in topics})
        rec = _Recorder(node, writer, names, o, log)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        t0 = time.monotonic()
        next_discovery = t0
        next_flush = t0 + o.flush_interval_s
        closed = 0
        waiting_said = False
        why = "interrupted"
        log(f"writing {writer.storage_path.parent} (renamed to {out} when complete; if this process is "
            f"killed, `dense-descriptor bag recover {writer.storage_path.parent}` rebuilds it)")
        try:
            while context.ok():
                now = time.monotonic()
                if now >= next_flush and not rec.bad:
                    try:
                        writer.flush(o.fsync)
                    except OSError as e:  # disk full, ...: stop, keep what was written
                        rec.bad["(flush)"] = f"{type(e).__name__}: {e}"
                    next_flush = now + o.flush_interval_s
                if len(writer.files) > closed:
                    for f in writer.files[closed:]:
                        log(f"closed {f['path']} ({f['count']} messages)")
                    closed = len(writer.files)
                if now >= next_discovery and len(rec.subs) + len(rec.skipped) < len(names):
                    rec.discover()
                    next_discovery = now + o.discovery_period_s
                    missing = [t for t in names if t not in rec.subs and t not in rec.skipped]
                    if missing and not waiting_said and now - t0 > 2.0:
                        log(f"waiting for {', '.join(missing)} to appear")
                        waiting_said = True
                if o.duration_s is not None and now - t0 >= o.duration_s:
                    why = f"duration {o.duration_s:g} s reached"
                    break
                if rec.done_counting():
                    why = f"{o.count} messages on every topic"
                    break
                if rec.bad:
                    why = "write error: " + "; ".join(f"{t}: {e}" for t, e in rec.bad.items())
                    break
                executor.spin_once(timeout_sec=0.05)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.shutdown(timeout_sec=0.5)
            node.destroy_node()
            rclpy.try_shutdown(context=context)
        elapsed = time.monotonic() - t0
    total = sum(rec.counts.values())
    log(f"stopped ({why}) after {elapsed:.1f} s: wrote {out} with {total} messages")
    for t in names:
        note = f"  (not recorded: {rec.skipped[t]})" if t in rec.skipped else (
            "" if t in rec.subs else "  (never appeared)")
        log(f"  {t}: {rec.counts[t]}{note}")
    return 1 if rec.bad else 0
