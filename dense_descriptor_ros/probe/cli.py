"""`dense-descriptor probe`: fit a linear part probe on frozen descriptors of every method and score it on
held-out instances (issue #15: what do the descriptors know about categories and parts?)."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from ..cli_args import int_at_least
from ..eval.cli import add_method_arguments

_positive = int_at_least(1)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "probe", help="linear-probe part segmentation on frozen descriptors",
        description="For every method (trained models, baselines such as rgb, random:<arch>[:D]): fit a linear "
                    "classifier from descriptors to background / category-part on class-balanced pixels of "
                    "training-split views of a synthetic dataset, then score it on every pixel of held-out "
                    "views (split test: instances never trained on). Writes report.md, report.json, "
                    "probe_examples.png and one probe_<method>.safetensors per method to --out; a model's probe "
                    "can be given to the node (part_probe_file).")
    add_method_arguments(p)
    p.add_argument("--data", required=True, type=Path, help="synthetic dataset folder (from `sim generate`)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--train-views", type=_positive, default=120,
                   help="training-split views to fit on (default 120)")
    p.add_argument("--test-views", type=_positive, default=60,
                   help="held-out views to score on (split test; default 60)")
    p.add_argument("--per-class", type=_positive, default=100,
                   help="training pixels per class and view (default 100)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 on the standardised weights (1e-4)")
    p.add_argument("--seed", type=int, default=0, help="view and pixel seed (default 0)")
    p.add_argument("--no-figures", action="store_true", help="no probe_examples.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"dense-descriptor probe: error: {msg}", file=sys.stderr)
    return 2


def method_model(method) -> dict:
    """The identity block of the model a method runs (as in keypoint files), for its probe file; empty for
    baselines and random weights, which no node loads."""
    from ..matching.keypoints import model_identity
    from ..runtime.model_files import ModelFileError, probe_model

    file = method.info.get("file")
    if not file:
        return {}
    try:
        return model_identity(probe_model(file))
    except ModelFileError:
        return {"file": str(file)}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..eval.cli import methods_from_args
    from ..eval.methods import MethodError
    from ..sim.dataset import SyntheticDataset
    from .fit import LabelSpace, collect_samples, draw_views, fit_probe, score_probe
    from .report import ProbeResult, write_probe_report

    try:
        methods, device = methods_from_args(args, "probe")
        train = SyntheticDataset(args.data, "train")
        test = SyntheticDataset(args.data, "test")
    except (MethodError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    if not len(train) or not len(test):
        return _fail(f"{args.data} needs scenes in the train and test splits "
                     f"(has {len(train)} and {len(test)})")
    space = LabelSpace.from_dataset(train)
    train_views = draw_views(train, args.train_views, args.seed)
    test_views = draw_views(test, args.test_views, args.seed + 1)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    total = len(methods) * (len(train_views) + len(test_views))
    with tqdm(total=total, desc="probe", unit="view", disable=args.no_progress, dynamic_ncols=True) as bar:
        for m in methods:
            bar.set_postfix_str(m.name)
            x, y = collect_samples(m, train, train_views, space, args.per_class, args.seed, device, bar)
            notes = (f"linear probe on {args.data} (train split): {len(train_views)} views, {len(y)} pixels "
                     f"(<= {args.per_class} per class and view), weight decay {args.weight_decay}, seed {args.seed}")
            probe = fit_probe(x, y, space.classes, args.weight_decay, model=method_model(m), notes=notes)
            conf = score_probe(m, probe, test, test_views, space, device, bar)
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in m.name)
            probe.save(args.out / f"probe_{safe}.safetensors")
            results.append(ProbeResult(m.name, probe, conf, len(y)))
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "data": str(args.data),
            "train_views": len(train_views), "test_views": len(test_views), "per_class": args.per_class,
            "weight_decay": args.weight_decay, "seed": args.seed, "device": str(device),
            "argv": ["probe"] + sys.argv[2:] if sys.argv[1:2] == ["probe"] else []}
    report = write_probe_report(results, space, args.out, meta)
    if not args.no_figures:
        from .report import plot_examples

        plot_examples(methods, results, test, test_views[:: max(1, len(test_views) // 3)][:3], space,
                      args.out / "probe_examples.png", device)
    for name, r in report["methods"].items():
        print(f"  {name}: part mIoU {r['part_miou']:.3f}, category mIoU {r['category_miou']:.3f}, "
              f"object IoU {r['object_iou']:.3f}")
    print(f"report: {args.out / 'report.md'}")
    return 0


__all__ = ["method_model", "register", "run"]
