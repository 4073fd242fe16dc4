"""The messages in msg/: declared for CMake, documented, built into the venv, and wire-compatible with
rosbags' reading of the same .msg text (identical RIHS01 type hashes, CDR read both ways)."""

from __future__ import annotations

import array
import dataclasses
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
MSG_FILES = sorted((REPO / "msg").glob("*.msg"))
NAMES = [p.stem for p in MSG_FILES]
PKG = "dense_descriptor_ros"
# rosidl_parser's lark imports the deprecated sre_parse/sre_constants; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_.*' is deprecated:DeprecationWarning")


def built_location() -> Path | None:
    """Where scripts/build_msgs.sh (or colcon) put the generated Python messages, if anywhere."""
    for entry in sys.path:
        if (Path(entry or ".") / PKG / "msg" / "_descriptor_map.py").is_file():
            return Path(entry or ".") / PKG / "msg"
    return None


requires_build = pytest.mark.skipif(
    built_location() is None, reason="messages not built: run scripts/build_msgs.sh (part of `make setup`)")


def test_message_set():
    assert NAMES == ["Correspondences", "DescriptorMap", "Keypoint", "KeypointArray"]


def test_cmake_generates_every_msg_file():
    declared = re.findall(r'"(msg/\w+\.msg)"', (REPO / "CMakeLists.txt").read_text())
    assert sorted(declared) == [f"msg/{p.name}" for p in MSG_FILES]


@pytest.mark.parametrize("path", MSG_FILES, ids=NAMES)
def test_every_field_and_constant_is_commented(path):
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert "#" in stripped, f"{path.name}: uncommented field {stripped!r}"


@pytest.fixture(scope="module")
def typestore():
    typesys = pytest.importorskip("rosbags.typesys", reason="rosbags not installed (a robot without pip extras)")
    ts = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    types = {}
    for path in MSG_FILES:
        types.update(typesys.get_types_from_msg(path.read_text(), f"{PKG}/msg/{path.stem}"))
    ts.register(types)
    return ts


@pytest.fixture(scope="module")
def msg_module():
    try:
        return importlib.import_module(f"{PKG}.msg")
    except ImportError as e:
        pytest.fail(f"messages are built in {built_location()} but `import {PKG}.msg` fails ({e}); "
                    f"{PKG}/__init__.py must extend __path__ (docs/ros_build.md)")


@requires_build
def test_importable_without_ros_environment():
    """In the project venv the messages import with no ROS variables (a ROS install needs its setup.bash)."""
    if importlib.util.find_spec("ros_wheels_bootstrapper") is None:
        pytest.skip("not a ROS-from-PyPI venv: a ROS install is used with its setup.bash sourced")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ROS_", "RMW_", "AMENT_", "COLCON_", "_ROS_WHEELS"))
           and k not in ("LD_LIBRARY_PATH", "CMAKE_PREFIX_PATH")}
    code = f"from {PKG}.msg import {', '.join(NAMES)}; print(DescriptorMap.DTYPE_FLOAT16, DescriptorMap.DTYPE_FLOAT32)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "2"]


