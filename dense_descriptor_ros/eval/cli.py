"""`dense-descriptor eval`: score models and baselines on fixed, seeded pairs and write the report."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path

from ..cli_args import int_at_least, size_hw
from ..data.sample_images import BUILTIN_FOLDERS
from ..models import ARCHITECTURES

#: What `--baselines all` expands to: hand-made descriptors, the untrained pretrained encoders and every
#: architecture at random init.
ALL_BASELINES = (("rootsift", "rgb", "lab") + tuple(f"pretrained:{n}" for n, a in ARCHITECTURES.items() if a.pretrained)
                 + tuple(f"random:{a}" for a in ARCHITECTURES))


_positive = int_at_least(1)


def register(subparsers: argparse._SubParsersAction) -> None:
    from .pairs import SETS

    p = subparsers.add_parser(
        "eval", help="evaluate descriptors against baselines",
        description="Score trained models, baselines and randomly initialised architectures with the same "
                    "metric code on the same fixed, seeded pairs (synthetic cross-view, cross-instance and "
                    "keypoint transfer; augmentations of held-out photos; real photographs under viewpoint and "
                    "illumination change and a real stereo pair with ground-truth disparity). Writes report.json, "
                    "report.md, pairs.json, plots and visualisations to --out.")
    add_method_arguments(p)
    p.add_argument("--data", nargs="+", default=[], metavar="D",
                   help="synthetic dataset folders (from `sim generate`) and/or image folders "
                        "('samples_heldout' = the held-out scikit-image photos); default: the sources "
                        "recorded in --pairs")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--pairs", type=Path, metavar="FILE",
                   help="score the pairs of this pairs.json instead of drawing new ones")
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS),
                   help="evaluation sets (default: all); with --pairs, the file's pairs of these sets")
    p.add_argument("--pairs-per-set", type=_positive, default=25, help="pairs per set (default 25)")
    p.add_argument("--points", type=_positive, default=200,
                   help="query points per pair and subset (object / all pixels; default 200)")
    p.add_argument("--split", default="test", choices=("test", "val", "test_scenes", "train", "all"),
                   help="synthetic scene split (default test: held-out scenes of held-out instances)")
    p.add_argument("--size", type=size_hw, default=(240, 320), metavar="WxH",
                   help="size of the augmentation views (default 320x240; synthetic pairs keep the "
                        "data's size)")
    p.add_argument("--seed", type=int, default=0, help="pair list seed (default 0)")
    p.add_argument("--no-matching", action="store_true", help="skip the coarse vs refined matcher evaluation")
    p.add_argument("--no-figures", action="store_true", help="JSON and markdown only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"dense-descriptor eval: error: {msg}", file=sys.stderr)
    return 2


def add_method_arguments(p: argparse.ArgumentParser) -> None:
    """The methods a scoring command compares (--model, --baselines) and where they run (--device, --threads):
    one set of options for `eval`, `probe` and `rotation`; `methods_from_args` builds them."""
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]FILE",
                   help="a trained model (.safetensors, checkpoint .pt or .onnx); repeat for several")
    p.add_argument("--baselines", nargs="*", default=[], metavar="B",
                   help="rootsift[:STRIDE], rootsift_oriented[:STRIDE] (rotation-normalised, slow), rgb, lab, "
                        "pretrained:<arch> (the untrained pretrained encoder's hypercolumn: pretrained:effnet_lite0), "
                        "random:<arch>[:D] (arch: " + ", ".join(ARCHITECTURES) + "), or 'all' (every one but "
                        "rootsift_oriented); any method, --model too, as c<N>:METHOD is lifted to the rotation group "
                        "C_N (N = 4, 8, 12, 16) and pooled: rotation-invariant, N times the cost")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch intra-op threads (default: library default; on a busy machine 1 can be "
                        "several times faster than contended OpenMP threads)")


def methods_from_args(args: argparse.Namespace, what: str = "evaluate"):
    """(methods, torch device) from the options of `add_method_arguments`; sets the torch threads.

    Raises:
        MethodError: nothing to `what`, an unknown method or model file, a missing CUDA device, or two methods
            with the same name.
    """
    import torch

    from .methods import MethodError, build_method

    specs = list(args.model)
    for b in args.baselines:
        specs += list(ALL_BASELINES) if b == "all" else [b]
    if not specs:
        raise MethodError(f"nothing to {what}: give --model FILE and/or --baselines")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise MethodError(f"--device: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MethodError("--device cuda but CUDA is not available")
    methods = [build_method(s, device) for s in dict.fromkeys(specs)]
    if len({m.name for m in methods}) != len(methods):
        raise MethodError("two methods have the same name; name them with --model NAME=FILE")
    return methods, device


def _split_sources(data: list[str]) -> tuple[str | None, str | None]:
    """Sort --data entries into one synthetic dataset and one image folder."""
    synthetic = images = None
    for d in data:
        if (Path(d) / "dataset.json").is_file():
            if synthetic is not None:
                raise ValueError(f"more than one synthetic dataset given ({synthetic}, {d}); "
                                 "evaluate them separately")
            synthetic = d
        elif d in BUILTIN_FOLDERS or Path(d).is_dir():
            if images is not None:
                raise ValueError(f"more than one image folder given ({images}, {d}); "
                                 "evaluate them separately")
            images = d
        else:
            raise ValueError(f"--data {d}: neither a synthetic dataset (no dataset.json) nor an image folder")
    return synthetic, images


def run(args: argparse.Namespace) -> int:
    import torch

    from .methods import MethodError
    from .pairs import REAL_SETS, SYNTHETIC_SETS, PairError, PairList, PairLoader, make_pair_list, open_synthetic
    from .report import write_report
    from .runner import evaluate

    try:
        methods, device = methods_from_args(args)
    except MethodError as e:
        return _fail(str(e))
    try:
        synthetic, images = _split_sources(args.data)
        if args.pairs is not None:
            plist = PairList.load(args.pairs)
            kept = [q for q in plist.pairs if q.set in args.sets]
            if plist.pairs and not kept:
                return _fail(f"{args.pairs} has no pairs of the sets {', '.join(args.sets)} "
                             f"(it has {', '.join(plist.by_set())})")
            plist = dataclasses.replace(plist, pairs=kept)  # --sets picks from the file's sets
        else:
            if synthetic is None and images is None and not set(args.sets) & set(REAL_SETS):
                return _fail("give --data (a synthetic dataset and/or an image folder) or --pairs")
            plist = make_pair_list(synthetic, images, args.pairs_per_set, args.points, args.seed, args.split,
                                   args.size, tuple(args.sets))
        if not plist.pairs:
            return _fail("no evaluation pairs could be drawn from the data "
                         "(too few scenes, objects or images?)")
        loader = PairLoader(plist, synthetic, images)
        part_names = None
        if loader.synthetic is not None and any(p.set in SYNTHETIC_SETS for p in plist.pairs):
            ds = open_synthetic(loader.synthetic, None)
            part_names = {p["id"]: f"{p['category']}/{p['name']}" for p in ds.meta["parts"] if p["id"]}
        args.out.mkdir(parents=True, exist_ok=True)
        plist.save(args.out / "pairs.json")
        results = evaluate(methods, (loader(s) for s in plist.pairs), device, not args.no_matching,
                           not args.no_figures, not args.no_progress, total=len(plist.pairs))
    except (PairError, ValueError, FileNotFoundError) as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename or ''}: {e.strerror or e}")
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "synthetic": str(loader.synthetic or ""), "images": str(loader.images or ""),
            "split": plist.split, "seed": plist.seed,
            "points_per_subset": plist.points, "augment_size": f"{plist.size[1]}x{plist.size[0]}",
            "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    report = write_report(results, args.out, meta, figures=not args.no_figures, part_names=part_names)
    print(f"evaluated {len(methods)} methods on {len(plist.pairs)} pairs in {results.seconds:.1f} s")
    for name, m in report["methods"].items():
        print(f"  {name}: {m['eval_seconds']:.1f} s, {m['ms_per_frame']:.1f} ms/frame")
    print(f"report: {args.out / 'report.md'}")
    return 0


__all__ = ["ALL_BASELINES", "add_method_arguments", "methods_from_args", "register", "run"]
