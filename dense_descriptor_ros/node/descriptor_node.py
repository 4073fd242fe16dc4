"""The descriptor node: RGB-D in, descriptor maps / PCA image / named 3D keypoints / correspondences out.

A thin ROS shell around `dense_descriptor_ros.pipeline` (docs/ros_node.md). Lifecycle (yolo_ros style):
parameters are declared in __init__; configure reads them, checks the model and keypoint files and
creates the publishers; activate loads and warms up the model and subscribes; deactivate unsubscribes
and frees the model; cleanup destroys the publishers.

Threading: subscription callbacks only decode stamps and hand messages to the synchroniser; one worker
thread takes the newest synchronised frame, runs the pipeline and publishes. A frame that arrives while
the worker is busy replaces the waiting one (counted as superseded): latency stays bounded and memory
constant whatever the input rate.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from .. import msg as ddr_msg
from ..matcher.runtime import LearnedMatcher
from ..matching.keypoints import ReferenceKeypoints
from ..pipeline import FrameProcessor, Wanted
from ..pipeline.inputs import (
    DECODE_ERRORS,
    bad_input_reason,
    decode_frame,
    load_part_probe,
    load_reference_keypoints,
    resolve_matcher_file,
)
from ..pipeline.outputs import OUTPUT_SPECS, MessageTypes, output_messages
from ..ros_core.sync import ApproximateTimeSync, stamp_to_ns
from ..ros_core.topics import COLOR_TOPIC, DEPTH_TOPIC, DIAGNOSTICS_TOPIC, INFO_TOPIC, NODE_NAME
from ..runtime.extractor import BackendFallbackError, DescriptorExtractor
from ..runtime.model_files import ModelFileError, probe_model, resolve_model_path
from ..runtime.part_probe import BACKGROUND, PartProbe
from .params import LIVE, NodeSettings, parameter_table
from .stats import NodeStats, Throttle

FLOAT_PARAMS = {name: default for name, default, *_ in parameter_table() if isinstance(default, float)}
# What NodeSettings enforces beyond the type, described to parameter tools.
CONSTRAINTS = {**dict.fromkeys(("map_stride", "correspondence_max", "sync_queue", "qos_depth"),
                               "an integer >= 1"),
               "keypoint_min_confidence": "0 to 1", "num_threads": "an integer >= 0",
               "depth_window": "an odd integer >= 1",
               "resolution": "[width, height] > 0, or [0, 0]", "diagnostics_period": "> 0"}
#: an output of the node, not a setting: class id -> name of the labels topic (from the part probe, at configure)
LABEL_CLASSES = "label_classes"
JUMP_BACK_S = 1.0  # a message this much older than the last frame means time went backwards: start again
# (so do sync_queue stale messages in a row: a shorter step back, e.g. the 1 s sample bag played in a loop)
THROTTLE_S = 5.0  # repeated input errors are logged at most once per this many seconds

MESSAGE_TYPES = MessageTypes(Header=Header, Time=Time, Point=Point, DescriptorMap=ddr_msg.DescriptorMap,
                             Keypoint=ddr_msg.Keypoint, KeypointArray=ddr_msg.KeypointArray,
                             Correspondences=ddr_msg.Correspondences, Image=Image, arrays="array")


def message_class(type_name: str) -> type:
    """The rclpy class of a "package/msg/Name" message type (our messages and sensor_msgs)."""
    pkg, _, name = type_name.partition("/msg/")
    module = ddr_msg if pkg == "dense_descriptor_ros" else importlib.import_module(f"{pkg}.msg")
    return getattr(module, name)


def _descriptor(help: str, choices: tuple | None, constraints: str) -> ParameterDescriptor:
    text = help + (f" (one of: {', '.join(choices)})" if choices else "")
    # Every parameter takes any type here and NodeSettings checks type and range, for the command line,
    # params files and `ros2 param set` alike: rclpy's own typing and ranges would turn
    # `-p map_stride:=abc` or `-p keypoint_min_confidence:=2.0` at start-up into a traceback. The ranges are
    # still described for tools (additional_constraints).
    return ParameterDescriptor(description=text, dynamic_typing=True, additional_constraints=constraints)


def _as_declared(name: str, value: Any) -> Any:
    """An integer given for a float parameter (`-p keypoint_min_confidence:=0`) stored as the float it means,
    so that it reads back as 0.0."""
    if name in FLOAT_PARAMS and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class DescriptorNode(LifecycleNode):
    """Lifecycle node computing dense descriptors and their products for each RGB-D frame."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, default, help, choices in parameter_table():
            value = list(default) if isinstance(default, tuple) else default
            try:
                param = self.declare_parameter(name, value, _descriptor(help, choices, CONSTRAINTS.get(name, "")))
            except ParameterException as e:  # not expected with dynamic typing; never a traceback at start-up
                raise ValueError(f"parameter {name}: {e}") from e
            if (fixed := _as_declared(name, param.value)) is not param.value:
                self.set_parameters([Parameter(name, value=fixed)])
        self.settings = self._read_settings()  # bad values on the command line or in params files fail here
        self.declare_parameter(LABEL_CLASSES, [BACKGROUND], ParameterDescriptor(
            description="output, set by the node at configure: class id -> name of the labels topic's pixels "
                        "(from part_probe_file; ['background'] alone when there is no probe)"))
        self._setting_outputs = False  # True while the node itself writes LABEL_CLASSES
        self.add_pre_set_parameters_callback(self._convert_parameters)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = NodeStats()
        self._pubs: dict[str, Any] = {}
        self._subs: list[Any] = []
        # /diagnostics in every state (a plain publisher, not a lifecycle one): a monitor then shows an inactive
        # or unconfigured node as such, with the reason of a failed transition, instead of as stale
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diag_timer = None
        self._lifecycle = "unconfigured"  # the state the node is in, for /diagnostics
        self._failure = ""  # why the last configure or activate failed ("" if it did not)
        self._resets_seen = 0  # synchroniser resets (time jumped backwards) already reported
        self._reference: ReferenceKeypoints | None = None
        self._probe: PartProbe | None = None
        self._matcher_path = None  # the learned matcher's file (resolved at configure, loaded at activate)
        self._model_path = None
        self._processor: FrameProcessor | None = None
        self._sync: ApproximateTimeSync | None = None
        self._info_lock = threading.Lock()
        self._info_msg: CameraInfo | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._backend_text = "not loaded"
        self._throttle = Throttle(THROTTLE_S)
        self.done = False  # finalized by the shutdown transition: `dense-descriptor node` then exits
        self._start_diagnostics()

    def _start_diagnostics(self) -> None:
        """The /diagnostics timer, on the steady clock: it keeps its period when ROS time (use_sim_time with a
        bag's /clock) stops or jumps backwards."""
        if self._diag_timer is not None:
            if self._diag_timer.timer_period_ns == round(self.settings.diagnostics_period * 1e9):
                return
            self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(self.settings.diagnostics_period, self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _failed(self, text: str) -> TransitionCallbackReturn:
        self.get_logger().error(text)
        self._failure = text
        return TransitionCallbackReturn.FAILURE

    # ------------------------------------------------------------------ parameters
    def _read_settings(self) -> NodeSettings:
        values = {name: self.get_parameter(name).value for name, *_ in parameter_table()}
        return NodeSettings.from_params(values)

    def _convert_parameters(self, params: list[Parameter]) -> list[Parameter]:
        return [p if (v := _as_declared(p.name, p.value)) is p.value else Parameter(p.name, value=v) for p in params]

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        if any(p.name == LABEL_CLASSES for p in params):
            if self._setting_outputs and len(params) == 1:
                return SetParametersResult(successful=True)
            return SetParametersResult(successful=False, reason=f"{LABEL_CLASSES} is an output of the node "
                                                                "(set from part_probe_file at configure)")
        try:
            new, later = self.settings.with_changes({p.name: p.value for p in params})
        except (ValueError, TypeError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        if (new.correspondence_method == "matcher" and self._model_path is not None and self._matcher_path is None
                and "matcher_file" not in later):
            return SetParametersResult(successful=False, reason="correspondence_method 'matcher' needs a "
                                       "matcher_file (set it, then configure again)")
        self.settings = new
        if self._processor is not None and any(p.name in LIVE for p in params):
            self._processor.update_config(new.pipeline_config())
        if later:
            self.get_logger().info(f"{', '.join(later)} will apply at the next configure")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        s = self.settings
        try:
            path = resolve_model_path(s.model_path, s.backend)
            info = probe_model(path)
            self._reference = self._load_keypoints(s, path, info.model_id)
            self._probe = load_part_probe(s.part_probe_file, path, info.model_id, s.backend, info.descriptor_dim)
            self._matcher_path = resolve_matcher_file(s.matcher_file, path, info.model_id, s.backend,
                                                      s.correspondence_method)
        except (ModelFileError, ValueError, OSError) as e:
            return self._failed(f"configure failed: {e}")
        self._model_path = path
        self._set_label_classes(self._probe.classes if self._probe is not None else [BACKGROUND])
        names = "none" if self._reference is None else ", ".join(self._reference.names)
        labels = "off" if self._probe is None else f"{self._probe.num_classes} classes"
        self.get_logger().info(f"model {path} ({info.name} {info.version}, id {info.model_id}); keypoints: {names}; "
                               f"labels: {labels}; matcher: {self._matcher_path or 'none'}")
        self._pubs = {s.key: self.create_lifecycle_publisher(message_class(s.type_name), f"~/{s.topic}", s.qos_depth)
                      for s in OUTPUT_SPECS}
        self._start_diagnostics()  # diagnostics_period applies at configure
        self._lifecycle, self._failure = "inactive", ""
        return TransitionCallbackReturn.SUCCESS

    def _set_label_classes(self, classes: list[str]) -> None:
        self._setting_outputs = True
        try:
            self.set_parameters([Parameter(LABEL_CLASSES, value=list(classes))])
        finally:
            self._setting_outputs = False

    def _load_keypoints(self, s: NodeSettings, model_path, model_id: str) -> ReferenceKeypoints | None:
        ref = load_reference_keypoints(s.keypoints_file, model_path, model_id, s.backend)
        if ref is None and s.keypoints_file.lower() != "none":
            self.get_logger().info("no keypoints_file given: keypoint output off")
        return ref

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        s = self.settings
        try:
            extractor = DescriptorExtractor.load(self._model_path, s.extractor_config())
        except BackendFallbackError as e:  # require_device: the extractor's own hint names its API, not ours
            return self._failed(f"activate failed: {e.reason} (require_device is true; set require_device:=false "
                                "to fall back to the CPU with a warning)")
        except (ModelFileError, ValueError, OSError, RuntimeError) as e:
            return self._failed(f"activate failed: cannot load {self._model_path}: {e}")
        if getattr(extractor.backend, "fallback", None):
            self.get_logger().warning(f"{extractor.backend.fallback} (set require_device to make this an error)")
        try:
            matcher = (LearnedMatcher(self._matcher_path, s.num_threads, allow_spinning=False)
                       if self._matcher_path is not None else None)
            processor = FrameProcessor(extractor, self._reference, s.pipeline_config(), self._probe, matcher)
        except (ValueError, OSError, RuntimeError) as e:
            return self._failed(f"activate failed: cannot load the matcher {self._matcher_path}: {e}")
        self._backend_text = extractor.describe()
        self._processor = processor
        self._sync = ApproximateTimeSync(("color", "depth"), slop_s=s.sync_slop, queue_size=s.sync_queue,
                                         exact=s.sync_exact, jump_back_reset_s=JUMP_BACK_S)
        self.stats = NodeStats()
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="descriptor_worker", daemon=True)
        self._worker.start()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=s.qos_depth,
                         reliability=ReliabilityPolicy.BEST_EFFORT if s.qos_reliability == "best_effort"
                         else ReliabilityPolicy.RELIABLE, durability=qos_profile_sensor_data.durability)
        self._subs = [
            self.create_subscription(Image, COLOR_TOPIC, lambda m: self._on_image("color", m), qos),
            self.create_subscription(Image, DEPTH_TOPIC, lambda m: self._on_image("depth", m), qos),
            self.create_subscription(CameraInfo, INFO_TOPIC, self._on_info, qos),
        ]
        self._resets_seen = 0
        self.stats.rates(time.monotonic())
        self._lifecycle, self._failure = "active", ""
        self.get_logger().info(f"active: {self._backend_text}; listening on "
                               f"{', '.join(sub.topic_name for sub in self._subs)}")
        return super().on_activate(state)

    def _release(self) -> None:
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        self._processor = None  # frees the model (ORT session / torch weights)
        self._sync = None
        self._backend_text = "not loaded"

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs, self._reference, self._model_path, self._matcher_path = {}, None, None, None
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle, self.done = "finalized", True
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._release()
        self._lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _report(self, key: str, text: str, level: str = "error") -> None:
        """Log `text` at most once per THROTTLE_S per `key` (a kind of problem), saying how many repeats
        were held back."""
        held = self._throttle(key, time.monotonic())
        if held is None:
            return
        if held:
            text += f" ({held} more since the last report)"
        # one call site per severity: rclpy refuses a severity change at the same call site
        if level == "error":
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ inputs
    def _on_image(self, stream: str, msg: Image) -> None:
        sync = self._sync
        if sync is None:
            return
        self.stats.count(f"received_{stream}")
        # with its arrival time: the node's own latency does not depend on the sender's clock
        stamp = stamp_to_ns(msg.header.stamp)
        if sync.add(stream, stamp, (msg, time.monotonic())) is not None:
            self._wake.set()
        if sync.stats.resets != self._resets_seen:
            self._resets_seen = sync.stats.resets
            self._report("time_jump", f"time jumped backwards ({stream} stamp {stamp / 1e9:.3f} s is before the last "
                         "frame's: a bag played in a loop, a restarted camera or simulator?): synchronisation and "
                         "correspondences start again", "warning")

    def _on_info(self, msg: CameraInfo) -> None:
        with self._info_lock:
            self._info_msg = msg

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=0.2):
                continue
            self._wake.clear()
            sync, processor = self._sync, self._processor
            if sync is None or processor is None:
                continue
            frame_set = sync.take()
            if frame_set is None:
                continue
            try:
                self._process(processor, frame_set["color"], frame_set["depth"])
            except Exception as e:  # never let one bad frame kill the worker
                self.stats.bad("internal_error")
                try:
                    self._report("internal", f"frame dropped: {type(e).__name__}: {e}")
                except Exception:  # noqa: S110 - logging itself failed (shutdown): keep serving frames
                    pass

    def _wanted(self) -> Wanted:
        return Wanted(**{k: p.get_subscription_count() > 0 for k, p in self._pubs.items()})

    def _decode(self, color: Image, depth: Image):
        with self._info_lock:
            info = self._info_msg
        if info is None:
            self._report("no_info", f"no camera info on {INFO_TOPIC} yet: publishing 2D outputs only", "warning")
        return decode_frame(color, depth, info, self.settings)

    def _process(self, processor: FrameProcessor, color_in: tuple[Image, float], depth_in: tuple[Image, float]) -> None:
        (color, t_color), (depth, t_depth) = color_in, depth_in
        t_start = time.monotonic()
        wanted = self._wanted()
        if not (wanted.descriptors or wanted.pca or wanted.keypoints or wanted.correspondences):
            self.stats.count("idle")  # nobody listens: compute nothing
            return
        try:
            frame = self._decode(color, depth)
        except DECODE_ERRORS as e:
            self.stats.bad(bad_input_reason(e))
            self._report(str(e)[:40], f"frame dropped: {e}")
            return
        for note in frame.notes:  # an uncalibrated camera, an empty depth image: 2D outputs
            self._report(note[:40], note, "warning")
        if frame.K is not None and frame.depth is not None and np.isnan(frame.depth).all():
            self.stats.count("no_valid_depth")
            self._report("no_depth", "depth image has no valid pixel (all zero/NaN/out of range): 3D outputs "
                         "are invalid", "warning")
        t_decoded = time.monotonic()
        result = processor.process(frame, wanted)
        t_processed = time.monotonic()
        for spec, msg in output_messages(MESSAGE_TYPES, result):
            self._pubs[spec.key].publish(msg)
        t_done = time.monotonic()
        now_ns = self.get_clock().now().nanoseconds
        t_complete = max(t_color, t_depth)
        s = self.stats
        s.count("processed")
        s.latency_ms.add((now_ns - result.stamp_ns) / 1e6)
        s.node_ms.add((t_done - t_complete) * 1e3)
        s.process_ms.add(result.timings_ms["total"])
        for name, seconds in (("input_wait", abs(t_depth - t_color)), ("queue", t_start - t_complete),
                              ("decode", t_decoded - t_start), ("publish", t_done - t_processed)):
            s.stage_ms[name].add(seconds * 1e3)
        s.inference_ms.add(result.timings_ms["inference"])

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        if self._lifecycle != "active":
            self._publish_state()
            return
        rates = self.stats.rates(time.monotonic())
        counts, bad = self.stats.snapshot()
        sync_stats = self._sync.stats if self._sync is not None else None
        lat50, lat95 = self.stats.latency_ms.percentiles()
        node50, node95 = self.stats.node_ms.percentiles()
        proc50, proc95 = self.stats.process_ms.percentiles()
        stages = {name: w.percentiles((50,))[0] for name, w in self.stats.stage_ms.items()}
        inf50, _ = self.stats.inference_ms.percentiles()
        superseded = sync_stats.superseded if sync_stats else 0
        unmatched = sum(sync_stats.dropped.values()) if sync_stats else 0
        values = {
            "backend": self._backend_text,
            "input_rate_hz": f"{rates.get('received_color', 0.0):.2f}",
            "output_rate_hz": f"{rates.get('processed', 0.0):.2f}",
            "latency_ms_p50": f"{lat50:.1f}", "latency_ms_p95": f"{lat95:.1f}",
            "node_ms_p50": f"{node50:.1f}", "node_ms_p95": f"{node95:.1f}",
            "process_ms_p50": f"{proc50:.1f}", "process_ms_p95": f"{proc95:.1f}",
            "inference_ms_p50": f"{inf50:.1f}",
            **{f"{name}_ms_p50": f"{v:.2f}" for name, v in stages.items()},
            "frames_processed": str(counts.get("processed", 0)),
            "frames_dropped_busy": str(superseded),
            "messages_unmatched": str(unmatched),
            "frames_bad_input": str(counts.get("bad_input", 0)),
            "frames_idle_no_subscribers": str(counts.get("idle", 0)),
        }
        values.update({f"bad_input.{k}": str(v) for k, v in sorted(bad.items())})
        level, message = DiagnosticStatus.OK, "ok"
        if bad and rates.get("bad_input", 0.0) > 0:
            level, message = DiagnosticStatus.WARN, f"dropping bad input frames ({', '.join(sorted(bad))})"
        elif rates.get("received_color", 0.0) == 0.0:
            level, message = DiagnosticStatus.WARN, "no input"
        self._publish_status(level, message, {"state": "active", **values})

    def _publish_state(self) -> None:
        """Not active: the state, and ERROR with the reason when the last configure or activate failed."""
        level, message = (DiagnosticStatus.ERROR, self._failure) if self._failure else (DiagnosticStatus.OK,
                                                                                         self._lifecycle)
        self._publish_status(level, message, {"state": self._lifecycle, "backend": self._backend_text})

    def _publish_status(self, level: bytes, message: str, values: dict[str, str]) -> None:
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: descriptors",
                                  message=message, hardware_id=self._backend_text,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        arr = DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=[status])
        self._diag_pub.publish(arr)
