"""The handle-frame consumer's logic without ROS: options, per-message processing, reports and outputs.

`HandleFrameConsumer.process` takes one keypoint message's content (stamp, names, 3D positions, validity)
and returns the (filtered) handle frame to publish; it scores the frame against the simulator ground
truth when a ground-truth file is given. `consumer_node.AcfConsumerNode` is the rclpy shell around it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .evaluation import ErrorLog, FrameRecord, SequenceGroundTruth, format_summary
from .handle_frame import FrameFilterConfig, HandleFrame, HandleFrameFilter, estimate_handle_frame

__all__ = ["ConsumerOptions", "HandleFrameConsumer", "RELIABILITIES", "on_object"]

RELIABILITIES = ("reliable", "best_effort")


@dataclass
class ConsumerOptions:
    """Options of the consumer; each is also a ROS parameter of the node (declared with this as default)."""

    keypoints_topic: str = "/dense_descriptor/keypoints"  # KeypointArray input
    ground_truth_file: str = ""  # sim camera --save-ground-truth JSON ("" = no scoring)
    camera_pose_topic: str = "ground_truth/camera_pose"  # stamped camera topic whose arrival times give the
    #                                                      latency camera -> consumer ("" = not measured)
    diagnostics_topic: str = "/diagnostics"  # where the descriptor node reports ("" = not shown)
    filter: str = "none"  # temporal filter of the frames: "none", "ema" or "median"
    filter_alpha: float = 0.5  # ema: weight of the newest frame, in (0, 1]
    filter_window: int = 5  # median: frames
    filter_max_gap: int = 5  # frames without an estimate during which the last frame is held (ema, median)
    min_score: float = 0.0  # keypoints scored below this count as missing
    labels_topic: str = ""  # the descriptor node's label image (mono8, ~/labels): keypoints whose pixel is
    #                         background (label 0) count as missing ("" = no object mask)
    qos_reliability: str = "reliable"  # keypoints subscription: "reliable" or "best_effort"
    log_period: float = 1.0  # seconds between progress lines (0 = none)
    count: int = 0  # stop after this many keypoint messages (0 = no limit)

    def validate(self) -> None:
        """Raise ValueError naming the first bad option."""
        checks = [
            (bool(self.keypoints_topic), "keypoints_topic must not be empty"),
            (self.qos_reliability in RELIABILITIES,
             f"qos_reliability must be one of {list(RELIABILITIES)}, got {self.qos_reliability!r}"),
            (self.log_period >= 0, f"log_period must be >= 0, got {self.log_period}"),
            (self.count >= 0, f"count must be >= 0, got {self.count}"),
            (math.isfinite(self.min_score), f"min_score must be finite, got {self.min_score}"),
        ]
        for ok, text in checks:
            if not ok:
                raise ValueError(text)
        self.filter_config().validate()

    def filter_config(self) -> FrameFilterConfig:
        return FrameFilterConfig(self.filter, self.filter_alpha, self.filter_window, self.filter_max_gap)


def on_object(pixels: Mapping[str, tuple[float, float]], labels: np.ndarray) -> dict[str, bool]:
    """Whether each keypoint's pixel lies on an object of the label image (label != 0); a pixel outside the
    image or not finite is not on an object.

    Shape: labels (H, W) uint8; pixels name -> (x, y) in the same image."""
    if labels.ndim != 2:
        raise ValueError(f"labels: expected (H, W), got {labels.shape}")
    h, w = labels.shape
    out = {}
    for name, (x, y) in pixels.items():
        if not (math.isfinite(x) and math.isfinite(y)):
            out[name] = False
            continue
        c, r = int(round(x)), int(round(y))
        out[name] = 0 <= c < w and 0 <= r < h and bool(labels[r, c] != 0)
    return out


class HandleFrameConsumer:
    """Keypoints in, handle frames out, errors logged. `log` is a callable(level, text) for messages
    (level "info", "warning" or "error"); the ROS node passes its logger."""

    def __init__(self, options: ConsumerOptions, log=None) -> None:
        options.validate()
        self.options = options
        self._log = log or (lambda level, text: None)
        self.filter = HandleFrameFilter(options.filter_config())
        self.errors = ErrorLog()
        self.truth: SequenceGroundTruth | None = None
        self.truth_error: str | None = None  # why the ground truth cannot be used (set once, for good)
        self._waiting_logged = False
        self._reported = 0  # records already covered by a progress line
        self._bad_stamps = 0
        self.masked_frames = 0  # keypoint messages that had a label image
        self.masked_keypoints = 0  # valid keypoints the object mask turned into missing ones
        # loaded at the first message, not here: the camera (re)writes the file before its first frame, so a
        # file left by an earlier run is never read

    @property
    def done(self) -> bool:
        return bool(self.options.count) and len(self.errors.records) >= self.options.count

    def load_truth(self) -> SequenceGroundTruth | None:
        """Load the ground-truth file if given and not loaded yet (it may appear after the consumer starts;
        while it is missing, this returns None and logs that once)."""
        path = self.options.ground_truth_file
        if self.truth is not None or not path or self.truth_error:
            return self.truth
        try:
            self.truth = SequenceGroundTruth.load(path)
        except FileNotFoundError:
            if not self._waiting_logged:
                self._log("info", f"waiting for the ground-truth file {path}")
                self._waiting_logged = True
            return None
        except (ValueError, OSError) as e:
            self.truth_error = str(e)
            self._log("error", f"no ground truth: {e}")
            return None
        self._log("info", f"ground truth: {self.truth.frames} frames at {self.truth.rate:g} Hz from {path}")
        return self.truth

    def process(self, stamp_ns: int, points: Mapping[str, np.ndarray], valid: Mapping[str, bool],
                scores: Mapping[str, float] | None = None, latency_ms: float = math.nan,
                pixels: Mapping[str, tuple[float, float]] | None = None,
                labels: np.ndarray | None = None) -> tuple[HandleFrame | None, FrameRecord]:
        """One keypoint message.

        Args:
            stamp_ns: header stamp (nanoseconds).
            points: keypoint name -> (3,) position in the optical frame (metres).
            valid: name -> position_valid.
            scores: name -> match score; below `min_score` a keypoint counts as missing.
            latency_ms: camera publish -> here, if measured.
            pixels: name -> (x, y) pixel of the keypoint in the colour image (with `labels`).
            labels: (H, W) uint8 label image of the same frame (0 = background): keypoints off the objects
                count as missing. None: no mask for this frame.

        Returns:
            The handle frame to publish (after the filter; None: none this frame) and the logged record.
        """
        ok = {n: bool(v) and (scores is None or scores.get(n, 0.0) >= self.options.min_score)
              for n, v in valid.items()}
        if labels is not None and pixels is not None:
            on = on_object(pixels, labels)
            self.masked_frames += 1
            self.masked_keypoints += sum(ok[n] and not on.get(n, False) for n in ok)
            ok = {n: v and on.get(n, False) for n, v in ok.items()}
        frame = self.filter.update(estimate_handle_frame(points, ok))
        truth, index = None, -1
        gt = self.load_truth()
        if gt is not None:
            try:
                index = gt.frame_index(stamp_ns)
                truth = gt.handle_frame(index)
            except ValueError as e:
                self._bad_stamps += 1
                if self._bad_stamps == 1 or self._bad_stamps % 100 == 0:
                    self._log("warning", f"{e} ({self._bad_stamps} such messages)")
        record = self.errors.add(stamp_ns * 1e-9, index, sum(ok.values()), frame, truth, latency_ms)
        return frame, record

    def progress_line(self) -> str | None:
        """Statistics since the previous call (None if no message arrived since)."""
        s = self.errors.summary(self._reported)
        self._reported = len(self.errors.records)
        if s.frames == 0:
            return None
        text = f"{s.frames} frames, {s.frames_with_estimate} with a handle frame"
        if s.frames_evaluated:
            total = self.errors.summary()
            text += (f"; position {s.position_mm_median:.1f} mm, axis {s.axis_deg_median:.1f} deg, approach "
                     f"{s.approach_deg_median:.1f} deg (medians); all {total.frames} frames: position median "
                     f"{total.position_mm_median:.1f} mm, axis {total.axis_deg_median:.1f} deg")
        return text

    def finish(self, out_dir: str | Path | None = None, extra_lines: list[str] | tuple[str, ...] = (),
               extra: Mapping | None = None) -> list[str]:
        """Summary lines (plus `extra_lines`); with `out_dir`, also acf_errors.csv, acf_errors.png (when
        there are errors to plot and matplotlib is installed) and acf_summary.json (`extra` added to it)."""
        summary = self.errors.summary()
        lines = format_summary(summary)
        if self.options.labels_topic:
            lines.append(f"object mask: {self.masked_frames} of {summary.frames} keypoint messages had a label "
                         f"image; {self.masked_keypoints} keypoints off the objects were dropped")
        if self.options.ground_truth_file and self.truth is None:
            lines.append(f"not scored: {self.truth_error or 'the ground-truth file never appeared'}")
        lines += list(extra_lines)
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            self.errors.write_csv(out / "acf_errors.csv")
            written = ["acf_errors.csv"]
            if summary.frames_evaluated:
                try:
                    self.errors.plot(out / "acf_errors.png")
                    written.append("acf_errors.png")
                except ImportError:
                    lines.append("matplotlib is not installed: no plot")
            written.append("acf_summary.json")
            lines.append(f"wrote {', '.join(written)} to {out}")
            report = {"summary": summary.to_dict(), "options": asdict(self.options), **dict(extra or {}),
                      "lines": lines}
            (out / "acf_summary.json").write_text(json.dumps(report, indent=1) + "\n")
        return lines
