"""`dense-descriptor bag info`: what a bag holds (topics, types, counts, rates, duration, storage).

No rclpy here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from .io import BagReader

__all__ = ["TopicSummary", "BagSummary", "bag_summary", "format_summary"]


@dataclass
class TopicSummary:
    """One topic: type, count and the rate measured from its log times."""

    name: str
    msgtype: str
    count: int
    known_type: bool  # messages can be deserialised (standard, ours, or defined in the bag)
    qos: str  # offered reliability / durability / depth as recorded ("" if not recorded)
    first_ns: int = 0
    last_ns: int = 0

    @property
    def rate_hz(self) -> float:
        """(count - 1) / (last - first) log time; 0 with fewer than two messages."""
        span = (self.last_ns - self.first_ns) / 1e9
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0


@dataclass
class BagSummary:
    """The whole bag."""

    path: str
    storage: str  # "mcap" | "sqlite3"
    compression: str  # e.g. "none", "zstd (mcap chunks)", "zstd (message)"
    size_bytes: int
    message_count: int
    start_ns: int
    end_ns: int
    topics: list[TopicSummary] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)  # the bag's custom_data
    files: list[str] = field(default_factory=list)  # storage files (several for a split bag)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9 if self.message_count else 0.0


def _qos(t) -> str:
    profiles = t.offered_qos
    if not profiles:
        return ""
    q = profiles[0]
    return f"{q.reliability.name.lower()}, {q.durability.name.lower()}, depth {q.depth}"


def bag_summary(path: str | Path, rates: bool = True) -> BagSummary:
    """Read the bag's index (and, with `rates`, every message's log time: one pass over the data).

    Raises:
        BagError: not a bag, corrupt or truncated.
    """
    with BagReader(path) as r:
        s = BagSummary(str(path), r.storage, r.compression, r.size_bytes, r.message_count, r.start_ns, r.end_ns,
                       custom=dict(r.custom), files=list(r.files))
        by_name = {}
        for name in sorted(r.topics):
            t = r.topics[name]
            by_name[name] = TopicSummary(name, t.msgtype, t.count, r.known_type(t.msgtype), _qos(t))
        if rates:
            for n in by_name.values():
                n.count = 0
            for topic, _, log_ns, _ in r.messages():
                t = by_name[topic]
                if t.count == 0:
                    t.first_ns = log_ns
                t.last_ns = log_ns
                t.count += 1
        s.topics = list(by_name.values())
    return s


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def format_summary(s: BagSummary) -> str:
    """Human-readable table, as `ros2 bag info` prints it plus per-topic rates."""
    def when(ns: int) -> str:
        return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).isoformat(timespec="milliseconds")

    lines = [f"bag:         {s.path}",
             f"storage:     {s.storage}, compression {s.compression}, {_size(s.size_bytes)}",
             f"messages:    {s.message_count}",
             f"duration:    {s.duration_s:.3f} s"]
    if len(s.files) > 1:
        lines.append(f"files:       {len(s.files)} (split): {', '.join(s.files)}")
    if s.message_count:
        lines += [f"start:       {when(s.start_ns)} ({s.start_ns} ns)", f"end:         {when(s.end_ns)}"]
    for k, v in sorted(s.custom.items()):
        lines.append(f"custom:      {k}: {v}")
    if s.topics:
        w_name = max(len(t.name) for t in s.topics)
        w_type = max(len(t.msgtype) + (10 if not t.known_type else 0) for t in s.topics)
        lines.append(f"topics ({len(s.topics)}):")
        for t in s.topics:
            typ = t.msgtype + ("" if t.known_type else " (unknown)")
            rate = f"{t.rate_hz:8.2f} Hz" if t.rate_hz else " " * 11
            lines.append(f"  {t.name:<{w_name}}  {typ:<{w_type}}  {t.count:7d} msgs {rate}"
                         + (f"  [{t.qos}]" if t.qos else ""))
    else:
        lines.append("topics:      none")
    return "\n".join(lines)
