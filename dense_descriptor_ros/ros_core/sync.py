"""Approximate-time synchronisation of colour, depth and camera info, with a newest-frame policy.

message_filters is not installable from PyPI, and the node needs a policy it does not have: the
network is slower than the camera, so only the newest complete frame matters and everything older is
dropped (and counted) instead of queueing up latency.

How a set is formed: the first stream (colour) is the pivot. For a pivot message at time t, each
other stream contributes its message nearest to t, if within `slop`. That choice is final once the
stream has a message stamped at or after t (per-stream stamps increase, so nothing later can be
nearer) or the difference is zero; until then the set waits. The newest pivot with a final,
complete set wins; older pivots and every message at or before the chosen ones are dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApproximateTimeSync", "SyncedFrame", "SyncStats", "stamp_to_ns"]

NS_PER_S = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time-like (sec, nanosec) -> integer nanoseconds (exact, unlike float seconds)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


@dataclass(frozen=True)
class SyncedFrame:
    """One matched set: a message per stream."""

    stamp_ns: int  # stamp of the pivot (colour) message; outputs carry the colour header
    messages: dict[str, Any]  # stream name -> message
    stamps_ns: dict[str, int]  # stream name -> that message's stamp

    def __getitem__(self, stream: str) -> Any:
        return self.messages[stream]


@dataclass
class SyncStats:
    """Counters since construction (reset() keeps them), for diagnostics."""

    received: dict[str, int] = field(default_factory=dict)  # messages given to add(), per stream
    dropped: dict[str, int] = field(default_factory=dict)  # messages that will never be in a set, per stream
    matched: int = 0  # sets formed
    superseded: int = 0  # sets replaced by a newer one before take() collected them
    resets: int = 0  # times the queues were cleared because time jumped backwards


class ApproximateTimeSync:
    """Match messages of several streams by header stamp; keep only the newest matched set.

    Args:
        streams: stream names; the first is the pivot whose stamp the set takes (colour).
        slop_s: largest stamp difference to the pivot [s] for a message to join its set.
        queue_size: messages kept per stream while waiting; the oldest is dropped when full.
        exact: only identical stamps match (slop_s is ignored).
        jump_back_reset_s: a message this much older than the last set means time went backwards
            (a looping bag, a restarted simulator): clear the queues and start again. So do `queue_size`
            stale messages in a row on one stream (time went back by less: a bag shorter than this looping,
            which would otherwise never be used again). None: never.

    Thread-safe: add() and take() may be called from concurrent callbacks.
    """

    def __init__(self, streams: tuple[str, ...] = ("color", "depth", "info"), slop_s: float = 0.02,
                 queue_size: int = 5, exact: bool = False, jump_back_reset_s: float | None = 1.0) -> None:
        if len(streams) < 1 or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be distinct names, got {streams}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop_s < 0:
            raise ValueError(f"slop_s must be >= 0, got {slop_s}")
        self.streams = tuple(streams)
        self.slop_ns = 0 if exact else round(slop_s * NS_PER_S)
        self.queue_size = queue_size
        self.jump_back_ns = None if jump_back_reset_s is None else round(jump_back_reset_s * NS_PER_S)
        self.stats = SyncStats(received=dict.fromkeys(streams, 0), dropped=dict.fromkeys(streams, 0))
        self._queues: dict[str, deque[tuple[int, Any]]] = {s: deque() for s in streams}
        self._latest: SyncedFrame | None = None
        self._last_ns: dict[str, int] | None = None  # stamps of the last set formed
        self._stale = dict.fromkeys(streams, 0)  # stale messages in a row, per stream
        self._lock = threading.Lock()

    def add(self, stream: str, stamp_ns: int, msg: Any) -> SyncedFrame | None:
        """Queue `msg` of `stream`; return the set it completed (also kept for take()), else None."""
        if stream not in self._queues:
            raise KeyError(f"unknown stream {stream!r}; streams are {self.streams}")
        with self._lock:
            self.stats.received[stream] += 1
            if self._last_ns is not None and stamp_ns <= self._last_ns[stream]:
                self._stale[stream] += 1
                if self.jump_back_ns is not None and (stamp_ns < self._last_ns[stream] - self.jump_back_ns
                                                      or self._stale[stream] >= self.queue_size):
                    self._clear()
                    self.stats.resets += 1
                else:  # older than what was already used: stale
                    self.stats.dropped[stream] += 1
                    return None
            else:
                self._stale[stream] = 0
            queue = self._queues[stream]
            # Keep each queue sorted by stamp; out-of-order arrivals are rare, so insert from the end.
            i = len(queue)
            while i > 0 and queue[i - 1][0] > stamp_ns:
                i -= 1
            queue.insert(i, (stamp_ns, msg))
            if len(queue) > self.queue_size:
                queue.popleft()
                self.stats.dropped[stream] += 1
            frame = self._match()
            if frame is not None:
                if self._latest is not None:
                    self.stats.superseded += 1
                self._latest = frame
            return frame

    def take(self) -> SyncedFrame | None:
        """The newest matched set not yet taken (older ones were superseded), or None."""
        with self._lock:
            frame, self._latest = self._latest, None
            return frame

    def reset(self) -> None:
        """Forget queued messages, the pending set and the last stamps (e.g. on a ROS time jump)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        for stream, queue in self._queues.items():
            self.stats.dropped[stream] += len(queue)
            queue.clear()
        self._latest = None
        self._last_ns = None
        self._stale = dict.fromkeys(self.streams, 0)

    def _best(self, stream: str, t: int) -> tuple[int, Any] | None:
        """The message of `stream` that is final for pivot time t, or None if none is (yet)."""
        queue = self._queues[stream]
        best = min(queue, key=lambda item: abs(item[0] - t), default=None)
        if best is None or abs(best[0] - t) > self.slop_ns:
            return None
        if best[0] != t and queue[-1][0] < t:
            return None  # a later message could still be nearer
        return best

    def _match(self) -> SyncedFrame | None:
        pivot, others = self.streams[0], self.streams[1:]
        for t, msg in reversed(self._queues[pivot]):  # newest pivot first
            chosen = {pivot: (t, msg)}
            for stream in others:
                best = self._best(stream, t)
                if best is None:
                    break
                chosen[stream] = best
            else:
                # Everything at or before the chosen messages can no longer be used.
                for stream, (ts, _) in chosen.items():
                    queue = self._queues[stream]
                    while queue and queue[0][0] <= ts:
                        item = queue.popleft()
                        if item[0] != ts:
                            self.stats.dropped[stream] += 1
                self.stats.matched += 1
                self._last_ns = {s: ts for s, (ts, _) in chosen.items()}
                return SyncedFrame(stamp_ns=t, messages={s: m for s, (_, m) in chosen.items()},
                                   stamps_ns={s: ts for s, (ts, _) in chosen.items()})
        return None
