"""The rclpy side of `bag play` and `bag record`: message classes by type name, QoS both ways between
rclpy and the profiles a bag records, and a node in its own context. Imports rclpy."""

from __future__ import annotations

import importlib
import signal
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ["message_class", "qos_from_recorded", "recorded_from_qos", "start_node", "sigterm_as_interrupt"]


def message_class(msgtype: str) -> Any | None:
    """The rclpy class of "pkg/msg/Name", or None if that package is not installed here."""
    pkg, _, name = msgtype.partition("/msg/")
    if not pkg or not name:
        return None
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        return None


RELIABLE_REPLAY_DEPTH = 100  # > 3 s heartbeat period x 30 Hz


def qos_from_recorded(recorded: list[Any], msgtype: str, topic: str, reliability: str = "auto") -> QoSProfile:
    """Publisher QoS for replaying a topic.

    reliability "auto": as the first recorded publisher offered it; without a record, best effort for
    sensor_msgs (what camera drivers offer and the node subscribes with) and reliable otherwise.
    Durability: transient local if it was recorded so (or for /tf_static), else volatile.
    History: keep last, the recorded depth (10 without a record); a reliable publisher keeps at least
    RELIABLE_REPLAY_DEPTH, so a subscriber that missed a message can still have it resent: Fast DDS
    repairs a loss after a heartbeat (3 s by default), by which time a 30 Hz camera topic recorded with
    depth 5 has overwritten it.
    """
    from rosbags.interfaces import QosDurability, QosReliability

    q = recorded[0] if recorded else None
    if reliability == "auto":
        if q is not None and q.reliability in (QosReliability.RELIABLE, QosReliability.BEST_EFFORT):
            reliable = q.reliability == QosReliability.RELIABLE
        else:
            reliable = not msgtype.startswith("sensor_msgs/")
    else:
        reliable = reliability == "reliable"
    latched = (q is not None and q.durability == QosDurability.TRANSIENT_LOCAL) or topic.endswith("/tf_static")
    depth = max(int(q.depth), 1) if q is not None and q.depth else 10
    if reliable:
        depth = max(depth, RELIABLE_REPLAY_DEPTH)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=min(depth, 1000),
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def recorded_from_qos(profile: QoSProfile) -> Any:
    """A rosbags Qos record of an rclpy QoSProfile (what a publisher offered)."""
    from .io import qos_profile

    return qos_profile(reliable=profile.reliability == ReliabilityPolicy.RELIABLE, depth=int(profile.depth or 0),
                       transient_local=profile.durability == DurabilityPolicy.TRANSIENT_LOCAL)


def start_node(name: str, ros_args: list[str]):
    """(context, node) in a private rclpy context initialised with the ROS arguments.

    Raises:
        ValueError: ROS arguments rcl rejects.
    """
    import rclpy

    context = rclpy.Context()
    try:
        rclpy.init(args=["dense-descriptor", *ros_args], context=context)
    except Exception as e:  # rcl raises RCLError for malformed --ros-args
        raise ValueError(f"cannot initialise ROS with {' '.join(ros_args) or 'no arguments'}: {e}") from None
    return context, rclpy.create_node(name, context=context)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """SIGTERM stops like Ctrl-C (a clean end: the bag is closed, the report printed)."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
