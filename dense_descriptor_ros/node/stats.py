"""Counters and rates for the node's diagnostics (pure Python, thread-safe, bounded memory)."""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

#: The node's own stages besides the pipeline, timed per frame and reported as `<stage>_ms_p50`:
#: input_wait: first input message of the frame received -> the last one received;
#: queue: frame complete -> the worker starts on it; decode: ROS messages -> a Frame (arrays);
#: publish: building and publishing the output messages.
STAGES = ("input_wait", "queue", "decode", "publish")


class WindowStats:
    """The last `size` samples of a quantity (latency in ms): percentiles without unbounded growth."""

    def __init__(self, size: int = 300) -> None:
        self._v: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._v.append(float(value))

    def percentiles(self, qs: tuple[float, ...] = (50, 95)) -> tuple[float, ...]:
        """NaN for each when empty."""
        with self._lock:
            v = np.array(self._v)
        return tuple(float(np.percentile(v, q)) if v.size else float("nan") for q in qs)

    def __len__(self) -> int:
        return len(self._v)


class NodeStats:
    """Everything /diagnostics reports; counters are totals since activation.

    rates(now) returns events per second since the previous call (the diagnostics timer calls it)."""

    def __init__(self, window: int = 300) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # received_color, received_depth, processed, superseded, ...
        self.bad_input: Counter[str] = Counter()  # reason -> frames dropped for it
        self.latency_ms = WindowStats(window)  # input stamp -> outputs published (needs the sender's clock)
        self.node_ms = WindowStats(window)  # last input of the frame received -> outputs published
        self.process_ms = WindowStats(window)  # the pipeline on one frame
        self.stage_ms = {name: WindowStats(window) for name in STAGES}  # the node's other stages (STAGES)
        self.inference_ms = WindowStats(window)  # network forward pass alone
        self._last_t: float | None = None
        self._last_counts: Counter[str] = Counter()

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def bad(self, reason: str) -> None:
        with self._lock:
            self.bad_input[reason] += 1
            self.counts["bad_input"] += 1

    def rates(self, now: float) -> dict[str, float]:
        """Per-second rate of every counter since the last call (empty on the first call)."""
        with self._lock:
            counts = Counter(self.counts)
        out: dict[str, float] = {}
        if self._last_t is not None and now > self._last_t:
            dt = now - self._last_t
            out = {k: (counts[k] - self._last_counts[k]) / dt for k in counts}
        self._last_t, self._last_counts = now, counts
        return out

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        with self._lock:
            return dict(self.counts), dict(self.bad_input)


class Throttle:
    """At most one report per key per `period_s`; counts what it held back (rclpy's own throttling is per
    call site, so different errors logged by one line would hide each other)."""

    def __init__(self, period_s: float = 5.0) -> None:
        self.period_s = period_s
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, key: str, now: float) -> int | None:
        """None: stay quiet; otherwise report, and this many were held back since the last report."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] += 1
                return None
            self._last[key] = now
            held, self._held[key] = self._held[key], 0
            return held
