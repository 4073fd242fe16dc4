"""`dense-descriptor train`: train a dense descriptor network from a YAML config plus overrides."""

from __future__ import annotations

import argparse
import logging
from typing import TypeVar

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a descriptor network",
        description="Train a dense descriptor network. Settings come from the TrainConfig defaults, then "
                    "--config FILE.yaml, then key=value overrides (e.g. model.name=lite optim.lr=3e-4).")
    add_run_arguments(p, "TrainConfig")
    p.set_defaults(func=run)


def add_run_arguments(p: argparse.ArgumentParser, config_class: str) -> None:
    """The options every run command shares (train, pretrain): config file, overrides, resume, stop-at, progress."""
    p.add_argument("--config", help=f"YAML file with {config_class} fields")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotted keys)")
    p.add_argument("--resume", metavar="RUN_OR_CKPT",
                   help="continue a run bit-exactly from its directory or a checkpoint .pt")
    p.add_argument("--stop-at", type=int, metavar="STEP",
                   help="save a checkpoint and stop after STEP steps (continue later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_config(cls: type[T], args: argparse.Namespace) -> T:
    """The run's configuration: with --resume and no --config, the checkpoint's own config with the overrides on
    top (only the length may differ); else defaults <- --config <- overrides.

    Raises:
        ConfigError, FileNotFoundError, ValueError: a bad config, key or checkpoint.
    """
    from ..config import from_dict, load_config, merge, parse_overrides, to_dict
    from .checkpoint import load_checkpoint

    if args.resume and not args.config:
        saved = to_dict(from_dict(cls, load_checkpoint(args.resume)["train_config"]))
        return from_dict(cls, merge(saved, parse_overrides(args.overrides)))
    return load_config(cls, args.config, args.overrides)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from .config import TrainConfig
    from .loop import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = run_config(TrainConfig, args)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"dense-descriptor train: {e}") from None
    try:
        result = train(cfg, resume=args.resume, stop_at=args.stop_at, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"dense-descriptor train: {e}") from None
    if not result.interrupted:
        print(f"done: {result.step} steps, model at {result.run_dir / 'model.safetensors'}")
    return 0
