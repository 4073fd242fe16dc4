"""The mug handle's affordance coordinate frame from named 3D keypoints. Pure NumPy, no ROS.

An affordance coordinate frame (ACF) is a frame attached to the object *part* that affords an action,
not to the whole object: a grasp or manipulation planner works in it ("close the gripper around the
handle's axis, approaching from outside") without a full object model or pose (Chen et al.,
"Manipulation-Oriented Object Perception in Clutter through Affordance Coordinate Frames",
arXiv:2010.08202; Manuelli et al., "kPAM: KeyPoint Affordances for Category-Level Robotic
Manipulation", ISRR 2019). Category-level named keypoints located by dense descriptors are enough to
build one, which is what this module does for the handle of the mug category (sim/categories.py
`build_mug`: handle towards +x, z up):

    origin    handle_outer, the handle's outermost point: where a gripper closes around the handle, and
              where the handle runs parallel to the mug's axis. Without it, the midpoint of the handle ends
              present (a missing handle_outer shows up as position error)
    axis      unit(handle_top - handle_bottom): the grasp axis along the handle, pointing up the handle.
              handle_bottom sits under the handle's loop and is hidden from most views above the table
              (visible in 4 of the 60 frames of `sim camera`'s default arc), so without one of the two ends
              the axis is the mug's up direction, which the handle's line nearly follows (exactly at
              handle_outer, where the handle is vertical): rim_center - bottom point when both are known,
              else the normal of the rim line within the mug's symmetry plane (rim_front, rim_back and the
              handle keypoints all lie in it), pointing up towards the rim. On a tapered mug, where the
              chord leans by the difference of the wall's radius at the two ends, that shows up as axis error.
    approach  unit direction from the mug's centre line to the handle, orthogonalised against axis: the
              handle's outward side (a gripper closes on the handle moving along -approach); None when
              no body / rim keypoint is available

The mug's centre is the mean of the on-axis points available (the midpoint of rim_front and rim_back,
bottom_center, inside_bottom); without any of them, the mean of the surface points opposite the
handle (rim_front, body_front). All of these lie on or near the symmetry axis, which is nearly
parallel to the handle axis, so orthogonalising removes their height differences.

Positions are in whatever frame the keypoints are given in (the camera optical frame in the node).
`truth_handle_frame` applies the very same definition to ground-truth keypoints, with all of them, so
a missing keypoint in an estimate shows up in `frame_errors` instead of being defined away.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["HANDLE_KEYPOINTS", "AXIS_KEYPOINTS", "MIN_AXIS_LENGTH_M", "HandleFrame", "estimate_handle_frame",
           "truth_handle_frame", "frame_errors", "FrameFilterConfig", "HandleFrameFilter", "FILTER_METHODS"]

#: handle keypoints of the mug category; the first two give the axis, the third the origin
HANDLE_KEYPOINTS = ("handle_top", "handle_bottom", "handle_outer")
#: points on the mug's symmetry axis ("rim_center" is the midpoint of rim_front and rim_back)
AXIS_KEYPOINTS = ("rim_center", "bottom_center", "inside_bottom")
#: surface points opposite the handle, used for the centre only when no axis point is available
FAR_SIDE_KEYPOINTS = ("rim_front", "body_front")
#: handle_top and handle_bottom closer than this (metres) give no axis
MIN_AXIS_LENGTH_M = 0.005
#: an approach vector shorter than this (metres, after orthogonalising) gives no approach
MIN_APPROACH_LENGTH_M = 0.005


def _unit(v: np.ndarray, min_norm: float = 1e-12) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > min_norm else None


def _orthogonal_unit(v: np.ndarray, axis: np.ndarray, min_norm: float = 1e-12) -> np.ndarray | None:
    """The unit component of `v` orthogonal to the unit vector `axis` (None if it is shorter than min_norm)."""
    return _unit(v - float(v @ axis) * axis, min_norm)


@dataclass(frozen=True)
class HandleFrame:
    """A mug handle frame (see the module docstring); all vectors in one frame, float64."""

    origin: np.ndarray  # (3,) metres: handle_outer, else the mean of the handle ends used
    axis: np.ndarray  # (3,) unit: handle_bottom -> handle_top
    approach: np.ndarray | None  # (3,) unit, orthogonal to axis: mug centre -> handle; None if unknown
    keypoints: tuple[str, ...] = field(default=())  # names of the keypoints that made the frame

    def rotation(self, fallback_x: np.ndarray | None = None) -> np.ndarray:
        """(3, 3) right-handed rotation whose columns are the frame's axes in the parent frame:
        x = approach, y = axis x approach, z = axis.

        Without an approach, x is `fallback_x` orthogonalised against the axis; by default the direction
        from the origin towards the parent frame's origin (the camera, for an optical frame), so the
        orientation is still deterministic. Raises ValueError if that is parallel to the axis.
        """
        x = self.approach
        if x is None:
            ref = -self.origin if fallback_x is None else np.asarray(fallback_x, np.float64)
            x = _orthogonal_unit(ref, self.axis, 1e-9)
            if x is None:
                raise ValueError("no approach, and the fallback x direction is parallel to the handle axis")
        return np.stack([x, np.cross(self.axis, x), self.axis], axis=1)

    def matrix(self, fallback_x: np.ndarray | None = None) -> np.ndarray:
        """(4, 4) pose of the frame in its parent frame (see `rotation`)."""
        T = np.eye(4)
        T[:3, :3] = self.rotation(fallback_x)
        T[:3, 3] = self.origin
        return T


def _valid_points(named_points: Mapping[str, np.ndarray], valid: Mapping[str, bool] | None) -> dict[str, np.ndarray]:
    out = {}
    for name, p in named_points.items():
        if valid is not None and not valid.get(name, False):
            continue
        p = np.asarray(p, np.float64)
        if p.shape != (3,):
            raise ValueError(f"keypoint {name!r}: expected a (3,) position, got shape {p.shape}")
        if np.all(np.isfinite(p)):
            out[name] = p
    return out


def estimate_handle_frame(named_points: Mapping[str, np.ndarray],
                          valid: Mapping[str, bool] | None = None) -> HandleFrame | None:
    """The handle frame from named 3D keypoints.

    Args:
        named_points: keypoint name -> (3,) position (metres, any one frame). Names other than the mug's
            are ignored; non-finite positions count as missing.
        valid: name -> whether that position is usable (e.g. KeypointArray's position_valid); None: all
            given points are.

    Returns:
        The frame, or None without an axis: neither both handle ends (closer than MIN_AXIS_LENGTH_M counts
        as missing) nor the mug's up direction (see the module docstring). `approach` is None when no
        centre keypoint is available or the centre lies on the handle axis (within MIN_APPROACH_LENGTH_M).
    """
    pts = _valid_points(named_points, valid)
    handle = [n for n in HANDLE_KEYPOINTS if n in pts]
    if not handle:
        return None
    if "rim_front" in pts and "rim_back" in pts:
        pts["rim_center"] = (pts["rim_front"] + pts["rim_back"]) / 2
    axis, axis_from = None, ()
    if "handle_top" in pts and "handle_bottom" in pts:
        axis = _unit(pts["handle_top"] - pts["handle_bottom"], MIN_AXIS_LENGTH_M)
    if axis is None:
        axis, axis_from = _up_direction(pts, handle)
        if axis is None:
            return None
    origin = pts["handle_outer"] if "handle_outer" in pts else np.mean([pts[n] for n in handle], axis=0)
    used = list(handle) + [n for n in axis_from if n not in handle]
    centre_names = [n for n in AXIS_KEYPOINTS if n in pts] or [n for n in FAR_SIDE_KEYPOINTS if n in pts]
    approach = None
    if centre_names:
        centre = np.mean([pts[n] for n in centre_names], axis=0)
        approach = _orthogonal_unit(origin - centre, axis, MIN_APPROACH_LENGTH_M)
        if approach is not None:
            used += [m for n in centre_names for m in (("rim_front", "rim_back") if n == "rim_center" else (n,))
                     if m not in used]
    return HandleFrame(origin, axis, approach, tuple(used))


def _up_direction(pts: dict[str, np.ndarray], handle: list[str]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """The mug's up direction (unit) and the keypoints it came from, or (None, ()).

    Along the symmetry axis, bottom point -> rim_center, when both are known; otherwise in the symmetry plane
    through rim_front, rim_back and the handle keypoints: the direction orthogonal to the rim line, towards
    the rim from the handle (the rim is the mug's top: every handle keypoint lies below it).
    """
    if "rim_center" not in pts:
        return None, ()
    bottom = [n for n in ("bottom_center", "inside_bottom") if n in pts]
    if bottom:
        up = _unit(pts["rim_center"] - np.mean([pts[n] for n in bottom], axis=0), MIN_AXIS_LENGTH_M)
        if up is not None:
            return up, ("rim_front", "rim_back", *bottom)
    rim = _unit(pts["rim_back"] - pts["rim_front"], MIN_AXIS_LENGTH_M)
    if rim is None:
        return None, ()
    # in-plane direction of the handle points seen from the rim line: minus the rim-line component
    below = _orthogonal_unit(np.mean([pts[n] for n in handle], axis=0) - pts["rim_center"], rim, MIN_AXIS_LENGTH_M)
    if below is None:
        return None, ()
    return -below, ("rim_front", "rim_back")


def truth_handle_frame(named_points: Mapping[str, np.ndarray]) -> HandleFrame:
    """The reference frame from ground-truth keypoints (all of them): `estimate_handle_frame`'s definition.

    The truth needs both handle ends (its axis is their chord, never the up-direction fallback).

    Raises:
        ValueError: the ground truth lacks a handle keypoint or the centre keypoints (not a mug).
    """
    frame = estimate_handle_frame(named_points)
    if frame is None or frame.approach is None or not {"handle_top", "handle_bottom"} <= set(frame.keypoints):
        raise ValueError(f"ground truth has no complete mug handle frame (keypoints: {sorted(named_points)})")
    return frame


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    # atan2 of |a x b| and a . b: accurate for tiny angles, where arccos of the dot product is not
    return math.degrees(math.atan2(float(np.linalg.norm(np.cross(a, b))), float(a @ b)))


def frame_errors(est: HandleFrame, truth: HandleFrame) -> tuple[float, float, float]:
    """(position error mm, axis angle deg, approach angle deg) of `est` against `truth`.

    Axes are directed (bottom -> top), so a flipped axis is 180 degrees. The approach error is NaN when
    either frame has no approach.
    """
    position_mm = float(np.linalg.norm(est.origin - truth.origin)) * 1000.0
    axis_deg = _angle_deg(est.axis, truth.axis)
    if est.approach is None or truth.approach is None:
        return position_mm, axis_deg, math.nan
    return position_mm, axis_deg, _angle_deg(est.approach, truth.approach)


# ---------------------------------------------------------------------------------------------- filter
FILTER_METHODS = ("none", "ema", "median")


@dataclass
class FrameFilterConfig:
    """Temporal smoothing of handle frames, in the frame they are given in.

    Frames are smoothed where they are expressed: in a moving camera's optical frame, smoothing lags
    behind the camera's motion (a 0.5 ema at 30 Hz lags about one frame).
    """

    method: str = "none"  # "none", "ema" (exponential moving average) or "median" (of the last `window`)
    alpha: float = 0.5  # ema: weight of the newest frame, in (0, 1]
    window: int = 5  # median: number of recent frames
    max_gap: int = 5  # frames without an estimate during which the last output is held; then the filter resets

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.method not in FILTER_METHODS:
            raise ValueError(f"filter method must be one of {list(FILTER_METHODS)}, got {self.method!r}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"filter alpha must be in (0, 1], got {self.alpha}")
        if self.window < 1:
            raise ValueError(f"filter window must be >= 1, got {self.window}")
        if self.max_gap < 0:
            raise ValueError(f"filter max_gap must be >= 0, got {self.max_gap}")


class HandleFrameFilter:
    """Smooths a stream of handle frames: `update(frame_or_None) -> HandleFrame | None`.

    - "none": passes frames through; None in gives None out.
    - "ema": origin <- a * new + (1 - a) * origin; axis and approach the same, re-normalised (approach
      re-orthogonalised against the axis). An approach missing in the new frame keeps the old one.
    - "median": component-wise median of the last `window` origins / axes / approaches (the approaches
      present), re-normalised and re-orthogonalised.

    A None input (no estimate this frame) returns the last output for up to `max_gap` consecutive
    frames ("none" excepted), then resets the filter and returns None. The output's `keypoints` are
    those of the newest frame.
    """

    def __init__(self, config: FrameFilterConfig | None = None) -> None:
        self.config = config or FrameFilterConfig()
        self.config.validate()
        self.reset()

    def reset(self) -> None:
        self._last: HandleFrame | None = None
        self._history: deque[HandleFrame] = deque(maxlen=self.config.window)
        self._gap = 0

    def update(self, frame: HandleFrame | None) -> HandleFrame | None:
        c = self.config
        if frame is None:
            if c.method == "none":
                return None
            self._gap += 1
            if self._gap > c.max_gap:
                self.reset()
            return self._last
        self._gap = 0
        if c.method == "none":
            out = frame
        elif c.method == "ema":
            out = frame if self._last is None else self._ema(self._last, frame, c.alpha)
        else:
            self._history.append(frame)
            out = self._median(list(self._history))
        self._last = out
        return out

    @staticmethod
    def _ema(old: HandleFrame, new: HandleFrame, a: float) -> HandleFrame:
        origin = a * new.origin + (1 - a) * old.origin
        axis = _unit(a * new.axis + (1 - a) * old.axis)
        if axis is None:  # exactly opposite axes: trust the new frame
            return new
        if new.approach is not None and old.approach is not None:
            approach = _orthogonal_unit(a * new.approach + (1 - a) * old.approach, axis)
        else:
            approach = new.approach if new.approach is not None else old.approach
            approach = None if approach is None else _orthogonal_unit(approach, axis)
        return HandleFrame(origin, axis, approach, new.keypoints)

    @staticmethod
    def _median(frames: list[HandleFrame]) -> HandleFrame:
        origin = np.median([f.origin for f in frames], axis=0)
        axis = _unit(np.median([f.axis for f in frames], axis=0))
        if axis is None:
            return frames[-1]
        approaches = [f.approach for f in frames if f.approach is not None]
        approach = _orthogonal_unit(np.median(approaches, axis=0), axis) if approaches else None
        return HandleFrame(origin, axis, approach, frames[-1].keypoints)
