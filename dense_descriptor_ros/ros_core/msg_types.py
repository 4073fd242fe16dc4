"""Our message definitions (msg/*.msg) for rosbags: registered from the same .msg text ROS builds from,
so type names and RIHS01 hashes agree with the rclpy classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PACKAGE = "dense_descriptor_ros"
MESSAGES = ("DescriptorMap", "Keypoint", "KeypointArray", "Correspondences")


def msg_dir() -> Path:
    """msg/ of the source checkout, else share/dense_descriptor_ros/msg of a colcon install."""
    repo = Path(__file__).resolve().parents[2] / "msg"
    if (repo / "DescriptorMap.msg").is_file():
        return repo
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE)) / "msg"
        if (share / "DescriptorMap.msg").is_file():
            return share
    except Exception:  # no ament index: fall through to the error naming the checkout path
        pass
    raise FileNotFoundError(f"cannot find the {PACKAGE} .msg files (looked in {repo} and the ament index)")


def message_definitions() -> dict[str, str]:
    """Full type name ("dense_descriptor_ros/msg/DescriptorMap") -> .msg text."""
    d = msg_dir()
    return {f"{PACKAGE}/msg/{n}": (d / f"{n}.msg").read_text() for n in MESSAGES}


def register_messages(typestore: Any) -> None:
    """Add our message types to a rosbags typestore (idempotent)."""
    from rosbags.typesys import get_types_from_msg

    types: dict = {}
    for name, text in message_definitions().items():
        types.update(get_types_from_msg(text, name))
    typestore.register(types)
