"""`dense-descriptor sim ...`: generate synthetic RGB-D datasets and contact sheets."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli_args import int_at_least, size_wh
from .camera_cli import register_camera


def _view_ref(text: str) -> tuple[str, int]:
    """'scene_000003:2' or '3:2' -> (scene name, view)."""
    try:
        scene, view = text.rsplit(":", 1)
        name = scene if scene.startswith("scene_") else f"scene_{int(scene):06d}"
        return name, int(view)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SCENE:VIEW such as 3:0, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help="synthetic multi-view RGB-D scenes (pybullet)",
                              description="Synthetic multi-view RGB-D datasets with exact ground truth.")
    sub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    sub.required = True
    g = sub.add_parser("generate", help="render a dataset (resumable)",
                       description="Render N scenes x K views with depth, masks, canonical coordinates, poses "
                                   "and keypoints. Same arguments => byte-identical files; rerun the same "
                                   "command to resume an interrupted run.")
    g.add_argument("--out", required=True, type=Path, help="output folder (created; resumed if it holds a dataset)")
    g.add_argument("--scenes", required=True, type=int_at_least(1), help="number of scenes")
    g.add_argument("--views", required=True, type=int_at_least(1), help="camera views per scene")
    g.add_argument("--size", type=size_wh, default=(320, 240), help="image size WxH (default 320x240)")
    g.add_argument("--seed", type=int_at_least(0), default=0, help="scene seed (default 0)")
    g.add_argument("--workers", type=int_at_least(1), default=min(2, os.cpu_count() or 1),
                   help="worker processes (default: min(2, CPUs))")
    g.add_argument("--object-seed", type=int_at_least(0), default=0,
                   help="object library seed: shapes, textures, instance split (default 0)")
    g.add_argument("--instances", type=int_at_least(10), default=60, help="instances per category (default 60)")
    g.add_argument("--objects", type=int_at_least(1), nargs=2, metavar=("MIN", "MAX"), default=(3, 6),
                   help="category objects per scene (default 3 6)")
    g.add_argument("--distractors", type=int_at_least(0), default=3, help="max clutter objects (default 3)")
    g.add_argument("--fov", type=float, default=45.0, help="vertical field of view in degrees (default 45)")
    g.add_argument("--appearance", choices=("realistic", "cartoon"), default="realistic",
                   help="realistic (default): photo textures from the training photos, printed labels, "
                        "matte-to-glossy materials, random light, camera noise/blur/colour; cartoon: the original "
                        "flat procedural look. Geometry and ground truth are the same for both")
    g.add_argument("--shadows", action="store_true", help="render shadows (slower)")
    g.add_argument("--depth-noise", action="store_true", help="also write sensor-like noisy depth")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.set_defaults(func=run_generate)
    s = sub.add_parser("sheet", help="contact sheet PNG of a dataset",
                       description="RGB with visible keypoints, depth, parts and canonical coordinates per view.")
    s.add_argument("--data", required=True, type=Path, help="dataset folder")
    s.add_argument("--out", required=True, type=Path, help="PNG to write")
    s.add_argument("--views", type=_view_ref, nargs="+", help="SCENE:VIEW pairs (default: view 0 of 4 scenes)")
    s.add_argument("--compare", type=Path, help="a second dataset (e.g. the other --appearance, same seed): its "
                                                "RGB of the same views as a last column")
    s.set_defaults(func=run_sheet)
    register_camera(sub)


def run_generate(args: argparse.Namespace) -> int:
    from .generator import GenerateConfig, GenerateError, generate

    cfg = GenerateConfig(scenes=args.scenes, views=args.views, width=args.size[0], height=args.size[1],
                         seed=args.seed, object_seed=args.object_seed, instances_per_category=args.instances,
                         objects_min=args.objects[0], objects_max=args.objects[1],
                         distractors_max=args.distractors, fov_y_deg=args.fov, shadows=args.shadows,
                         depth_noise=args.depth_noise, appearance=args.appearance)
    try:
        report = generate(cfg, args.out, workers=args.workers, progress=not args.no_progress)
    except (ValueError, GenerateError) as e:
        print(f"dense-descriptor sim generate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished scenes are kept; run the same command again to resume ({args.out})",
              file=sys.stderr)
        return 130
    if report.views_done:
        print(f"generated {report.scenes_done} scenes / {report.views_done} views in {report.seconds:.1f} s "
              f"({report.views_per_second:.2f} views/s, {args.workers} workers); {report.scenes_skipped} scenes "
              f"were already done; dataset in {args.out}")
    else:
        print(f"nothing to do: all {report.scenes_skipped} scenes of {args.out} are complete")
    return 0


def run_sheet(args: argparse.Namespace) -> int:
    from .contact_sheet import write_contact_sheet

    try:
        write_contact_sheet(args.data, args.out, args.views, compare=args.compare)
    except (FileNotFoundError, ValueError, IndexError, KeyError, OSError) as e:
        print(f"dense-descriptor sim sheet: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0
