"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse


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
