"""Ground truth and error bookkeeping for the handle-frame consumer. Pure NumPy, no ROS.

`SequenceGroundTruth` reads the JSON that `dense-descriptor sim camera --save-ground-truth PATH` writes
and gives the true handle frame in the camera's optical frame for a message stamp. With the camera's
`--stamp-mode sequence`, stamps are `stamp_start + i / rate` for the i-th published frame, so the frame
index of any message follows from its stamp alone: exact, and independent of message timing, ordering or
loss (the descriptor node copies the colour image's header into its KeypointArray). Matching stamps of
`ground_truth/camera_pose` messages would work for clock stamps too, but it depends on both streams
arriving and being buffered long enough; the consumer therefore requires sequence stamps.

`ErrorLog` keeps one row per keypoint message and gives running and final statistics, a CSV and a plot.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .handle_frame import HandleFrame, frame_errors, truth_handle_frame

__all__ = ["SequenceGroundTruth", "FrameRecord", "ErrorSummary", "ErrorLog", "format_summary"]


class SequenceGroundTruth:
    """The mug and camera ground truth of a simulated sequence (`sim camera --save-ground-truth`)."""

    def __init__(self, data: Mapping[str, Any], source: str = "ground truth") -> None:
        try:
            self.T_world_camera = np.asarray(data["T_world_camera"], np.float64)  # (N, 4, 4)
            mug_id = int(data.get("mug_instance_id", 1))
            mug = next(o for o in data["objects"] if int(o["instance_id"]) == mug_id)
            self.mug_world = {k: np.asarray(v, np.float64) for k, v in mug["keypoints"].items()}  # name -> (3,)
            pub = data["publishing"]
            self.rate = float(pub["rate"])  # frames per second of the camera
            self.stamp_mode = str(pub["stamp_mode"])  # "sequence" or "now"
            self.stamp_start = float(pub["stamp_start"])  # seconds, stamp of the first published frame
        except (KeyError, TypeError, ValueError, StopIteration) as e:
            raise ValueError(f"{source} is not a sim camera ground-truth file ({type(e).__name__}: {e})") from e
        if self.T_world_camera.ndim != 3 or self.T_world_camera.shape[1:] != (4, 4) or not len(self.T_world_camera):
            raise ValueError(f"{source}: T_world_camera must be (N, 4, 4), got {self.T_world_camera.shape}")
        if mug.get("category", "mug") != "mug":
            raise ValueError(f"{source}: object {mug_id} is a {mug.get('category')!r}, not a mug")
        if self.stamp_mode != "sequence":
            raise ValueError(f"{source}: the camera ran with stamp_mode {self.stamp_mode!r}; the handle-frame "
                             "ground truth needs stamps that encode the frame index (sim camera --stamp-mode sequence)")
        if not self.rate > 0:
            raise ValueError(f"{source}: rate must be > 0, got {self.rate}")
        self.source = source
        self._truth = [self._handle_frame(i) for i in range(self.frames)]  # checks the keypoints once, too

    @classmethod
    def load(cls, path: str | Path) -> SequenceGroundTruth:
        """Read a ground-truth JSON. Raises FileNotFoundError, or ValueError for a file of another kind."""
        path = Path(path)
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not JSON: {e}") from e
        return cls(data, str(path))

    @property
    def frames(self) -> int:
        return int(self.T_world_camera.shape[0])

    def frame_index(self, stamp_ns: int) -> int:
        """The sequence frame of a message stamp: round((stamp - start) * rate) mod N. Raises ValueError for a
        stamp before the first frame or between frames (more than 1/4 frame period away from one)."""
        t = (int(stamp_ns) - round(self.stamp_start * 1e9)) * 1e-9 * self.rate
        i = round(t)
        if i < 0 or abs(t - i) > 0.25:
            raise ValueError(f"stamp {stamp_ns * 1e-9:.9f} s is not a frame stamp of this sequence "
                             f"(start {self.stamp_start} s, {self.rate:g} Hz)")
        return i % self.frames

    def mug_keypoints_in_camera(self, frame: int) -> dict[str, np.ndarray]:
        """name -> (3,) true position in frame `frame`'s camera optical frame (metres)."""
        T_cw = np.linalg.inv(self.T_world_camera[frame])
        return {k: T_cw[:3, :3] @ v + T_cw[:3, 3] for k, v in self.mug_world.items()}

    def _handle_frame(self, frame: int) -> HandleFrame:
        try:
            return truth_handle_frame(self.mug_keypoints_in_camera(frame))
        except ValueError as e:
            raise ValueError(f"{self.source}: {e}") from e

    def handle_frame(self, frame: int) -> HandleFrame:
        """The true handle frame in frame `frame`'s camera optical frame."""
        return self._truth[frame]


@dataclass
class FrameRecord:
    """One keypoint message as the consumer saw it."""

    stamp: float  # header stamp, seconds
    frame_index: int  # sequence frame (-1: unknown)
    keypoints_valid: int  # keypoints with a valid 3D position in the message
    estimated: bool  # a handle frame was published for this message (after filtering)
    position_mm: float  # origin error (NaN: no estimate or no ground truth)
    axis_deg: float  # axis angle error (NaN: no estimate or no ground truth)
    approach_deg: float  # approach angle error (NaN: no estimate, no approach or no ground truth)
    latency_ms: float  # camera publish -> keypoints at the consumer (NaN: not measured)


