"""Test harness for real ROS 2 graphs: node subprocesses and an in-process probe (rclpy) that publishes
RGB-D inputs and records the node's outputs, logs and lifecycle state."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "launch" / "fastdds_large_messages.xml"
CLI = [sys.executable, "-m", "dense_descriptor_ros.cli"]
NODE = "/dense_descriptor"


def ros_env(domain: int, **extra: str) -> dict[str, str]:
    """Environment of every process of one test graph: localhost-only discovery on a private domain, the
    Fast DDS profile for large messages, unbuffered output, one thread for torch's helpers."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               RMW_IMPLEMENTATION="rmw_fastrtps_cpp", FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", RCUTILS_COLORIZED_OUTPUT="0", **extra)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    return env


class Process:
    """A subprocess whose output is collected in the background (so a full pipe never blocks it)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen in the output of {' '.join(self.args)}:\n{self.output[-3000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as Ctrl-C / launch would
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2.0)
        return self.proc.returncode


def start_node(domain: int, *ros_args: str, cli_args: tuple[str, ...] = ()) -> Process:
    return Process([*CLI, "node", *cli_args, "--ros-args", *ros_args], ros_env(domain))


class Probe:
    """The test's side of the graph: publishers of the node's inputs, subscribers of its outputs."""

    def __init__(self, domain: int, node_ns: str = NODE) -> None:
        os.environ.update(ros_env(domain))
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        from dense_descriptor_ros import msg as m

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"probe_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.Image, self.CameraInfo = Image, CameraInfo
        self.pub = {"color": self.node.create_publisher(Image, "color/image_raw", qos_profile_sensor_data),
                    "depth": self.node.create_publisher(Image, "aligned_depth_to_color/image_raw",
                                                        qos_profile_sensor_data),
                    "info": self.node.create_publisher(CameraInfo, "color/camera_info", qos_profile_sensor_data)}
        self.received: dict[str, list[Any]] = defaultdict(list)
        self.arrival: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        outputs = {"descriptors": (m.DescriptorMap, f"{node_ns}/descriptors"),
                   "pca": (Image, f"{node_ns}/descriptors/pca"),
                   "keypoints": (m.KeypointArray, f"{node_ns}/keypoints"),
                   "correspondences": (m.Correspondences, f"{node_ns}/correspondences"),
                   "labels": (Image, f"{node_ns}/labels"),
                   "diagnostics": (DiagnosticArray, "/diagnostics")}
        self.subs = {k: self.node.create_subscription(t, topic, self._keep(k), 50)
                     for k, (t, topic) in outputs.items()}
        self._spin = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _keep(self, key: str):
        def cb(msg: Any) -> None:
            with self._lock:
                self.received[key].append(msg)
                self.arrival[key].append(time.monotonic())
        return cb

    def _run(self) -> None:
        while self._spin and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.arrival.clear()

    def get(self, key: str) -> list[Any]:
        with self._lock:
            return list(self.received[key])

    def timed(self, key: str) -> list[tuple[float, Any]]:
        """(arrival time on the monotonic clock, message) of output `key`, in arrival order."""
        with self._lock:
            return list(zip(self.arrival[key], self.received[key], strict=True))

    def wait_for(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def wait_for_subscribers(self, timeout: float = 20.0) -> None:
        """Until the node subscribes to our inputs (it does at activate)."""
        self.wait_for(lambda: all(p.get_subscription_count() > 0 for p in self.pub.values()), timeout,
                      "the node to subscribe to the inputs")

    def header(self, stamp_ns: int, frame_id: str = "camera_color_optical_frame"):
        from builtin_interfaces.msg import Time
        from std_msgs.msg import Header

        return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def publish(self, rgb: np.ndarray | None, depth_m: np.ndarray | None, K: np.ndarray | None, stamp_ns: int,
                color_encoding: str = "rgb8", depth_encoding: str = "16UC1", raw_color: dict | None = None,
                raw_depth: dict | None = None, frame_id: str = "camera_color_optical_frame") -> None:
        """One frame: colour, depth and camera info with the same header. raw_*: Image fields given as is
        (for malformed messages)."""
        from dense_descriptor_ros.ros_core import depth_to_image, rgb_to_image

        h = self.header(stamp_ns, frame_id)
        if K is not None:
            H, W = rgb.shape[:2]
            P = np.hstack([K, np.zeros((3, 1))])
            self.pub["info"].publish(self.CameraInfo(header=h, height=H, width=W, distortion_model="plumb_bob",
                                                     d=[0.0] * 5, k=K.ravel().tolist(),
                                                     r=np.eye(3).ravel().tolist(), p=P.ravel().tolist()))
        if raw_depth is not None:
            self.pub["depth"].publish(self.Image(header=h, **raw_depth))
        elif depth_m is not None:
            self.pub["depth"].publish(self.Image(header=h, **depth_to_image(depth_m, depth_encoding)
                                                 .to_kwargs("array")))
        if raw_color is not None:
            self.pub["color"].publish(self.Image(header=h, **raw_color))
        elif rgb is not None:
            self.pub["color"].publish(self.Image(header=h, **rgb_to_image(rgb, color_encoding).to_kwargs("array")))

    def call(self, srv_type, name: str, request, timeout: float = 15.0, attempts: int = 1):
        """One service call; a read-only service may be given `attempts` > 1: a reply the server dropped
        because our reply reader had not matched yet ("failed to send response (timeout)") is asked again."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"service {name} not available")
            for attempt in range(attempts):
                future = client.call_async(request)
                try:
                    self.wait_for(future.done, timeout, f"a response from {name}")
                    return future.result()
                except AssertionError:
                    if attempt == attempts - 1:
                        raise
        finally:
            self.node.destroy_client(client)

    def lifecycle_state(self, node: str = NODE) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{node}/get_state", GetState.Request(), attempts=3).current_state.label

    def transition(self, transition_id: int, node: str = NODE) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request(transition=Transition(id=transition_id))
        return self.call(ChangeState, f"{node}/change_state", req, timeout=60.0).success

    def set_parameters(self, values: dict[str, Any], node: str = NODE) -> list:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(SetParameters, f"{node}/set_parameters", req).results

    def get_parameters(self, names: list[str], node: str = NODE) -> dict[str, Any]:
        """name -> value as the node holds it (its ROS type: 0.0 stays a float, 0 an integer)."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        reply = self.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=names), attempts=3)
        return {n: parameter_value_to_python(v) for n, v in zip(names, reply.values, strict=True)}

    def close(self) -> None:
        self._spin = False
        self._thread.join(timeout=2.0)
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def diagnostic_values(msg) -> dict[str, str]:
    """key -> value of the first status of a DiagnosticArray."""
    return {kv.key: kv.value for kv in msg.status[0].values}
