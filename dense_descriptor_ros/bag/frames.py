"""RGB-D input sets from a bag: which topics hold colour, depth and camera info, and the node's
synchroniser fed with the bag's messages in log-time order.

A set is handed out only once the bag has moved past its log time, so a camera info recorded at the
same instant as the images (written after them) still counts as "the latest camera info", as it would
have for the live node. No rclpy here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..ros_core.sync import ApproximateTimeSync, stamp_to_ns
from ..ros_core.topics import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC
from .io import BagError, BagReader

__all__ = ["IMAGE", "CAMERA_INFO", "DEFAULT_SUFFIXES", "InputTopics", "SyncedInputs", "InputStats",
           "resolve_input_topics", "iter_synced"]

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
#: the node's default input names (the RealSense driver's, relative): a bag topic ending in one is picked
DEFAULT_SUFFIXES = {"color": COLOR_TOPIC, "depth": DEPTH_TOPIC, "info": INFO_TOPIC}
_TYPES = {"color": IMAGE, "depth": IMAGE, "info": CAMERA_INFO}
_OPTION = {"color": "--color-topic", "depth": "--depth-topic", "info": "--info-topic"}


@dataclass(frozen=True)
class InputTopics:
    """Bag topics of the inputs; depth / info None = not used (2D outputs only)."""

    color: str
    depth: str | None
    info: str | None


def _pick(reader: BagReader, stream: str, given: str | None) -> str | None:
    want = _TYPES[stream]
    if given is not None and given.lower() == "none":
        if stream == "color":
            raise BagError("the colour topic cannot be 'none'")
        return None
    if given:
        name = given if given.startswith("/") else f"/{given}"
        if name not in reader.topics:
            same = sorted(t for t, i in reader.topics.items() if i.msgtype == want)
            raise BagError(f"{reader.path} has no topic {name} ({want} topics: {', '.join(same) or 'none'})")
        if reader.topics[name].msgtype != want:
            raise BagError(f"{name} is {reader.topics[name].msgtype}, expected {want}")
        return name
    suffix = DEFAULT_SUFFIXES[stream]
    cands = sorted(t for t, i in reader.topics.items() if i.msgtype == want and t.endswith("/" + suffix))
    if len(cands) == 1:
        return cands[0]
    same = sorted(t for t, i in reader.topics.items() if i.msgtype == want)
    why = f"several topics end with {suffix}" if cands else f"no {want} topic ends with {suffix}"
    hint = "" if stream == "color" else f", or {_OPTION[stream]} none for 2D outputs only"
    raise BagError(f"{reader.path}: cannot pick the {stream} topic: {why} ({want} topics: "
                   f"{', '.join(same) or 'none'}); name it with {_OPTION[stream]}{hint}")


def resolve_input_topics(reader: BagReader, color: str | None = None, depth: str | None = None,
                         info: str | None = None) -> InputTopics:
    """The input topics: given names are checked (present, right type); None picks the one topic whose
    name ends with the node's default (e.g. /camera/camera/color/image_raw); "none" (depth, info) leaves
    the input out.

    Raises:
        BagError: a missing topic, a wrong type, or no unambiguous choice (the message lists candidates).
    """
    topics = InputTopics(_pick(reader, "color", color), _pick(reader, "depth", depth), _pick(reader, "info", info))
    if topics.depth is not None and topics.depth == topics.color:
        raise BagError(f"colour and depth are the same topic {topics.color}")
    return topics


@dataclass
class SyncedInputs:
    """One synchronised set (rosbags message objects)."""

    log_ns: int  # log time of the colour message (outputs are logged at it)
    color: Any  # sensor_msgs/Image
    depth: Any | None  # sensor_msgs/Image, None without a depth topic
    info: Any | None  # the latest CameraInfo at or before log_ns, None if none yet


@dataclass
class InputStats:
    """What happened to the input messages."""

    messages: dict[str, int] = field(default_factory=dict)  # stream -> messages read
    undecodable: dict[str, int] = field(default_factory=dict)  # stream -> messages whose bytes did not decode
    unmatched: dict[str, int] = field(default_factory=dict)  # stream -> messages in no set (synchroniser)
    synced: int = 0  # sets formed
    no_info: int = 0  # sets without any camera info before them (2D outputs only)
    first_errors: dict[str, str] = field(default_factory=dict)  # stream -> first decode error text


def iter_synced(reader: BagReader, topics: InputTopics, slop_s: float = 0.02, exact: bool = False,
                queue_size: int = 5, stats: InputStats | None = None, start_ns: int | None = None,
                on_message: Callable[[str, str, int, bytes], None] | None = None) -> Iterator[SyncedInputs]:
    """Synchronised sets of the bag in order, as the node would form them (ros_core.ApproximateTimeSync with
    the node's slop / exact / queue settings; the newest-set policy never drops anything here because every
    set is taken as soon as it forms).

    Args:
        stats: filled while iterating (unmatched counts are final when the iterator is exhausted).
        on_message: called with (topic, msgtype, log ns, raw bytes) for every input message read.

    Raises:
        BagError: damaged bag data.
    """
    stats = stats if stats is not None else InputStats()
    streams = ("color",) + (("depth",) if topics.depth else ())
    by_topic = {topics.color: "color"}
    if topics.depth:
        by_topic[topics.depth] = "depth"
    if topics.info:
        by_topic[topics.info] = "info"
    for s in by_topic.values():
        stats.messages.setdefault(s, 0)
        stats.undecodable.setdefault(s, 0)
    sync = ApproximateTimeSync(streams, slop_s=slop_s, queue_size=queue_size, exact=exact)
    latest_info = None
    pending: list[tuple[int, Any]] = []  # (log time at completion, SyncedFrame)

    def ready(frame) -> SyncedInputs:
        color, color_log = frame["color"]
        depth = frame["depth"][0] if topics.depth else None
        stats.synced += 1
        if latest_info is None and topics.info:
            stats.no_info += 1
        return SyncedInputs(color_log, color, depth, latest_info)

    for topic, msgtype, log_ns, raw in reader.messages(list(by_topic), start_ns=start_ns):
        while pending and pending[0][0] < log_ns:
            yield ready(pending.pop(0)[1])
        stream = by_topic[topic]
        stats.messages[stream] += 1
        if on_message is not None:
            on_message(topic, msgtype, log_ns, raw)
        try:
            msg = reader.deserialize(raw, msgtype)
            stamp = stamp_to_ns(msg.header.stamp)
        except (ValueError, AttributeError) as e:
            stats.undecodable[stream] += 1
            stats.first_errors.setdefault(stream, f"{topic}: {e}")
            continue
        if stream == "info":
            latest_info = msg
            continue
        frame = sync.add(stream, stamp, (msg, log_ns))
        if frame is not None:
            sync.take()
            pending.append((log_ns, frame))
    for _, frame in pending:
        yield ready(frame)
    sync.reset()  # what is still queued will never match
    stats.unmatched = {s: int(n) for s, n in sync.stats.dropped.items()}
