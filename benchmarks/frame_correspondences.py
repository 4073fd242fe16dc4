"""Frame-to-frame correspondences as the node makes them, on the sample bag (a camera moving around a mug at 30 Hz,
true poses and depth in data_sample/sim_mug/ground_truth.json): every method of `correspondence_method` through
`bag process` (the node's pipeline, the node's parameters), scored against the known camera motion.

    .venv/bin/python benchmarks/frame_correspondences.py [--matcher runs/matcher_default/matcher.onnx]
        [--bag data_sample/sim_mug] [--param name=value ...]

Prints, per method: correspondences per frame, the reprojection error of the matches (median, p90, share within
1 / 3 px), the matches within 3 px per frame at the loosest score threshold that keeps 90% of them within 3 px, and
the pipeline's median correspondence stage time. The matcher must have been trained on the model the
node runs (default: the shipped model).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from dense_descriptor_ros.bag.io import BagReader
from dense_descriptor_ros.bag.process import OUTPUT_TOPICS, ProcessOptions, process_bag
from dense_descriptor_ros.demo.report import correspondence_errors
from dense_descriptor_ros.node.params import NodeSettings
from dense_descriptor_ros.ros_core import stamp_to_ns


def score(out: Path, ground_truth: dict) -> tuple[np.ndarray, list[int], np.ndarray]:
    stamps = [int(s) for s in ground_truth["recording"]["stamps_ns"]]
    index = {s: i for i, s in enumerate(stamps)}
    with BagReader(out) as r:
        msgs = [r.deserialize(raw, t) for _, t, _, raw in r.messages([OUTPUT_TOPICS["correspondences"]])]
    by = {index[stamp_to_ns(m.header.stamp)]: m for m in msgs if stamp_to_ns(m.header.stamp) in index}
    errors, counts, scores = correspondence_errors(by, index, np.asarray(ground_truth["K"], np.float64),
                                                   np.asarray(ground_truth["T_world_camera"], np.float64))
    return np.asarray(errors), counts, np.asarray(scores)


def correct_at_precision(errors: np.ndarray, scores: np.ndarray, frames: int, precision: float = 0.9,
                         px: float = 3.0) -> float:
    """Most matches within `px` per frame among the score thresholds whose matches are >= `precision` within it."""
    ok = errors[np.argsort(-scores, kind="stable")] <= px
    cum = np.cumsum(ok)
    good = cum / np.arange(1, len(ok) + 1) >= precision
    return float(cum[good].max()) / frames if good.any() else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bag", type=Path, default=Path("data_sample/sim_mug"))
    p.add_argument("--matcher", help="learned matcher file for the node's model (.onnx or .safetensors)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra node parameters for every method (e.g. correspondence_min_confidence=0.1)")
    args = p.parse_args()
    gt = json.loads((args.bag / "ground_truth.json").read_text())
    extra = dict(v.split("=", 1) for v in args.param)
    methods = {"descriptor": {"correspondence_method": "descriptor"}}
    if args.matcher:
        methods["matcher"] = {"correspondence_method": "matcher", "matcher_file": args.matcher}
    print(f"{args.bag}: {len(gt['recording']['stamps_ns'])} frames; reprojection error of the correspondences "
          "to the previous frame against the true camera motion")
    with tempfile.TemporaryDirectory() as d:
        for name, params in methods.items():
            settings, _ = NodeSettings().with_changes({"keypoints_file": "none", "part_probe_file": "none",
                                                       **params, **_typed(extra)})
            out = Path(d) / name
            summary = process_bag(args.bag, out, settings, ProcessOptions(progress=False), log=lambda *a: None)
            e, counts, scores = score(out, gt)
            ms = np.median(summary.stage_ms["correspondences"]) if summary.stage_ms.get("correspondences") else 0
            print(f"  {name:10s}: {np.mean(counts):6.1f} per frame; error median {np.median(e):.2f} px, p90 "
                  f"{np.percentile(e, 90):.2f} px, within 1 px {np.mean(e <= 1):.3f}, within 3 px {np.mean(e <= 3):.3f}"
                  f" ({len(e)} matches with depth); within 3 px per frame at >= 90% precision (score swept) "
                  f"{correct_at_precision(e, scores, len(counts)):.1f}; correspondence stage {ms:.1f} ms a frame",
                  flush=True)


def _typed(values: dict[str, str]) -> dict:
    """--param strings as YAML scalars (numbers, booleans), as `bag process --param` reads them."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in values.items()}


if __name__ == "__main__":
    main()
