"""`dense-descriptor pretrain`: the un-mixing pretext on unlabeled images, for any encoder the models know."""

from __future__ import annotations

import argparse
import logging
import math

from ..train.cli import add_run_arguments, run_config


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pretrain", help="pretrain an encoder on unlabeled images (un-mixing pretext)",
        description="Pretrain a descriptor network's encoder with the un-mixing pretext (docs/pretraining.md): "
                    "blend a few images, learn to pick the blended ones among candidates. Sources: image folders, "
                    "synthetic datasets, rosbag2 recordings (data.sources). Settings come from the PretrainConfig "
                    "defaults, then --config FILE.yaml, then key=value overrides (e.g. model.name=effnet_lite0). "
                    "Writes OUT/encoder.safetensors for `dense-descriptor train init_from=...`.")
    add_run_arguments(p, "PretrainConfig")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from .config import PretrainConfig
    from .loop import pretrain

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = run_config(PretrainConfig, args)
        result = pretrain(cfg, resume=args.resume, stop_at=args.stop_at, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"dense-descriptor pretrain: {e}") from None
    if not result.interrupted:
        best = f" (best held-out accuracy {result.best_accuracy:.3f})" if math.isfinite(result.best_accuracy) else ""
        print(f"done: {result.step} steps, encoder at {result.run_dir / 'encoder.safetensors'}{best}")
    return 0
