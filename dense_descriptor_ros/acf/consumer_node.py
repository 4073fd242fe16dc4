"""`acf_consumer`: a downstream consumer of the descriptor node's keypoints, shaped like an
affordance-coordinate-frame module. It turns each KeypointArray into the mug handle's frame
(acf/handle_frame.py), publishes it, and scores it against simulator ground truth over time
(the logic is in acf/consumer.py; this is the rclpy shell).

Topics:

    in   <keypoints_topic>     dense_descriptor_ros/KeypointArray (default /dense_descriptor/keypoints)
    in   <camera_pose_topic>   geometry_msgs/PoseStamped: only its publish time per stamp, for the latency
                               camera -> consumer (default ground_truth/camera_pose; "" = off)
    in   <diagnostics_topic>   diagnostic_msgs/DiagnosticArray: the descriptor node's status, shown in the
                               summary (default /diagnostics; "" = off)
    in   <labels_topic>        sensor_msgs/Image mono8: the descriptor node's part labels (~/labels); keypoints
                               on background pixels of the same stamp count as missing (default "" = off)
    out  ~/handle_pose         geometry_msgs/PoseStamped: the handle frame in the keypoints' optical frame
                               with their header (x = approach, z = axis; HandleFrame.rotation)

Ground truth (parameter ground_truth_file, optional) is the JSON of `sim camera --save-ground-truth`, with
the camera in `--stamp-mode sequence`: each stamp decodes to its frame index (acf/evaluation.py says why
this beats matching camera-pose stamps). The file may appear after the consumer starts (the camera writes
it once its sequence is ready); it is loaded on first use. Without it frames are published and counted,
not scored. A line per log_period reports the running errors; `finish()` gives the summary.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import Image

from .. import msg as ddr_msg
from ..geometry.poses import pose_to_position_quaternion
from .consumer import ConsumerOptions, HandleFrameConsumer
from .handle_frame import FILTER_METHODS

__all__ = ["AcfConsumerNode", "pose_msg", "DESCRIPTOR_STATUS_SUFFIX", "HANDLE_POSE_TOPIC",
           "KEYPOINTS_MATCHED"]

HANDLE_POSE_TOPIC = "~/handle_pose"
#: logged once the keypoints subscription has a publisher
KEYPOINTS_MATCHED = "keypoints publisher matched"
#: the descriptor node's DiagnosticStatus name ends with this
DESCRIPTOR_STATUS_SUFFIX = ": descriptors"
#: camera-pose publish times kept for the latency (10 s at 30 Hz)
PUBLISHED_KEPT = 300
#: label images kept while waiting for the keypoints of their frame
LABELS_KEPT = 30
#: how long keypoints wait for their frame's label image before they are used without a mask [s]
LABELS_WAIT_S = 0.2


def pose_msg(header, T: np.ndarray) -> PoseStamped:
    """PoseStamped of a (4, 4) transform with the given header."""
    xyz, q = pose_to_position_quaternion(T)
    p = PoseStamped(header=header)
    p.pose.position.x, p.pose.position.y, p.pose.position.z = (float(v) for v in xyz)
    p.pose.orientation.x, p.pose.orientation.y, p.pose.orientation.z, p.pose.orientation.w = (float(v) for v in q)
    return p


class AcfConsumerNode(Node):
    """See the module docstring. `done` turns True after `count` keypoint messages."""

    def __init__(self, options: ConsumerOptions | None = None, **node_kwargs) -> None:
        super().__init__("acf_consumer", **node_kwargs)
        o = options or ConsumerOptions()
        opts = ConsumerOptions(
            keypoints_topic=self._param("keypoints_topic", o.keypoints_topic),
            ground_truth_file=self._param("ground_truth_file", o.ground_truth_file),
            camera_pose_topic=self._param("camera_pose_topic", o.camera_pose_topic),
            diagnostics_topic=self._param("diagnostics_topic", o.diagnostics_topic),
            filter=self._param("filter", o.filter, f"one of {', '.join(FILTER_METHODS)}"),
            filter_alpha=self._number("filter_alpha", o.filter_alpha),
            filter_window=self._param("filter_window", o.filter_window),
            filter_max_gap=self._param("filter_max_gap", o.filter_max_gap),
            min_score=self._number("min_score", o.min_score),
            labels_topic=self._param("labels_topic", o.labels_topic, "mono8 label image; keypoints on background "
                                     "pixels count as missing ('' = no object mask)"),
            qos_reliability=self._param("qos_reliability", o.qos_reliability, "reliable or best_effort"),
            log_period=self._number("log_period", o.log_period),
            count=self._param("count", o.count))
        self.consumer = HandleFrameConsumer(opts, self._log)  # validates: ValueError names the bad option
        self.options = opts
        self._published: dict[int, int] = {}  # camera stamp (ns) -> its publish time (DDS source timestamp, ns)
        self.diagnostics: dict[str, str] = {}  # the descriptor node's last status values
        self._active_diagnostics: dict[str, str] = {}  # its last status while frames came in (for the rates)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE if opts.qos_reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        self._pub = self.create_publisher(PoseStamped, HANDLE_POSE_TOPIC, 10)
        if opts.camera_pose_topic:
            # Created before the keypoints subscription: the executor serves ready subscriptions in creation
            # order, so a camera pose is recorded before the keypoints of its frame. Best effort matches
            # reliable and best-effort publishers alike.
            self.create_subscription(PoseStamped, opts.camera_pose_topic, self._on_camera_pose,
                                     QoSProfile(depth=30, reliability=ReliabilityPolicy.BEST_EFFORT))
        self._sub = self.create_subscription(ddr_msg.KeypointArray, opts.keypoints_topic, self._on_keypoints, qos)
        self._labels: dict[int, np.ndarray] = {}  # stamp (ns) -> label image, the last LABELS_KEPT
        # stamp -> (keypoints, latency, arrival) waiting for their label image (at most LABELS_WAIT_S), in order
        self._pending: dict[int, tuple[Any, float, float]] = {}
        if opts.labels_topic:
            self.create_timer(LABELS_WAIT_S / 2, self._drain)
            # created before the keypoints subscription, for the same reason as the camera pose: the node
            # publishes a frame's labels before its keypoints
            self.create_subscription(Image, opts.labels_topic, self._on_labels, qos)
        if opts.diagnostics_topic:
            self.create_subscription(DiagnosticArray, opts.diagnostics_topic, self._on_diagnostics, 10)
        if opts.log_period > 0:
            self.create_timer(opts.log_period, self._report)
        self._match_timer = self.create_timer(0.1, self._check_matched)
        self.get_logger().info(f"listening on {self._sub.topic_name}, publishing {self._pub.topic_name}; "
                               f"filter {opts.filter}; ground truth {opts.ground_truth_file or 'none'}")

    @property
    def done(self) -> bool:
        return self.consumer.done

    def _log(self, level: str, text: str) -> None:
        getattr(self.get_logger(), level)(text)

    def _param(self, name: str, default: Any, description: str = "") -> Any:
        value = self.declare_parameter(name, default, ParameterDescriptor(description=description)).value
        if type(value) is not type(default):
            raise ValueError(f"parameter {name} must be a {type(default).__name__}, got {value!r}")
        return value

    def _number(self, name: str, default: float) -> float:
        """A float parameter that also takes integers (`-p min_score:=0`)."""
        value = self.declare_parameter(name, float(default), ParameterDescriptor(dynamic_typing=True)).value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"parameter {name} must be a number, got {value!r}")
        return float(value)

    # ------------------------------------------------------------------ callbacks
    def _check_matched(self) -> None:
        """Say once that a keypoints publisher matched (`dense-descriptor pipeline` starts the camera then, so
        the descriptor node does not drop the first frames for want of subscribers)."""
        count = getattr(self._sub, "get_publisher_count", None)  # rclpy >= Jazzy; else the graph's count
        n = count() if count is not None else self.count_publishers(self._sub.topic_name)
        if n > 0:
            self._match_timer.cancel()
            self.get_logger().info(f"{KEYPOINTS_MATCHED} ({n} publisher{'s' if n > 1 else ''})")

    def _on_camera_pose(self, msg: PoseStamped, info: MessageInfo) -> None:
        self._published[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = info["source_timestamp"]
        if len(self._published) > PUBLISHED_KEPT:
            del self._published[next(iter(self._published))]  # dicts keep insertion order: the oldest

    def _on_labels(self, msg: Image) -> None:
        if msg.encoding != "mono8" or msg.step != msg.width or len(msg.data) != msg.height * msg.width:
            self.get_logger().warning(f"labels must be mono8 without padding, got {msg.encoding} "
                                      f"{msg.width}x{msg.height} step {msg.step}", throttle_duration_sec=5.0)
            return
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self._labels[stamp] = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
        if len(self._labels) > LABELS_KEPT:
            del self._labels[next(iter(self._labels))]
        self._drain()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(DESCRIPTOR_STATUS_SUFFIX):
                values = {kv.key: kv.value for kv in status.values}
                self.diagnostics = values
                try:
                    if float(values.get("input_rate_hz", "0")) > 0:
                        self._active_diagnostics = values
                except ValueError:
                    pass

    def _on_keypoints(self, msg, info: MessageInfo) -> None:
        if self.done:
            return
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        # DDS's own times (system clock, one machine): keypoints received here - camera pose published; not
        # the time the callback runs, which a backlog in this process would add
        published = self._published.get(stamp)
        latency = (info["received_timestamp"] - published) * 1e-6 if published else math.nan
        if self.options.labels_topic:
            # its label image travels on another topic with no ordering between them: queue the keypoints
            # (in arrival order, which the temporal filter needs) until it is there or LABELS_WAIT_S passed
            self._pending[stamp] = (msg, latency, time.monotonic())
            self._drain()
            return
        self._handle(msg, stamp, latency, None)

    def _drain(self, max_age_s: float = LABELS_WAIT_S) -> None:
        """Process the queued keypoints in order: the oldest with its label image, or without a mask once it
        waited `max_age_s`; stop at the first that may still get its image."""
        now = time.monotonic()
        while self._pending:
            stamp, (msg, latency, t) = next(iter(self._pending.items()))
            labels = self._labels.pop(stamp, None)
            if labels is None and now - t < max_age_s:
                return
            del self._pending[stamp]
            if not self.done:
                self._handle(msg, stamp, latency, labels)

    def _handle(self, msg, stamp: int, latency: float, labels: np.ndarray | None) -> None:
        points = {kp.name: np.array([kp.position.x, kp.position.y, kp.position.z]) for kp in msg.keypoints}
        valid = {kp.name: kp.position_valid for kp in msg.keypoints}
        scores = {kp.name: kp.score for kp in msg.keypoints}
        pixels = {kp.name: (kp.pixel_x, kp.pixel_y) for kp in msg.keypoints}
        frame, _ = self.consumer.process(stamp, points, valid, scores, latency, pixels, labels)
        if frame is not None:
            try:
                self._pub.publish(pose_msg(msg.header, frame.matrix()))
            except ValueError as e:  # no approach, and the handle axis points at the camera
                self.get_logger().warning(f"no orientation for the handle frame: {e}", throttle_duration_sec=5.0)

    def _report(self) -> None:
        line = self.consumer.progress_line()
        if line:
            self.get_logger().info(line)

    # ------------------------------------------------------------------ the end
    def diagnostics_line(self) -> str | None:
        """The descriptor node's last status in one line (None if none arrived); rates from its last status
        while frames came in. The node's latency is `clock now - stamp`, meaningless for the simulator's
        sequence stamps, so it is shown only without ground truth; the consumer's own latency (camera publish
        -> keypoints here) is in the summary."""
        d, active = self.diagnostics, self._active_diagnostics or self.diagnostics
        if not d:
            return None
        parts = [f"backend {d.get('backend', '?')}", f"input {active.get('input_rate_hz', '?')} Hz",
                 f"output {active.get('output_rate_hz', '?')} Hz",
                 f"process p50 {d.get('process_ms_p50', '?')} ms / p95 {d.get('process_ms_p95', '?')} ms",
                 f"inference p50 {d.get('inference_ms_p50', '?')} ms", f"processed {d.get('frames_processed', '?')}",
                 f"dropped busy {d.get('frames_dropped_busy', '?')}",
                 f"idle (no subscribers) {d.get('frames_idle_no_subscribers', '?')}"]
        if self.consumer.truth is None:
            parts.append(f"latency p50 {d.get('latency_ms_p50', '?')} ms / p95 {d.get('latency_ms_p95', '?')} ms")
        return "descriptor node: " + ", ".join(parts)

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Wait until the subscribers acknowledged every handle pose (after `count` messages the process exits
        right after the last one, which would otherwise be lost for readers that had not acknowledged it)."""
        from rclpy.duration import Duration

        return self._pub.wait_for_all_acked(Duration(nanoseconds=int(timeout_s * 1e9)))

    def finish(self, out_dir: str | Path | None = None) -> list[str]:
        """Summary lines; with `out_dir` also the CSV, plot and JSON (HandleFrameConsumer.finish)."""
        self._drain(0.0)
        diag = self.diagnostics_line()
        return self.consumer.finish(out_dir, [diag] if diag else [],
                                    {"descriptor_node_diagnostics": self.diagnostics})
