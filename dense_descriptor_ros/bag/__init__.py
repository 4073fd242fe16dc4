"""rosbag2 tools (docs/rosbag_tools.md): read / write bags (split or not), run the pipeline over them offline,
replay and record them on live topics, recover what a killed recording left, make the simulated sample, and
train from them.

Only `play` and `record` import rclpy; only `process` and `dataset` import torch. The names below are
loaded on first use, so `import dense_descriptor_ros.bag` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BagError": "io", "BagReader": "io", "BagWriter": "io", "detect_storage": "io", "new_typestore": "io",
    "InputTopics": "frames", "resolve_input_topics": "frames", "iter_synced": "frames",
    "bag_summary": "info", "format_summary": "info",
    "ProcessOptions": "process", "ProcessSummary": "process", "process_bag": "process", "OUTPUT_TOPICS": "process",
    "SampleOptions": "sample", "write_sample_bag": "sample", "sample_bag_path": "sample",
    "PlayOptions": "play", "play_bag": "play",
    "RecordOptions": "record", "record_bag": "record",
    "RecoverSummary": "recover", "recover_bag": "recover",
    "BagFrames": "dataset", "BagPairDataset": "dataset", "load_bag_frames": "dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
