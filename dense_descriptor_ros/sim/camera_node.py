"""`sim_camera`: a simulated RGB-D camera that publishes a rendered `Sequence` on ROS 2 topics.

Topics (relative, so `--ros-args -r __ns:=/cam` moves them all):

    color/image_raw                     sensor_msgs/Image rgb8
    aligned_depth_to_color/image_raw    sensor_msgs/Image 16UC1 millimetres (or 32FC1 metres)
    color/camera_info                   sensor_msgs/CameraInfo (K, P, plumb_bob with zero D)
    ground_truth/camera_pose            geometry_msgs/PoseStamped, frame "world": T_world_camera of the frame
    ground_truth/objects                geometry_msgs/PoseArray, frame "world": objects in Sequence.objects order
    ground_truth/frame_index            std_msgs/UInt32: the frame index (no header: use stamps to match)

The three camera topics and the two stamped ground-truth topics carry one identical header per frame
(frame_id camera_color_optical_frame for the camera, "world" for the ground truth). With stamp_mode
"sequence" the stamp of the i-th published frame is stamp_start + i / rate, so a consumer recovers the
frame index from any stamp: i = round((stamp - stamp_start) * rate) % N. With "now" it is the clock
time at publishing.

Messages are built once per frame index when the node starts; publishing only sets the stamps. With
wait_subscribers N the first frame goes out once each camera topic has N matched subscribers (and the
ground-truth subscriptions already in the graph matched too), so a test or a consumer started first
sees the sequence from frame 0.
Camera topics use sensor-data QoS (best effort, keep last 5; reliability is a parameter); ground
truth is reliable (keep last 10), which best-effort subscribers can also receive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, UInt32

from ..geometry.poses import pose_to_position_quaternion
from ..ros_core.image_codec import DEPTH_ENCODINGS, depth_to_image, rgb_to_image
from .sequence import Sequence

__all__ = ["CameraNodeOptions", "SimCameraNode", "OPTICAL_FRAME", "WORLD_FRAME"]

OPTICAL_FRAME = "camera_color_optical_frame"
WORLD_FRAME = "world"
STAMP_MODES = ("now", "sequence")
RELIABILITIES = ("best_effort", "reliable")


@dataclass
class CameraNodeOptions:
    """Publishing options; each is also a ROS parameter of the node (declared with this as default)."""

    rate: float = 30.0  # frames per second
    loop: bool = True  # after the last frame start again at the first
    count: int = 0  # stop after this many published frames (0: no limit)
    depth_encoding: str = "16UC1"  # "16UC1" (millimetres, 0 = none) or "32FC1" (metres, NaN = none)
    stamp_mode: str = "now"  # "now": clock time at publishing; "sequence": stamp_start + i / rate
    stamp_start: float = 1.0  # seconds, the first stamp in stamp_mode "sequence" (not 0: many tools read
    #                           a zero stamp as "unset")
    reliability: str = "best_effort"  # camera topics' QoS reliability: "best_effort" or "reliable"
    wait_subscribers: int = 0  # publish only once each camera topic has this many subscribers (0: at once)
    frame_id: str = OPTICAL_FRAME  # frame_id of the camera headers

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        checks = [
            (0 < self.rate <= 1000, f"rate must be in (0, 1000] Hz, got {self.rate}"),
            (self.count >= 0, f"count must be >= 0, got {self.count}"),
            (self.depth_encoding in DEPTH_ENCODINGS,
             f"depth_encoding must be one of {list(DEPTH_ENCODINGS)}, got {self.depth_encoding!r}"),
            (self.stamp_mode in STAMP_MODES, f"stamp_mode must be one of {list(STAMP_MODES)}, got {self.stamp_mode!r}"),
            (self.stamp_start >= 0, f"stamp_start must be >= 0, got {self.stamp_start}"),
            (self.reliability in RELIABILITIES,
             f"reliability must be one of {list(RELIABILITIES)}, got {self.reliability!r}"),
            (self.wait_subscribers >= 0, f"wait_subscribers must be >= 0, got {self.wait_subscribers}"),
            (bool(self.frame_id), "frame_id must not be empty"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def _pose(T) -> Pose:
    xyz, q = pose_to_position_quaternion(T)
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in xyz)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
    return p


class SimCameraNode(Node):
    """Publishes the frames of `seq` at `rate` Hz (see the module docstring for topics and stamps).

    `done` turns True when `count` frames were published (or the sequence ended without `loop`);
    `published`, `first_publish_s`, `last_publish_s` (time.monotonic) give the achieved rate.
    """

    # with wait_subscribers: wait this long after the camera topics matched (the subscriber side finishes
    # matching shortly after), and at most MATCH_WAIT_S for other known subscriptions to match
    MATCH_GRACE_S = 0.3
    MATCH_WAIT_S = 2.0

    def __init__(self, seq: Sequence, options: CameraNodeOptions | None = None, **node_kwargs) -> None:
        super().__init__("sim_camera", **node_kwargs)
        o = options or CameraNodeOptions()
        self.options = CameraNodeOptions(
            rate=self._number("rate", o.rate),
            loop=bool(self.declare_parameter("loop", o.loop).value),
            count=int(self.declare_parameter("count", o.count).value),
            depth_encoding=str(self.declare_parameter("depth_encoding", o.depth_encoding).value),
            stamp_mode=str(self.declare_parameter("stamp_mode", o.stamp_mode).value),
            stamp_start=self._number("stamp_start", o.stamp_start),
            reliability=str(self.declare_parameter("reliability", o.reliability).value),
            wait_subscribers=int(self.declare_parameter("wait_subscribers", o.wait_subscribers).value),
            frame_id=str(self.declare_parameter("frame_id", o.frame_id).value))
        self.options.validate()
        opts = self.options
        self.seq = seq
        sensor_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                reliability=ReliabilityPolicy.BEST_EFFORT if opts.reliability == "best_effort"
                                else ReliabilityPolicy.RELIABLE)
        truth_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pub_rgb = self.create_publisher(Image, "color/image_raw", sensor_qos)
        self._pub_depth = self.create_publisher(Image, "aligned_depth_to_color/image_raw", sensor_qos)
        self._pub_info = self.create_publisher(CameraInfo, "color/camera_info", sensor_qos)
        self._pub_pose = self.create_publisher(PoseStamped, "ground_truth/camera_pose", truth_qos)
        self._pub_objects = self.create_publisher(PoseArray, "ground_truth/objects", truth_qos)
        self._pub_index = self.create_publisher(UInt32, "ground_truth/frame_index", truth_qos)
        self._camera_pubs = (self._pub_rgb, self._pub_depth, self._pub_info)
        self._all_pubs = (*self._camera_pubs, self._pub_pose, self._pub_objects, self._pub_index)
        self._started = False
        self._build_messages()
        self.published = 0
        self.first_publish_s: float | None = None
        self.last_publish_s: float | None = None
        self.done = False
        self._matched_at: float | None = None
        self._timer = self.create_timer(1.0 / opts.rate, self._tick)
        self.get_logger().info(
            f"{seq.frames} frames {seq.width}x{seq.height} at {opts.rate:g} Hz ({'looping' if opts.loop else 'once'}"
            f"{f', {opts.count} frames' if opts.count else ''}), depth {opts.depth_encoding}, "
            f"stamps {opts.stamp_mode}, {opts.reliability}")

    def _number(self, name: str, default: float) -> float:
        """A float parameter that also takes integers (`-p rate:=15`)."""
        value = self.declare_parameter(name, float(default), ParameterDescriptor(dynamic_typing=True)).value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"parameter {name} must be a number, got {value!r}")
        return float(value)

    def _build_messages(self) -> None:
        """One Image pair, PoseStamped and UInt32 per frame index; one CameraInfo and PoseArray for all."""
        seq, opts = self.seq, self.options
        self._rgb, self._depth, self._pose, self._index = [], [], [], []
        for i in range(seq.frames):
            self._rgb.append(Image(header=Header(frame_id=opts.frame_id),
                                   **rgb_to_image(seq.rgb[i]).to_kwargs("array")))
            self._depth.append(Image(header=Header(frame_id=opts.frame_id),
                                     **depth_to_image(seq.depth[i], opts.depth_encoding).to_kwargs("array")))
            self._pose.append(PoseStamped(header=Header(frame_id=WORLD_FRAME), pose=_pose(seq.T_world_camera[i])))
            self._index.append(UInt32(data=i))
        K = seq.K.astype(float)
        P = [float(v) for v in (K[0, 0], K[0, 1], K[0, 2], 0.0, K[1, 0], K[1, 1], K[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0)]
        self._info = CameraInfo(header=Header(frame_id=opts.frame_id), height=seq.height, width=seq.width,
                                distortion_model="plumb_bob", d=[0.0] * 5, k=K.reshape(-1).tolist(),
                                r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], p=P)
        self._objects = PoseArray(header=Header(frame_id=WORLD_FRAME),
                                  poses=[_pose(o["T_world_object"]) for o in seq.objects])

    def _stamp(self) -> Time:
        if self.options.stamp_mode == "now":
            return self.get_clock().now().to_msg()
        ns = round(self.options.stamp_start * 1e9) + round(self.published * 1e9 / self.options.rate)
        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def _ready(self) -> bool:
        """With wait_subscribers: True once each camera topic has that many matched subscribers, every
        subscription the graph knows of on any of our topics (ground truth included) is matched (at most
        MATCH_WAIT_S), and MATCH_GRACE_S passed (the subscriber side finishes matching shortly after)."""
        n = self.options.wait_subscribers
        if n == 0 or self._started:
            return True
        now = time.monotonic()
        if self._matched_at is None:
            if all(p.get_subscription_count() >= n for p in self._camera_pubs):
                self._matched_at = now
            return False
        waited = now - self._matched_at
        known = all(p.get_subscription_count() >= self.count_subscribers(p.topic_name) for p in self._all_pubs)
        if waited >= self.MATCH_GRACE_S and (known or waited >= self.MATCH_WAIT_S):
            self._started = True
            self.get_logger().info(f"{n} subscriber(s) on each camera topic: publishing")
        return self._started

    def _tick(self) -> None:
        if self.done or not self._ready():
            return
        f = self.published % self.seq.frames
        stamp = self._stamp()
        rgb, depth, pose = self._rgb[f], self._depth[f], self._pose[f]
        for msg in (rgb, depth, self._info, pose, self._objects):
            msg.header.stamp = stamp
        self._pub_rgb.publish(rgb)
        self._pub_depth.publish(depth)
        self._pub_info.publish(self._info)
        self._pub_pose.publish(pose)
        self._pub_objects.publish(self._objects)
        self._pub_index.publish(self._index[f])
        now = time.monotonic()
        self.first_publish_s = self.first_publish_s if self.first_publish_s is not None else now
        self.last_publish_s = now
        self.published += 1
        opts = self.options
        if (opts.count and self.published >= opts.count) or (not opts.loop and self.published >= self.seq.frames):
            self.done = True
            self._timer.cancel()

    @property
    def achieved_rate(self) -> float | None:
        """Frames per second between the first and the last publish (None before two frames)."""
        if self.published < 2 or self.first_publish_s is None or self.last_publish_s is None:
            return None
        span = self.last_publish_s - self.first_publish_s
        return (self.published - 1) / span if span > 0 else None
