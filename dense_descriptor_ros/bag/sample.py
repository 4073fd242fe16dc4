"""`dense-descriptor bag sample`: a small rosbag2 of the simulated RGB-D camera, made deterministically.

The bag holds what `dense-descriptor sim camera` publishes (same topics, encodings, frames and QoS),
recorded at exactly 30 Hz: every message of frame i is stamped and logged at START + i / RATE, and per
frame the camera info comes first, then colour, depth and the ground-truth camera pose. A
`ground_truth.json` (sim.sequence.ground_truth_dict plus the stamps) sits inside the bag folder. The
rendering and the bytes written are pure functions of the settings: rebuilding gives the same messages.

No rclpy here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import BagWriter, qos_profile

__all__ = ["SAMPLE_BAG", "SampleOptions", "SAMPLE_TOPICS", "OPTICAL_FRAME", "WORLD_FRAME", "GROUND_TRUTH_FILE",
           "write_sample_bag", "sample_bag_path"]

#: the sample shipped with the repository (regenerate: dense-descriptor bag sample data_sample/sim_mug)
SAMPLE_BAG = Path(__file__).resolve().parents[2] / "data_sample" / "sim_mug"
GROUND_TRUTH_FILE = "ground_truth.json"
OPTICAL_FRAME = "camera_color_optical_frame"  # as sim camera (sim/camera_node.py)
WORLD_FRAME = "world"
SAMPLE_TOPICS = {"color": "/color/image_raw", "depth": "/aligned_depth_to_color/image_raw",
                 "info": "/color/camera_info", "pose": "/ground_truth/camera_pose"}
START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: a plausible wall-clock stamp, fixed


@dataclass
class SampleOptions:
    """The sample's settings (the defaults make the shipped sample)."""

    frames: int = 30  # frames along the camera arc
    size: tuple[int, int] = (320, 240)  # (W, H)
    seed: int = 0  # scene seed (sim.sequence.SequenceConfig.seed)
    arc_deg: float = 40.0  # azimuth swept by the camera
    rate: float = 30.0  # frames per second of the stamps
    depth_encoding: str = "16UC1"  # "16UC1" millimetres (0 = none) or "32FC1" metres
    storage: str = "mcap"  # "mcap" or "sqlite3"
    compression: str = "auto"  # "auto" (zstd chunks for mcap), "zstd" or "none"


def sample_bag_path() -> Path:
    """The shipped sample bag (data_sample/sim_mug in the source checkout)."""
    return SAMPLE_BAG


def _messages(store: Any, seq: Any, i: int, stamp_ns: int, depth_encoding: str) -> dict[str, Any]:
    from ..geometry.poses import pose_to_position_quaternion
    from ..ros_core.image_codec import depth_to_image, rgb_to_image

    t = store.types
    stamp = t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    cam = t["std_msgs/msg/Header"](stamp=stamp, frame_id=OPTICAL_FRAME)
    world = t["std_msgs/msg/Header"](stamp=stamp, frame_id=WORLD_FRAME)
    Image = t["sensor_msgs/msg/Image"]
    K = seq.K.astype(np.float64)
    P = np.hstack([K, np.zeros((3, 1))])
    roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    info = t["sensor_msgs/msg/CameraInfo"](header=cam, height=seq.height, width=seq.width,
                                           distortion_model="plumb_bob", d=np.zeros(5), k=K.ravel(),
                                           r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0, roi=roi)
    xyz, q = pose_to_position_quaternion(seq.T_world_camera[i])
    pose = t["geometry_msgs/msg/PoseStamped"](
        header=world, pose=t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](*map(float, xyz)),
                                                       orientation=t["geometry_msgs/msg/Quaternion"](*map(float, q))))
    return {"info": info, "color": Image(header=cam, **rgb_to_image(seq.rgb[i]).to_kwargs("numpy")),
            "depth": Image(header=cam, **depth_to_image(seq.depth[i], depth_encoding).to_kwargs("numpy")),
            "pose": pose}


def write_sample_bag(out: str | Path, options: SampleOptions | None = None, cache: str | Path | None = None,
                     overwrite: bool = False, log=print) -> Path:
    """Render (or load from the cache) the simulated sequence and write it as a rosbag2 at `out`.

    Args:
        cache: folder of the rendered-sequence cache (default: sim camera's, $DENSE_DESCRIPTOR_CACHE or
            ~/.cache/dense_descriptor_ros).

    Returns:
        The bag folder. Raises BagError (output exists / cannot be written), ValueError (bad options).
    """
    from ..sim.camera_cli import default_cache_dir
    from ..sim.format import write_json
    from ..sim.sequence import SequenceConfig, cached_sequence, ground_truth_dict

    o = options or SampleOptions()
    if o.depth_encoding not in ("16UC1", "32FC1"):
        raise ValueError(f"depth_encoding must be 16UC1 or 32FC1, got {o.depth_encoding!r}")
    if not 0 < o.rate <= 1000:
        raise ValueError(f"rate must be in (0, 1000] Hz, got {o.rate}")
    cfg = SequenceConfig(size=tuple(o.size), frames=o.frames, seed=o.seed, arc_deg=o.arc_deg)
    cfg.validate()
    out = Path(out)
    writer = BagWriter(out, o.storage, o.compression, overwrite)  # refuses an existing `out` before rendering
    seq = cached_sequence(cfg, Path(cache or default_cache_dir()) / "sim_sequences", log=log)
    stamps = [START_NS + round(i * 1e9 / o.rate) for i in range(seq.frames)]
    with writer as w:
        sensor = [qos_profile(reliable=False, depth=5)]
        truth = [qos_profile(reliable=True, depth=10)]
        conns = {"info": w.add_topic(SAMPLE_TOPICS["info"], "sensor_msgs/msg/CameraInfo", sensor),
                 "color": w.add_topic(SAMPLE_TOPICS["color"], "sensor_msgs/msg/Image", sensor),
                 "depth": w.add_topic(SAMPLE_TOPICS["depth"], "sensor_msgs/msg/Image", sensor),
                 "pose": w.add_topic(SAMPLE_TOPICS["pose"], "geometry_msgs/msg/PoseStamped", truth)}
        w.set_custom("dense_descriptor_ros.sample", f"sim camera sequence {cfg.width}x{cfg.height}, "
                                                     f"{cfg.frames} frames, seed {cfg.seed}, {o.rate:g} Hz")
        for i, stamp in enumerate(stamps):
            for key, msg in _messages(w.store, seq, i, stamp, o.depth_encoding).items():
                w.write_msg(conns[key], stamp, msg)
    gt = ground_truth_dict(seq)
    gt["recording"] = {"stamps_ns": stamps, "rate": o.rate, "topics": SAMPLE_TOPICS, "frame_id": OPTICAL_FRAME,
                       "depth_encoding": o.depth_encoding,
                       "frame_index": "frame i is stamped and logged at stamps_ns[i]"}
    write_json(out / GROUND_TRUTH_FILE, gt)
    return out
