"""Camera poses from a bag: a geometry_msgs/PoseStamped topic, or the TF tree (/tf and /tf_static).

Both give T_fixed_camera (4, 4) of the colour image's optical frame (OpenCV axes: x right, y down, z
forward) at an image's stamp:

* PoseStamped (the simulated camera's `ground_truth/camera_pose`): the message whose header stamp is
  nearest, within `slop`; its pose must be that of the optical frame, in its header's frame.
* TF: the chain from the optical frame (the images' header frame_id) up to `fixed_frame` (default: the
  root of the chain), each dynamic link interpolated at the stamp (linear position, slerp rotation),
  never extrapolated beyond `slop`.

No rclpy, no torch.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ros_core.sync import stamp_to_ns
from .io import BagError, BagReader

__all__ = ["POSE_STAMPED", "TF_MESSAGE", "quaternion_to_matrix", "PoseTrack", "TfTree", "pose_source"]

POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) -> (3, 3) rotation (normalised first)."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _transform(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(q)
    T[:3, 3] = t
    return T


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + a * (q1 - q0)
    else:
        th = np.arccos(d)
        q = (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)
    return q / np.linalg.norm(q)


@dataclass
class PoseTrack:
    """Stamped poses of one frame in a fixed frame (from a PoseStamped topic)."""

    frame_id: str  # the fixed frame (the messages' header frame_id)
    stamps_ns: np.ndarray  # (N,) int64, sorted
    T: np.ndarray  # (N, 4, 4) float64

    def lookup(self, stamp_ns: int, slop_ns: int) -> np.ndarray | None:
        """The pose stamped nearest to `stamp_ns`, if within `slop_ns`."""
        if len(self.stamps_ns) == 0:
            return None
        i = int(np.searchsorted(self.stamps_ns, stamp_ns))
        best = min((j for j in (i - 1, i) if 0 <= j < len(self.stamps_ns)),
                   key=lambda j: abs(int(self.stamps_ns[j]) - stamp_ns))
        return self.T[best].copy() if abs(int(self.stamps_ns[best]) - stamp_ns) <= slop_ns else None


@dataclass
class _Link:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    q: list[np.ndarray] = field(default_factory=list)

    def at(self, stamp_ns: int, slop_ns: int) -> np.ndarray | None:
        if self.static:
            return _transform(self.t[-1], self.q[-1])
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return _transform(self.t[i], self.q[i])
        if 0 < i < len(self.stamps):
            s0, s1 = self.stamps[i - 1], self.stamps[i]
            a = (stamp_ns - s0) / (s1 - s0)
            return _transform(self.t[i - 1] + a * (self.t[i] - self.t[i - 1]), _slerp(self.q[i - 1], self.q[i], a))
        j = 0 if i == 0 else len(self.stamps) - 1
        if self.stamps and abs(self.stamps[j] - stamp_ns) <= slop_ns:
            return _transform(self.t[j], self.q[j])
        return None


class TfTree:
    """Every transform of /tf and /tf_static, looked up along the chain of parents."""

    def __init__(self) -> None:
        self.links: dict[str, _Link] = {}  # child frame -> link to its parent

    def add(self, msg: Any, static: bool) -> None:
        """Add a tf2_msgs/TFMessage (rosbags object)."""
        for tr in msg.transforms:
            child = tr.child_frame_id.lstrip("/")
            parent = tr.header.frame_id.lstrip("/")
            link = self.links.get(child)
            if link is None or link.parent != parent or (static and not link.static):
                link = self.links[child] = _Link(parent, static)
            v, r = tr.transform.translation, tr.transform.rotation
            stamp = stamp_to_ns(tr.header.stamp)
            i = bisect.bisect_left(link.stamps, stamp)
            if i < len(link.stamps) and link.stamps[i] == stamp:
                continue
            link.stamps.insert(i, stamp)
            link.t.insert(i, np.array([v.x, v.y, v.z], np.float64))
            link.q.insert(i, np.array([r.x, r.y, r.z, r.w], np.float64))

    def chain(self, frame: str, fixed_frame: str = "") -> list[str]:
        """Frames from `frame` up to `fixed_frame` (or the root). Raises BagError if not connected."""
        frames = [frame.lstrip("/")]
        while frames[-1] in self.links and frames[-1] != fixed_frame:
            frames.append(self.links[frames[-1]].parent)
            if len(frames) > 64:
                raise BagError(f"TF: loop in the frames above {frame}")
        if fixed_frame and frames[-1] != fixed_frame:
            raise BagError(f"TF: {frame} is not connected to {fixed_frame} (its chain ends at {frames[-1]})")
        if len(frames) == 1:
            raise BagError(f"TF has no transform for frame {frame} (frames: {', '.join(sorted(self.links))})")
        return frames

    def lookup(self, frame: str, stamp_ns: int, fixed_frame: str = "", slop_ns: int = 20_000_000
               ) -> np.ndarray | None:
        """T_fixed_frame (4, 4) at `stamp_ns`, or None where a dynamic link has no data near it."""
        frames = self.chain(frame, fixed_frame)
        T = np.eye(4)
        for child in frames[:-1]:
            T_pc = self.links[child].at(stamp_ns, slop_ns)
            if T_pc is None:
                return None
            T = T_pc @ T
        return T


def _pose_track(reader: BagReader, topic: str) -> PoseTrack:
    stamps, Ts, frames = [], [], set()
    for _, msgtype, _, raw in reader.messages([topic]):
        try:
            m = reader.deserialize(raw, msgtype)
        except ValueError:
            continue
        p, q = m.pose.position, m.pose.orientation
        stamps.append(stamp_to_ns(m.header.stamp))
        Ts.append(_transform(np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])))
        frames.add(m.header.frame_id)
    if len(frames) > 1:
        raise BagError(f"{topic}: poses in several frames ({', '.join(sorted(frames))})")
    order = np.argsort(stamps, kind="stable")
    return PoseTrack(frames.pop() if frames else "", np.asarray(stamps, np.int64)[order],
                     np.asarray(Ts, np.float64).reshape(-1, 4, 4)[order])


def pose_source(reader: BagReader, pose_topic: str | None = None, fixed_frame: str = "",
                slop_s: float = 0.02) -> tuple[Callable[[int, str], np.ndarray | None] | None, str]:
    """A lookup (stamp ns, camera frame id) -> T_fixed_camera (4, 4) or None, and what it uses.

    Args:
        pose_topic: None / "" / "auto": the bag's PoseStamped topic (one, or the one ending in
            camera_pose), else TF if the bag has /tf or /tf_static, else no poses; "none": no poses;
            "tf": the TF tree; a topic name: that PoseStamped topic.
        fixed_frame: TF only: the frame the poses are in ("" = the root of the camera's chain).

    Returns:
        (None, "no camera poses") when there are none.

    Raises:
        BagError: a named topic missing or of another type.
    """
    slop = round(slop_s * 1e9)
    choice = (pose_topic or "auto").strip()
    tf_topics = [t for t in ("/tf", "/tf_static") if t in reader.topics and reader.topics[t].msgtype == TF_MESSAGE]
    if choice.lower() == "none":
        return None, "no camera poses"
    if choice.lower() == "auto":
        cands = sorted(t for t, i in reader.topics.items() if i.msgtype == POSE_STAMPED)
        if len(cands) > 1:
            cands = [t for t in cands if t.endswith("camera_pose")] or cands
            if len(cands) > 1:
                raise BagError(f"several PoseStamped topics ({', '.join(cands)}): name the camera's pose topic")
        if cands:
            choice = cands[0]
        elif tf_topics:
            choice = "tf"
        else:
            return None, "no camera poses"
    if choice.lower() == "tf":
        if not tf_topics:
            raise BagError(f"{reader.path} has no /tf or /tf_static ({TF_MESSAGE})")
        tree = TfTree()
        for topic, msgtype, _, raw in reader.messages(tf_topics):
            try:
                tree.add(reader.deserialize(raw, msgtype), static=topic == "/tf_static")
            except ValueError:
                continue
        return (lambda stamp, frame: tree.lookup(frame, stamp, fixed_frame, slop)), \
            f"TF ({', '.join(tf_topics)}) in {fixed_frame or 'the root frame'}"
    name = choice if choice.startswith("/") else f"/{choice}"
    if name not in reader.topics:
        raise BagError(f"{reader.path} has no topic {name}")
    if reader.topics[name].msgtype != POSE_STAMPED:
        raise BagError(f"{name} is {reader.topics[name].msgtype}, expected {POSE_STAMPED}")
    track = _pose_track(reader, name)
    return (lambda stamp, frame: track.lookup(stamp, slop)), f"{name} (PoseStamped in {track.frame_id!r})"
