"""`dense-descriptor keypoints from-sim`: a category-level keypoint file from the synthetic dataset's
ground-truth keypoints, and its transfer error on held-out instances."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..cli_args import size_wh

SPLITS = ("train", "test_scenes", "val", "test")


def _from_sim(args: argparse.Namespace) -> int:
    from ..runtime.extractor import DescriptorExtractor, ExtractorConfig
    from .reference_keypoints import build_reference_keypoints, keypoint_transfer_errors, select_reference_views

    out = Path(args.out)
    if not out.parent.is_dir():
        raise SystemExit(f"error: cannot write {out}: folder {out.parent} does not exist")
    try:
        t0 = time.perf_counter()
        views = select_reference_views(args.data, args.category, args.split, args.instances, args.min_visible,
                                       args.seed)
        t_sel = time.perf_counter() - t0
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    cfg = ExtractorConfig(device=args.device, providers=tuple(args.providers.split(",")),
                          resolution=args.resolution or (0, 0), num_threads=args.threads, warmup_iters=0)
    try:
        extractor = DescriptorExtractor.load(args.model, cfg)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as e:
        raise SystemExit(f"error: cannot load model {args.model}: {e}") from None
    print(f"model {extractor.describe()}")
    print(f"{len(views)} {args.category} instances of the {args.split!r} split ({t_sel:.1f} s):")
    for rv in views:
        print(f"  {rv.key:12s} {rv.scene} view {rv.view}: {len(rv.keypoints)} visible keypoints, "
              f"{rv.pixels} object pixels")
    if len(views) < args.instances:
        print(f"  (asked for {args.instances}; the split has only {len(views)} eligible instances)")
    try:
        t0 = time.perf_counter()
        ref = build_reference_keypoints(extractor, args.data, args.category, args.split, views=views)
        t_build = time.perf_counter() - t0
        ref.save(out)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    except OSError as e:
        raise SystemExit(f"error: cannot write {out}: {e}") from None
    counts = ", ".join(f"{n} ({len(s)})" for n, s in zip(ref.names, ref.sources, strict=True))
    print(f"wrote {len(ref.names)} keypoints of {ref.category!r} (D={ref.descriptor_dim}, model "
          f"{extractor.info.model_id}) to {out} in {t_build:.1f} s; instances per keypoint: {counts}")
    if args.no_eval:
        return 0
    if args.eval_split == args.split or (args.eval_split == "test_scenes" and args.split == "train"):
        print(f"note: the {args.eval_split!r} scenes hold the reference instances themselves: not held out")
    try:
        t0 = time.perf_counter()
        err = keypoint_transfer_errors(extractor, ref, args.data, args.category, args.eval_split,
                                       max_views=args.max_views or None, min_confidence=args.min_confidence,
                                       locate_options={"prototypes": args.prototypes})
        t_eval = time.perf_counter() - t0
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"\ntransfer to the {args.eval_split!r} split: {len(err.views)} views ({t_eval:.1f} s); error to the "
          f"nearest visible same-named keypoint of any {args.category} in the view; 3D error from the view's depth "
          f"under the located pixel; min confidence {args.min_confidence:g}; prototypes {args.prototypes}")
    print(err.table(ref))
    print("\nby confidence (all keypoints; recall = share of the trials located at or above the threshold, <=5px / "
          "<=10px = share of those within 5 / 10 px):")
    print(err.confidence_table())
    return 0


def register_from_sim(keypoints_subparsers: argparse._SubParsersAction) -> None:
    """Add `from-sim` to the `dense-descriptor keypoints` group."""
    f = keypoints_subparsers.add_parser(
        "from-sim", help="category-level keypoints from the synthetic dataset's ground truth",
        description="Annotate one view of each of several training instances of a category at the dataset's "
                    "ground-truth keypoint pixels (visible keypoints only), average them into a category-level "
                    "keypoint file (docs/keypoint_file.md), and report how well it transfers to held-out "
                    "instances (pixel and 3D error per keypoint).")
    f.add_argument("--model", required=True, help="model file (.onnx, .safetensors or .pt)")
    f.add_argument("--data", required=True, help="synthetic dataset folder (from `dense-descriptor sim generate`)")
    f.add_argument("--category", required=True, help="object category with keypoints, e.g. mug")
    f.add_argument("--out", required=True, help="keypoint file to write (.json)")
    f.add_argument("--instances", type=int, default=8, help="instances to average over (default 8)")
    f.add_argument("--split", choices=SPLITS, default="train", help="scenes the instances come from (default train)")
    f.add_argument("--min-visible", type=int, default=3,
                   help="an instance needs a view with at least this many visible keypoints (default 3)")
    f.add_argument("--seed", type=int, default=0, help="draws the instances when the split has more (default 0)")
    f.add_argument("--resolution", type=size_wh, default=None, metavar="WxH",
                   help="processing resolution (default: the images'); use the one the node will use")
    f.add_argument("--eval-split", choices=SPLITS, default="test",
                   help="scenes to measure the transfer error on (default test: held-out instances)")
    f.add_argument("--max-views", type=int, default=200, help="views to evaluate at most, 0 = all (default 200)")
    f.add_argument("--min-confidence", type=float, default=0.0,
                   help="locate confidence threshold; below it a keypoint is a miss (default 0)")
    f.add_argument("--prototypes", choices=("mean", "sources"), default="mean",
                   help="evaluate with the mean descriptor of each keypoint (what the node uses) or with the nearest "
                        "of its instances' own descriptors (default mean)")
    f.add_argument("--no-eval", action="store_true", help="only write the file")
    f.add_argument("--device", default="cpu", help="torch device for .safetensors/.pt models")
    f.add_argument("--providers", default="cpu", help="ONNX Runtime providers in order, e.g. cuda,cpu")
    f.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = library default)")
    f.set_defaults(func=_from_sim)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `keypoints` group (matching/cli.py) with `from-sim` to the package's command line."""
    from ..matching.cli import register as register_keypoints

    register_from_sim(register_keypoints(subparsers))
