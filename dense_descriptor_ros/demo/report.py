"""Scoring and pictures of a recorded node run against the sample bag's ground truth (no rclpy).

Inputs: the bag that was played (colour frames), the bag the node's outputs were recorded into, and
the ground-truth JSON written with the sample bag (`dense-descriptor bag sample`: K, camera poses,
per-frame keypoints, the stamp of every frame).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..acf.handle_frame import estimate_handle_frame, frame_errors, truth_handle_frame
from ..bag.io import BagReader
from ..matching.keypoints import ReferenceKeypoints
from ..pipeline.outputs import output_topics
from ..ros_core import image_to_rgb
from ..ros_core.sync import stamp_to_ns
from ..ros_core.topics import DIAGNOSTICS_TOPIC

#: What the demo records: every node output and /diagnostics.
OUTPUT_TOPICS = {**output_topics(), "diagnostics": DIAGNOSTICS_TOPIC}

if TYPE_CHECKING:
    from ..runtime.extractor import DescriptorExtractor


@dataclass
class DemoSummary:
    """What the demo prints and writes to summary.json."""

    frames_played: int
    frames_processed: int
    node_ms_p50: float  # frame's inputs received -> outputs published, from the node's last diagnostics
    node_ms_p95: float
    inference_ms_p50: float
    backend: str
    keypoints_visible: int  # (frame, keypoint) pairs visible in the ground truth
    keypoints_found: int  # ... of which the node found
    keypoint_px_median: float  # pixel error of the found ones
    keypoint_mm_median: float  # 3D error of the found ones with depth
    keypoint_mm_p90: float
    correspondences_per_frame: float
    correspondence_reproj_px_median: float  # against the known camera motion and depth
    # the mug handle's frame (acf/handle_frame.py) from the node's 3D keypoints, against the ground truth's
    handle_frames: int = 0  # frames with keypoints from which a handle frame could be built
    handle_position_mm_median: float = float("nan")
    handle_axis_deg_median: float = float("nan")
    handle_approach_deg_median: float = float("nan")
    per_keypoint: dict[str, dict[str, float]] = field(default_factory=dict)
    # frames that arrived while the node was still busy with the one before (its last diagnostics'
    # frames_dropped_busy): the node keeps only the newest frame, so a slow frame on a loaded machine costs the next
    frames_dropped_busy: int = 0
    # the node's own counters from its last diagnostics (-1: no diagnostics recorded): frames it processed (more
    # than frames_processed when outputs published at the very end were not recorded), and input messages the
    # synchroniser could not pair (a colour image without its depth or camera info)
    node_frames_processed: int = -1
    messages_unmatched: int = -1

    def lines(self) -> list[str]:
        busy = self.frames_dropped_busy
        why = [f"{busy} dropped: they came while the node was busy with the frame before, and a live node keeps "
               "only the newest"] if busy else []
        if self.messages_unmatched > 0:
            why.append(f"{self.messages_unmatched} input messages without their partner image or camera info")
        if self.node_frames_processed > self.frames_processed:
            why.append(f"the node processed {self.node_frames_processed}, "
                       f"{self.node_frames_processed - self.frames_processed} of them missing from the recording")
        return [
            f"frames: {self.frames_played} played, {self.frames_processed} processed by the node"
            + (f" ({'; '.join(why)})" if why else ""),
            f"node latency (inputs received -> outputs published): p50 {self.node_ms_p50:.1f} ms, "
            f"p95 {self.node_ms_p95:.1f} ms; inference p50 {self.inference_ms_p50:.1f} ms ({self.backend})",
            *self.keypoint_lines(),
            f"correspondences to the previous frame: {self.correspondences_per_frame:.0f} per frame, median "
            f"reprojection error {self.correspondence_reproj_px_median:.2f} px against the true camera motion",
        ]

    def keypoint_lines(self) -> list[str]:
        return [
            f"keypoints: found {self.keypoints_found} of {self.keypoints_visible} visible; median error "
            f"{self.keypoint_px_median:.1f} px, 3D {self.keypoint_mm_median:.1f} mm "
            f"(p90 {self.keypoint_mm_p90:.1f} mm)",
            f"mug handle frame: in {self.handle_frames} of {self.frames_processed} frames; median error "
            f"{self.handle_position_mm_median:.1f} mm, axis {self.handle_axis_deg_median:.1f} deg, "
            f"approach {self.handle_approach_deg_median:.1f} deg",
        ]


def _read(bag: Path, topics: list[str]) -> dict[str, list[tuple[int, Any]]]:
    out: dict[str, list[tuple[int, Any]]] = {t: [] for t in topics}
    with BagReader(bag) as r:
        present = [t for t in topics if t in r.topics]
        for topic, msgtype, log_ns, raw in r.messages(present):
            out[topic].append((log_ns, r.deserialize(raw, msgtype)))
    return out


def _nanmedian(v: list[float]) -> float:
    return float(np.median(v)) if v else float("nan")


def correspondence_errors(correspondences: dict[int, Any], index: dict[int, int], K: np.ndarray,
                          T_wc: np.ndarray) -> tuple[list[float], list[int], list[float]]:
    """Reprojection errors (px) of Correspondences messages against the known camera motion: each match's point of
    frame A (lifted with A's depth, in the message) moved into frame B and projected, against its pixel in B.

    Args:
        correspondences: frame index of B -> message; index: stamp (ns) -> frame index; K: (3, 3);
            T_wc: (F, 3 or 4, 4) camera -> world poses by frame index.
    Returns:
        errors of every match with valid 3D points, the number of matches of every message, and the scores of the
        matches whose errors are returned (same order).
    """
    reproj, n_corr, scores = [], [], []
    for b, c in correspondences.items():
        a = index.get(stamp_to_ns(c.stamp_a))
        n = len(c.scores)
        n_corr.append(n)
        if a is None or n == 0:
            continue
        T = np.linalg.inv(T_wc[b]) @ T_wc[a]
        valid = np.asarray(c.points_valid, bool)
        pa = np.asarray(c.points_a, np.float64).reshape(n, 3)[valid]
        q = pa @ T[:3, :3].T + T[:3, 3]
        proj = q[:, :2] / q[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
        reproj += np.linalg.norm(proj - np.asarray(c.pixels_b, np.float64).reshape(n, 2)[valid], axis=1).tolist()
        scores += np.asarray(c.scores, np.float64)[valid].tolist()
    return reproj, n_corr, scores


def score(played: Path, recorded: Path, ground_truth: Path) -> tuple[DemoSummary, dict[str, Any]]:
    """The summary, and what the pictures need (frames by index, outputs by frame index)."""
    gt = json.loads(Path(ground_truth).read_text())
    stamps = [int(s) for s in gt["recording"]["stamps_ns"]]
    index = {s: i for i, s in enumerate(stamps)}
    K = np.asarray(gt["K"], np.float64)
    T_wc = np.asarray(gt["T_world_camera"], np.float64)
    mug = int(gt["mug_instance_id"])
    inp = _read(played, [gt["recording"]["topics"]["color"]])[gt["recording"]["topics"]["color"]]
    frames = {index[stamp_to_ns(m.header.stamp)]: image_to_rgb(m) for _, m in inp
              if stamp_to_ns(m.header.stamp) in index}
    out = _read(recorded, list(OUTPUT_TOPICS.values()))
    by = {k: {index.get(stamp_to_ns(m.header.stamp)): m for _, m in out[t]} for k, t in OUTPUT_TOPICS.items()
          if k != "diagnostics"}
    for v in by.values():
        v.pop(None, None)
    # keypoints against the ground truth of the mug
    px, mm, visible, found = [], [], 0, 0
    per: dict[str, dict[str, list[float]]] = {}
    for i, msg in by["keypoints"].items():
        T_cw = np.linalg.inv(T_wc[i])
        truth = {k["name"]: k for k in gt["keypoints"][i] if k["instance_id"] == mug and k["visible"]}
        for kp in msg.keypoints:
            t = truth.get(kp.name)
            if t is None:
                continue
            visible += 1
            rec = per.setdefault(kp.name, {"px": [], "mm": [], "visible": [0]})
            rec["visible"][0] += 1
            if not kp.pixel_valid:
                continue
            found += 1
            e = float(np.hypot(kp.pixel_x - t["uv"][0], kp.pixel_y - t["uv"][1]))
            px.append(e)
            rec["px"].append(e)
            if kp.position_valid:
                xyz = T_cw[:3, :3] @ np.asarray(t["world"]) + T_cw[:3, 3]
                d = 1000 * float(np.linalg.norm([kp.position.x - xyz[0], kp.position.y - xyz[1],
                                                 kp.position.z - xyz[2]]))
                mm.append(d)
                rec["mm"].append(d)
    handle = _handle_frame_errors(by["keypoints"], gt, T_wc, mug)
    reproj, n_corr, _ = correspondence_errors(by["correspondences"], index, K, T_wc)
    diag = {kv.key: kv.value for kv in out[OUTPUT_TOPICS["diagnostics"]][-1][1].status[0].values} \
        if out[OUTPUT_TOPICS["diagnostics"]] else {}

    def num(key: str) -> float:
        try:
            return float(diag[key])
        except (KeyError, ValueError):
            return float("nan")

    def count(key: str, missing: int) -> int:
        return int(num(key)) if np.isfinite(num(key)) else missing

    summary = DemoSummary(
        frames_played=len(frames), frames_processed=len(by["descriptors"]),
        frames_dropped_busy=count("frames_dropped_busy", 0), node_frames_processed=count("frames_processed", -1),
        messages_unmatched=count("messages_unmatched", -1),
        node_ms_p50=num("node_ms_p50"), node_ms_p95=num("node_ms_p95"), inference_ms_p50=num("inference_ms_p50"),
        backend=diag.get("backend", "unknown"), keypoints_visible=visible, keypoints_found=found,
        keypoint_px_median=_nanmedian(px), keypoint_mm_median=_nanmedian(mm),
        keypoint_mm_p90=float(np.percentile(mm, 90)) if mm else float("nan"),
        correspondences_per_frame=float(np.mean(n_corr)) if n_corr else 0.0,
        correspondence_reproj_px_median=_nanmedian(reproj),
        handle_frames=len(handle), handle_position_mm_median=_nanmedian([e[0] for e in handle]),
        handle_axis_deg_median=_nanmedian([e[1] for e in handle]),
        handle_approach_deg_median=_nanmedian([e[2] for e in handle if np.isfinite(e[2])]),
        per_keypoint={k: {"visible": v["visible"][0], "found": len(v["px"]), "px_median": _nanmedian(v["px"]),
                          "mm_median": _nanmedian(v["mm"])} for k, v in per.items()})
    return summary, {"frames": frames, "by": by, "gt": gt, "K": K, "T_wc": T_wc, "mug": mug}


def _handle_frame_errors(keypoints: dict[int, Any], gt: dict[str, Any], T_wc: np.ndarray,
                         mug: int) -> list[tuple[float, float, float]]:
    """(position mm, axis deg, approach deg) of the handle frame built from each frame's published 3D
    keypoints, against the frame the ground truth's keypoints (all of them, hidden ones too) define."""
    out = []
    for i, msg in keypoints.items():
        named = {kp.name: np.array([kp.position.x, kp.position.y, kp.position.z]) for kp in msg.keypoints
                 if kp.position_valid}
        est = estimate_handle_frame(named)
        if est is None:
            continue
        T_cw = np.linalg.inv(T_wc[i])
        truth = truth_handle_frame({k["name"]: T_cw[:3, :3] @ np.asarray(k["world"]) + T_cw[:3, 3]
                                    for k in gt["keypoints"][i] if k["instance_id"] == mug})
        out.append(frame_errors(est, truth))
    return out


def first_frame_keypoints(extractor: DescriptorExtractor, played: Path, ground_truth: Path) -> ReferenceKeypoints:
    """The mug's keypoints visible in the bag's first frame, annotated at their ground-truth pixels
    (`sim.reference_keypoints.frame_keypoints`): what a robot shown the object once would track."""
    from ..sim.reference_keypoints import frame_keypoints

    gt = json.loads(Path(ground_truth).read_text())
    topic = gt["recording"]["topics"]["color"]
    first = int(gt["recording"]["stamps_ns"][0])
    rgb = next((image_to_rgb(m) for _, m in _read(played, [topic])[topic] if stamp_to_ns(m.header.stamp) == first),
               None)
    if rgb is None:
        raise ValueError(f"{played} has no {topic} frame with the ground truth's first stamp")
    return frame_keypoints(extractor, rgb, gt["keypoints"][0], int(gt["mug_instance_id"]), "mug",
                           f"{played} frame 0", min_visible=1)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def _colour(name: str) -> tuple[int, int, int]:
    h = (sum(map(ord, name)) * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[h, 220, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(x) for x in bgr)


def _pca_picture(frames: dict[int, np.ndarray], by: dict[str, dict[int, Any]], picks: tuple[int, ...],
                 out: Path) -> Path:
    """descriptors_pca.png: each picked frame beside its descriptors' PCA image."""
    rows = []
    for i in picks:
        rgb = frames[i]
        pca = by["pca"].get(i)
        pca_rgb = image_to_rgb(pca) if pca is not None else np.zeros_like(rgb)
        if pca_rgb.shape != rgb.shape:  # the node publishes it at its processing resolution
            pca_rgb = cv2.resize(pca_rgb, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
        rows.append(np.hstack([_label(rgb, f"frame {i}"), _label(pca_rgb, "descriptors (PCA)")]))
    path = out / "descriptors_pca.png"
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return path


def _picks(data: dict[str, Any]) -> tuple[list[int], tuple[int, ...]]:
    """The frames the node processed, and the first, middle and last of them (the pictures' frames)."""
    frames, by = data["frames"], data["by"]
    done = sorted(set(frames) & set(by["descriptors"]) & set(by["keypoints"]))
    if not done:
        raise ValueError("the node processed none of the played frames: nothing to draw")
    return done, tuple(done[int(round(q * (len(done) - 1)))] for q in (0.0, 0.5, 1.0))


def keypoints_picture(data: dict[str, Any], path: Path, picks: tuple[int, ...] | None = None) -> Path:
    """The picked frames with the node's keypoints (filled, named) and the ground truth's (rings), as PNG."""
    frames, by, gt = data["frames"], data["by"], data["gt"]
    picks = picks or _picks(data)[1]
    tiles = []
    for i in picks:
        img = frames[i].copy()
        truth = {k["name"]: k for k in gt["keypoints"][i] if k["instance_id"] == data["mug"] and k["visible"]}
        for kp in by["keypoints"][i].keypoints:
            c = _colour(kp.name)
            if kp.name in truth:
                u, v = truth[kp.name]["uv"]
                cv2.circle(img, (int(round(u)), int(round(v))), 6, c, 1, cv2.LINE_AA)
            if kp.pixel_valid:
                p = (int(round(kp.pixel_x)), int(round(kp.pixel_y)))
                cv2.circle(img, p, 3, c, -1, cv2.LINE_AA)
                cv2.putText(img, kp.name, (p[0] + 5, p[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, c, 1, cv2.LINE_AA)
        tiles.append(_label(img, f"frame {i}: dots found, rings truth"))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))
    return path


def _correspondence_picture(data: dict[str, Any], done: list[int], picks: tuple[int, ...], out: Path) -> Path | None:
    """correspondences.png: the middle pick's correspondences to its frame A, coloured by reprojection error
    against the true camera motion; None when no processed frame has correspondences."""
    frames, by, gt = data["frames"], data["by"], data["gt"]
    b = next((i for i in (picks[1], *done) if i in by["correspondences"]), None)
    if b is None:
        return None
    c = by["correspondences"][b]
    a = next(i for i, s in enumerate(gt["recording"]["stamps_ns"]) if int(s) == stamp_to_ns(c.stamp_a))
    n = len(c.scores)
    ua = np.asarray(c.pixels_a, np.float64).reshape(n, 2)
    ub = np.asarray(c.pixels_b, np.float64).reshape(n, 2)
    valid = np.asarray(c.points_valid, bool)
    pa = np.asarray(c.points_a, np.float64).reshape(n, 3)
    T = np.linalg.inv(data["T_wc"][b]) @ data["T_wc"][a]
    q = pa @ T[:3, :3].T + T[:3, 3]
    K = data["K"]
    with np.errstate(invalid="ignore", divide="ignore"):
        proj = q[:, :2] / q[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    err = np.where(valid, np.linalg.norm(proj - ub, axis=1), np.nan)
    left, right = frames[a].copy(), frames[b].copy()
    canvas = np.hstack([left, right])
    w = left.shape[1]
    for (xa, ya), (xb, yb), e in zip(ua, ub, err, strict=True):
        col = (128, 128, 128) if not np.isfinite(e) else (0, 200, 0) if e < 2 else (255, 200, 0) if e < 5 \
            else (255, 0, 0)
        cv2.line(canvas, (int(xa), int(ya)), (int(xb) + w, int(yb)), col, 1, cv2.LINE_AA)
    canvas = _label(canvas, f"frame {a} -> {b}: green < 2 px, yellow < 5 px, red worse, grey no depth")
    path = out / "correspondences.png"
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return path


def pictures(data: dict[str, Any], out: Path, picks: tuple[int, ...] | None = None) -> list[Path]:
    """descriptors_pca.png, keypoints.png, correspondences.png (RGB images written as PNG)."""
    out.mkdir(parents=True, exist_ok=True)
    done, default_picks = _picks(data)
    picks = picks or default_picks
    written = [_pca_picture(data["frames"], data["by"], picks, out),
               keypoints_picture(data, out / "keypoints.png", picks)]
    corr = _correspondence_picture(data, done, picks, out)
    return written if corr is None else [*written, corr]


def write_summary(summaries: dict[str, DemoSummary], out: Path) -> Path:
    """summary.json: run name ("tracked", "category", "given") -> its summary."""
    path = out / "summary.json"
    path.write_text(json.dumps({name: asdict(s) for name, s in summaries.items()}, indent=2) + "\n")
    return path
