"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

#: --keypoints value of `demo` and `pipeline`: annotate the tracked mug's own keypoints in the first frame
FIRST_FRAME = "first-frame"
#: where that keypoint file goes in the command's output folder
FIRST_FRAME_FILE = "mug_keypoints_first_frame.json"


def size_wh(text: str) -> tuple[int, int]:
    """argparse type: 'WxH' (e.g. 320x240) -> (W, H), each side 16..4096 pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"image size must be 16..4096 pixels per side, got {text!r}")
    return w, h


def size_hw(text: str) -> tuple[int, int]:
    """argparse type: 'WxH' -> (H, W), the order tensors use."""
    w, h = size_wh(text)
    return h, w


def int_at_least(lo: int, hi: int | None = None, name: str = "value"):
    """argparse type: an integer >= lo (and <= hi when given)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {v}")
        return v
    return parse


def number_in(lo: float = 0.0, hi: float = float("inf"), lo_open: bool = False, name: str = "value",
              unit: str = ""):
    """argparse type: a float in [lo, hi], or (lo, hi] with lo_open."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not ((v > lo if lo_open else v >= lo) and v <= hi):
            low = f"> {lo:g}" if lo_open else f">= {lo:g}"
            bound = low if hi == float("inf") else f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
            raise argparse.ArgumentTypeError(f"{name} must be {bound}{unit}, got {text}")
        return v
    return parse


def keypoints_or_first_frame(text: str) -> Path | str:
    """argparse type of --keypoints: a keypoint file, or FIRST_FRAME."""
    return FIRST_FRAME if text == FIRST_FRAME else Path(text)
