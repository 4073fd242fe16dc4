"""`dense-descriptor matcher`: train the learned coarse-to-fine matcher on a frozen descriptor model, evaluate it
against today's descriptor matching and RootSIFT, export it to ONNX."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..cli_args import int_at_least
from .cli import add_run_arguments, run_config

_positive = int_at_least(1)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("matcher", help="learned detector-free matcher: train, eval, export",
                              description="A LoFTR-style coarse-to-fine matcher on the descriptor maps "
                                          "(docs/matcher.md).")
    sub = p.add_subparsers(dest="matcher_command", metavar="SUBCOMMAND")
    sub.required = True
    t = sub.add_parser("train", help="train a matcher on a frozen descriptor model",
                       description="Train the matcher on multi-view pairs of a synthetic dataset and augmentation "
                                   "pairs of photos with exact ground truth. Settings: MatcherTrainConfig defaults, "
                                   "then --config FILE.yaml (config/matcher_default.yaml), then key=value overrides. "
                                   "Writes OUT/matcher.safetensors.")
    add_run_arguments(t, "MatcherTrainConfig")
    t.set_defaults(func=_train)
    e = sub.add_parser("eval", help="matching precision, correct matches and pose AUC against the baselines",
                       description="Score RootSIFT, today's descriptor matching (node settings and a dense grid) "
                                   "and the learned matcher on held-out synthetic view pairs 20-45 degrees apart, in "
                                   "one run: precision @1/3/5 px, correct matches, pose AUC @5/10/20 degrees. "
                                   "Writes report.md, report.json and curves.png to --out.")
    e.add_argument("--model", default="models/default/model.safetensors",
                   help="descriptor model (.safetensors / .onnx; default: the shipped model)")
    e.add_argument("--matcher", help="matcher file (.safetensors or .onnx); without it the matcher is skipped")
    e.add_argument("--data", required=True, type=Path, help="synthetic dataset folder (its test split is used)")
    e.add_argument("--out", required=True, type=Path, help="output folder")
    e.add_argument("--pairs", type=_positive, default=100, help="view pairs (default 100)")
    e.add_argument("--threshold", type=float, default=0.0,
                   help="matcher confidence threshold (default 0: every mutual match; the curves and the 90%% "
                        "precision column sweep the confidence anyway; the node's default is 0.2)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=_eval)
    x = sub.add_parser("export", help="export a matcher to ONNX and check parity with PyTorch",
                       description="Export the matcher's inference graph (dynamic map size) with its identity in "
                                   "the ONNX metadata; prints the max abs difference to PyTorch.")
    x.add_argument("matcher", help="matcher .safetensors file")
    x.add_argument("--out", required=True, type=Path, help="output .onnx file")
    x.set_defaults(func=_export)


def _train(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from .matcher import train_matcher
    from .matcher_config import MatcherTrainConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = run_config(MatcherTrainConfig, args)
        result = train_matcher(cfg, resume=args.resume, stop_at=args.stop_at, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"dense-descriptor matcher train: {e}") from None
    if not result.interrupted:
        print(f"done: {result.step} steps, matcher at {result.run_dir / 'matcher.safetensors'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..eval.matching import METHODS, evaluate_matching, write_report
    from ..matcher.runtime import LearnedMatcher
    from ..runtime.extractor import DescriptorExtractor, ExtractorConfig

    try:
        extractor = DescriptorExtractor.load(args.model, ExtractorConfig(num_threads=2, warmup_iters=0))
        matcher = LearnedMatcher(args.matcher) if args.matcher else None
        methods = METHODS if matcher is not None else tuple(m for m in METHODS if m != "matcher")
        threshold = args.threshold
        result = evaluate_matching(extractor, matcher, args.data, args.pairs, threshold=threshold, methods=methods,
                                   progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        print(f"dense-descriptor matcher eval: error: {e}", file=sys.stderr)
        return 2
    header = (f"Descriptor model `{args.model}` ({extractor.info.model_id}); matcher `{args.matcher}` at threshold "
              f"{threshold:g}; data `{args.data}` (split test). Command: `dense-descriptor matcher eval "
              + " ".join(sys.argv[3:]) + "`") if matcher is not None else f"Descriptor model `{args.model}`."
    path = write_report(result, args.out, header)
    print(path.read_text())
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..matcher.export import check_matcher_parity, export_matcher_onnx
    from ..matcher.io import load_matcher

    try:
        net, info = load_matcher(args.matcher)
    except (FileNotFoundError, ValueError) as e:
        print(f"dense-descriptor matcher export: error: {e}", file=sys.stderr)
        return 2
    export_matcher_onnx(net, info, args.out)
    parity = check_matcher_parity(net, args.out)
    print(f"wrote {args.out} (descriptor model {info.descriptor_model_id}); parity with PyTorch: "
          + ", ".join(f"{k} {v:.2e}" for k, v in parity.items()))
    return 0
