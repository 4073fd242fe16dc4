"""`dense-descriptor bag play`: publish a bag's messages on live topics at the recorded rate.

The serialised bytes go out unchanged (`publisher.publish(bytes)`) with rclpy publishers of the recorded
types, each message at `start + (log time - first log time) / rate` on the monotonic clock. With
`clock`, /clock carries the bag's time (for nodes with use_sim_time). Imports rclpy.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .io import BagError, BagReader

__all__ = ["PlayOptions", "play_bag"]

NODE_NAME = "dense_descriptor_bag_player"
#: At the end of the bag, wait at most this long for reliable subscribers to acknowledge the last messages.
ACK_TIMEOUT_S = 5.0  # longer than one Fast DDS heartbeat period (3 s), after which a lost message is resent
#: ... and then this long more, for best-effort subscribers (nothing acknowledges to them): a player that destroys its
#: writers right after the last message can take it with it before it is on the wire.
LINGER_S = 0.5


@dataclass
class PlayOptions:
    """How to replay."""

    rate: float = 1.0  # speed factor (2: twice as fast)
    loop: bool = False  # start again at the end until interrupted
    start_s: float = 0.0  # skip this many seconds from the bag's start
    topics: list[str] | None = None  # bag topics to play (None: all)
    remap: dict[str, str] = field(default_factory=dict)  # bag topic -> published topic
    clock: bool = False  # publish /clock (rosgraph_msgs/Clock) with the bag's time
    clock_rate: float = 40.0  # /clock messages per second of play time
    reliability: str = "auto"  # "auto" (as recorded; else best effort for sensor_msgs), "best_effort", "reliable"
    wait_subscribers: int = 0  # start once every played topic has this many subscribers
    wait_timeout_s: float = 30.0  # ... or fail after this long
    report: bool = True  # one line per pass

    def validate(self) -> None:
        if not self.rate > 0 or not self.clock_rate > 0:
            raise BagError(f"rate and clock_rate must be > 0, got {self.rate}, {self.clock_rate}")
        if self.start_s < 0 or self.wait_subscribers < 0:
            raise BagError("start_s and wait_subscribers must be >= 0")
        if self.reliability not in ("auto", "best_effort", "reliable"):
            raise BagError(f"reliability must be auto, best_effort or reliable, got {self.reliability!r}")


def _absolute(name: str) -> str:
    return name if name.startswith("/") else f"/{name}"


def play_bag(path: str | Path, options: PlayOptions | None = None, ros_args: list[str] | None = None,
             log=print) -> int:
    """Replay `path` (see module docstring); returns the exit code (0 = played, or stopped by Ctrl-C).

    Raises:
        BagError: unreadable bag, unknown topics, no playable topic, subscribers that never came.
    """
    o = options or PlayOptions()
    o.validate()
    with BagReader(path) as reader:
        names = [_absolute(t) for t in o.topics] if o.topics else sorted(reader.topics)
        missing = [t for t in names if t not in reader.topics]
        if missing:
            raise BagError(f"{path} has no topic {', '.join(missing)} (topics: {', '.join(sorted(reader.topics))})")
        unknown_remap = [t for t in o.remap if t not in names]
        if unknown_remap:
            raise BagError(f"--remap of {', '.join(unknown_remap)}: not a played topic of {path}")
        import rclpy
        from rclpy.executors import ExternalShutdownException

        from .rclpy_io import message_class, qos_from_recorded, sigterm_as_interrupt, start_node

        classes = {}
        for t in names:
            cls = message_class(reader.topics[t].msgtype)
            if cls is None:
                print(f"skipping {t}: message type {reader.topics[t].msgtype} is not installed here", file=sys.stderr)
            else:
                classes[t] = cls
        if not classes:
            raise BagError("no topic can be played (their message types are not installed)")
        try:
            context, node = start_node(NODE_NAME, ros_args or [])
        except ValueError as e:
            raise BagError(str(e)) from None
        sigterm_as_interrupt()
        counts = dict.fromkeys(classes, 0)
        try:
            pubs = {}
            for t, cls in classes.items():
                info = reader.topics[t]
                qos = qos_from_recorded(info.offered_qos, info.msgtype, t, o.reliability)
                pubs[t] = node.create_publisher(cls, o.remap.get(t, t), qos)
                log(f"{t} -> {pubs[t].topic_name} ({info.msgtype}, {info.count} msgs, "
                    f"{qos.reliability.name.lower()}, {qos.durability.name.lower()})")
            clock_pub = None
            if o.clock:
                from rclpy.qos import QoSProfile
                from rosgraph_msgs.msg import Clock

                clock_pub = node.create_publisher(Clock, "/clock", QoSProfile(depth=1))
            if o.wait_subscribers:
                _wait_for_subscribers(pubs, o.wait_subscribers, o.wait_timeout_s, context)
            start_ns = reader.start_ns + round(o.start_s * 1e9)
            passes = 0
            while context.ok():
                n, wall = _one_pass(reader, pubs, counts, start_ns, o, clock_pub, context)
                passes += 1
                if o.report:
                    span = (reader.end_ns - start_ns) / 1e9
                    log(f"pass {passes}: published {n} messages in {wall:.2f} s (bag span {max(span, 0):.2f} s "
                        f"at rate {o.rate:g})")
                if not o.loop or n == 0:
                    break
            _wait_for_acks(pubs, ACK_TIMEOUT_S, log)
        except (KeyboardInterrupt, ExternalShutdownException):
            log("stopped")
        finally:
            log("published: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
            node.destroy_node()
            rclpy.try_shutdown(context=context)
    return 0


def _wait_for_acks(pubs: dict, timeout_s: float, log) -> None:
    """Wait (up to timeout_s in all) until every reliable subscriber has acknowledged what was published: a player
    that exits right after its last message can take that message with it (seen on a loaded 2-core machine: 29 of
    30 frames recorded). Best-effort subscriptions (the descriptor node's default) acknowledge nothing, so the player
    then lingers LINGER_S (the demo's node missed the bag's last frame in 2 of 4 full test runs without it)."""
    from rclpy.duration import Duration

    t_end = time.monotonic() + timeout_s
    for pub in pubs.values():
        left = t_end - time.monotonic()
        if left <= 0 or not pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
            log(f"warning: not every subscriber acknowledged the last messages within {timeout_s:g} s")
            return
    if any(p.get_subscription_count() for p in pubs.values()):
        time.sleep(LINGER_S)


SUBSCRIBER_SETTLE_S = 1.0


def _wait_for_subscribers(pubs: dict, n: int, timeout_s: float, context) -> None:
    t_end = time.monotonic() + timeout_s
    while context.ok():
        short = {t: p.get_subscription_count() for t, p in pubs.items() if p.get_subscription_count() < n}
        if not short:
            # The subscriber side matches our writers a moment later, and a volatile reader that has not matched
            # a writer yet drops its first messages for good: 1 s (was 0.3 s) leaves room on a loaded machine.
            time.sleep(SUBSCRIBER_SETTLE_S)
            return
        if time.monotonic() > t_end:
            raise BagError(f"no {n} subscriber(s) after {timeout_s:g} s on "
                           + ", ".join(f"{t} ({c})" for t, c in short.items()))
        time.sleep(0.05)


def _clock_msg(ns: int):
    from builtin_interfaces.msg import Time
    from rosgraph_msgs.msg import Clock

    return Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))


def _one_pass(reader: BagReader, pubs: dict, counts: dict, start_ns: int, o: PlayOptions, clock_pub,
              context) -> tuple[int, float]:
    """Publish every selected message from start_ns on; returns (messages, wall seconds)."""
    t0 = time.monotonic()
    clock_dt = 1.0 / o.clock_rate
    next_clock = t0
    n = 0

    def tick_clock(now: float) -> None:
        nonlocal next_clock
        if clock_pub is not None and now >= next_clock:
            clock_pub.publish(_clock_msg(start_ns + round((now - t0) * o.rate * 1e9)))
            next_clock = now + clock_dt

    for topic, _, log_ns, raw in reader.messages(list(pubs), start_ns=start_ns):
        target = t0 + (log_ns - start_ns) / 1e9 / o.rate
        while True:
            now = time.monotonic()
            tick_clock(now)
            if now >= target or not context.ok():
                break
            wait = target - now
            if clock_pub is not None:
                wait = min(wait, max(next_clock - now, 0.0))
            time.sleep(min(wait, 0.05))
        if not context.ok():
            break
        pubs[topic].publish(raw)
        counts[topic] += 1
        n += 1
    return n, time.monotonic() - t0