@dataclass
class ErrorSummary:
    """Statistics over the frames of an `ErrorLog` (errors over the frames with an estimate and ground truth)."""

    frames: int  # keypoint messages received
    frames_with_estimate: int  # messages that gave a handle frame
    frames_evaluated: int  # messages with a handle frame and ground truth
    position_mm_median: float
    position_mm_p90: float
    axis_deg_median: float
    axis_deg_p90: float
    approach_deg_median: float  # over the frames with an approach
    latency_ms_median: float  # camera publish -> keypoints at the consumer
    latency_ms_p95: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _pct(values: list[float], q: float) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.percentile(v, q)) if v else math.nan


class ErrorLog:
    """Rows of `FrameRecord`, with running windows and the final summary."""

    def __init__(self) -> None:
        self.records: list[FrameRecord] = []

    def add(self, stamp_s: float, frame_index: int, keypoints_valid: int, estimate: HandleFrame | None,
            truth: HandleFrame | None, latency_ms: float = math.nan) -> FrameRecord:
        errors = frame_errors(estimate, truth) if estimate is not None and truth is not None else (math.nan,) * 3
        rec = FrameRecord(stamp_s, frame_index, keypoints_valid, estimate is not None, *errors, latency_ms)
        self.records.append(rec)
        return rec

    def summary(self, since: int = 0) -> ErrorSummary:
        """Statistics over records[since:]."""
        rs = self.records[since:]
        pos = [r.position_mm for r in rs]
        axis = [r.axis_deg for r in rs]
        return ErrorSummary(
            frames=len(rs), frames_with_estimate=sum(r.estimated for r in rs),
            frames_evaluated=sum(not math.isnan(r.position_mm) for r in rs),
            position_mm_median=_pct(pos, 50), position_mm_p90=_pct(pos, 90),
            axis_deg_median=_pct(axis, 50), axis_deg_p90=_pct(axis, 90),
            approach_deg_median=_pct([r.approach_deg for r in rs], 50),
            latency_ms_median=_pct([r.latency_ms for r in rs], 50), latency_ms_p95=_pct([r.latency_ms for r in rs], 95))

    def write_csv(self, path: str | Path) -> None:
        fields = list(FrameRecord.__dataclass_fields__)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(fields)
            for r in self.records:
                w.writerow([f"{v:.6g}" if isinstance(v, float) else int(v) for v in asdict(r).values()])

    def plot(self, path: str | Path, title: str = "mug handle frame error") -> None:
        """Position and angle errors over time (PNG). Needs matplotlib (ImportError otherwise)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.array([r.stamp for r in self.records])
        t = t - t[0] if len(t) else t
        fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(8, 5), constrained_layout=True)
        try:
            ax1.plot(t, [r.position_mm for r in self.records], ".-", ms=3, lw=0.8)
            ax1.set_ylabel("position error [mm]")
            ax1.set_title(title)
            ax2.plot(t, [r.axis_deg for r in self.records], ".-", ms=3, lw=0.8, label="axis")
            ax2.plot(t, [r.approach_deg for r in self.records], ".-", ms=3, lw=0.8, label="approach")
            ax2.set_ylabel("angle error [deg]")
            ax2.set_xlabel("time since the first frame [s] (stamps)")
            ax2.legend(loc="upper right")
            for ax in (ax1, ax2):  # at least 0..1 mm / deg: no axis scaled to 1e-15
                ax.grid(alpha=0.3)
                top = max((v for line in ax.get_lines() for v in line.get_ydata() if np.isfinite(v)), default=0.0)
                ax.set_ylim(0, max(1.0, 1.1 * top))
            fig.savefig(path, dpi=100)
        finally:
            plt.close(fig)


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def format_summary(s: ErrorSummary | Mapping[str, Any]) -> list[str]:
    """Human-readable summary lines (from an ErrorSummary or its `to_dict()`)."""
    d = s.to_dict() if isinstance(s, ErrorSummary) else dict(s)
    lines = [f"frames {d['frames']}, with a handle frame {d['frames_with_estimate']}, "
             f"evaluated against ground truth {d['frames_evaluated']}"]
    if d["frames_evaluated"]:
        lines.append(f"position error median {_num(d['position_mm_median'], '.1f')} mm, "
                     f"p90 {_num(d['position_mm_p90'], '.1f')} mm; axis error median "
                     f"{_num(d['axis_deg_median'], '.1f')} deg, p90 {_num(d['axis_deg_p90'], '.1f')} deg; "
                     f"approach error median {_num(d['approach_deg_median'], '.1f')} deg")
    if d.get("latency_ms_median") is not None:
        lines.append(f"latency camera -> keypoints at the consumer: median {_num(d['latency_ms_median'], '.0f')} ms, "
                     f"p95 {_num(d['latency_ms_p95'], '.0f')} ms")
    return lines