def sample_messages(m) -> dict:
    """One message of each type with every field set to a value float32 represents exactly."""
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Point
    from std_msgs.msg import Header

    header = Header(stamp=Time(sec=1_700_000_000, nanosec=5), frame_id="camera_color_optical_frame")
    desc = (np.arange(2 * 3 * 4, dtype=np.float16) / 8).reshape(2, 3, 4)
    kp = m.Keypoint(name="mug_handle", pixel_x=12.5, pixel_y=7.25, position=Point(x=0.125, y=-0.25, z=0.5),
                    score=0.75, pixel_valid=True, position_valid=True)
    lost = m.Keypoint(name="mug_rim", score=0.125)
    nan = float("nan")
    return {
        "DescriptorMap": m.DescriptorMap(header=header, height=2, width=3, dimension=4, stride=8,
                                         dtype=m.DescriptorMap.DTYPE_FLOAT16, normalized=True, model_id="mnv2-abc123",
                                         data=array.array("B", desc.astype("<f2").tobytes())),
        "Keypoint": kp,
        "KeypointArray": m.KeypointArray(header=header, model_id="mnv2-abc123", keypoints=[kp, lost]),
        "Correspondences": m.Correspondences(
            header=header, stamp_a=Time(sec=1_699_999_999, nanosec=966_666_666), model_id="mnv2-abc123",
            pixels_a=[1.0, 2.0, 3.5, 4.5, 100.0, 200.0], pixels_b=[1.5, 2.5, 3.0, 4.0, 101.0, 199.0],
            scores=[0.5, 0.25, 1.0], points_valid=[True, False, True],
            points_a=[0.125, 0.25, 1.0, nan, nan, nan, -0.5, 0.0, 2.0],
            points_b=[0.25, 0.25, 1.0, nan, nan, nan, -0.5, 0.125, 2.0]),
    }


def assert_same(ours, theirs, where: str) -> None:
    """Field-by-field equality of an rclpy message and a rosbags message."""
    if dataclasses.is_dataclass(theirs):
        for f in dataclasses.fields(theirs):
            if f.name.startswith("__"):  # rosbags' __msgtype__
                continue
            assert_same(getattr(ours, f.name), getattr(theirs, f.name), f"{where}.{f.name}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(theirs, np.ndarray):
        np.testing.assert_array_equal(np.asarray(ours), theirs, err_msg=where)
    else:
        assert ours == theirs, where


@requires_build
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_with_rosbags(name, typestore, msg_module):
    from rclpy.serialization import deserialize_message, serialize_message

    typename = f"{PKG}/msg/{name}"
    ours = sample_messages(msg_module)[name]
    raw = serialize_message(ours)
    theirs = typestore.deserialize_cdr(raw, typename)
    assert_same(ours, theirs, name)
    # And back: rosbags' bytes read by rclpy. Only the length is compared byte-wise, because Fast CDR
    # leaves alignment padding uninitialised where rosbags writes zeros.
    raw_theirs = bytes(typestore.serialize_cdr(theirs, typename))
    assert len(raw_theirs) == len(raw)
    assert_same(deserialize_message(raw_theirs, getattr(msg_module, name)), theirs, name)


@requires_build
def test_descriptor_layout_is_height_width_dimension(typestore, msg_module):
    ours = sample_messages(msg_module)["DescriptorMap"]
    theirs = typestore.deserialize_cdr(__import__("rclpy.serialization").serialization.serialize_message(ours),
                                       f"{PKG}/msg/DescriptorMap")
    assert theirs.dtype == typestore.types[f"{PKG}/msg/DescriptorMap"].DTYPE_FLOAT16 == 1
    desc = np.frombuffer(theirs.data.tobytes(), "<f2").reshape(theirs.height, theirs.width, theirs.dimension)
    assert desc[1, 2, 3] == np.float16(23 / 8)  # element (r * width + c) * dimension + k


@requires_build
def test_type_hashes_match_rosbags(typestore, msg_module, monkeypatch):
    """The hash the built type support announces on the graph equals rosbags' hash of our .msg text."""
    import rclpy
    from rclpy.node import Node

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node(f"ddr_type_hash_probe_{os.getpid()}", context=context, start_parameter_services=False)
        for name in NAMES:
            topic = f"/ddr_type_hash_probe_{os.getpid()}/{name.lower()}"
            node.create_publisher(getattr(msg_module, name), topic, 1)
            (info,) = node.get_publishers_info_by_topic(topic)
            assert str(info.topic_type_hash) == typestore.hash_rihs01(f"{PKG}/msg/{name}"), (
                f"{name}: the built message differs from msg/{name}.msg; rerun scripts/build_msgs.sh")
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
