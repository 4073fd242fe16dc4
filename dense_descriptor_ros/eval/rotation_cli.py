"""`dense-descriptor rotation`: every method's PCK and detector repeatability against in-plane rotation on the
held-out real photographs (issue #16), as a table and a plot."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path

from ..cli_args import int_at_least, size_hw
from .cli import add_method_arguments

_positive = int_at_least(1)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rotation", help="descriptors against in-plane rotation (PCK and repeatability per angle)",
        description="Rotate each held-out real photograph about its centre by each angle and score every method "
                    "on the same points: PCK@3/@5 of the best match over the whole rotated view, the "
                    "repeatability of the distinctiveness + NMS detector on the method's own maps, and the "
                    "orientation that circular matching of correctly matched keypoints returns. Writes "
                    "report.md, report.json and rotation_curve.png to --out. Rotation-invariant variants: "
                    "--baselines rootsift_oriented, and c8:METHOD for any method (--model c8:NAME=FILE).")
    add_method_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--angles", type=float, nargs="+", default=None, metavar="DEG",
                   help="angles in degrees, the first one the reference (default 0 15 30 45 60 90 120 150 180)")
    p.add_argument("--images", default="real_heldout",
                   help="photo folder (default real_heldout: the real_photo set's held-out photographs)")
    p.add_argument("--size", type=size_hw, default=(240, 320), metavar="WxH", help="view size (default 320x240)")
    p.add_argument("--points", type=_positive, default=200, help="query points per photo and angle (default 200)")
    p.add_argument("--seed", type=int, default=0, help="point seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fail(msg: str) -> int:
    print(f"dense-descriptor rotation: error: {msg}", file=sys.stderr)
    return 2


def _fmt(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def _worst(rows: dict, key: str) -> float:
    """The lowest finite value of `key` over the angles (NaN if none)."""
    vals = [r[key] for r in rows.values() if not math.isnan(r[key])]
    return min(vals) if vals else math.nan


def write_report(summary: dict, meta: dict, out: Path) -> None:
    """report.json, report.md (PCK@3, share of the 0-degree PCK@3 kept, PCK@5, median error, repeatability and the
    orientation from circular matching) and rotation_curve.png."""
    from ..fileio import atomic_write

    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps({"meta": meta, "methods": summary},
                                                                                   indent=1)))
    angles = list(next(iter(summary.values())))
    head = "| method | " + " | ".join(f"{a} deg" for a in angles) + " |"
    sep = "|---|" + "---|" * len(angles)
    lines = ["# Descriptors against in-plane rotation", "",
             f"{meta['photos']} held-out real photographs ({meta['images']}) at {meta['size']}, each rotated about its "
             f"centre; {meta['points']} points per photo and angle, best match over the whole rotated view; "
             f"repeatability of the distinctiveness + NMS detector within {meta['tolerance_px']:g} px.", ""]
    for key, title in (("pck@3", "PCK@3"), ("kept", f"share of the {angles[0]} deg PCK@3 kept"), ("pck@5", "PCK@5"),
                       ("median_px", "median error (px)"), ("repeatability", "detector repeatability"),
                       ("orientation@10", "orientation from circular matching: share of correctly matched keypoints "
                                          "within 10 deg"),
                       ("orientation_median_deg", "orientation from circular matching: median error (deg)")):
        lines += [f"## {title}", "", head, sep]
        for name, rows in summary.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(rows[a][key]) for a in angles) + " |")
        lines.append("")
    lines += [f"Command: `dense-descriptor {' '.join(meta['argv'])}`" if meta.get("argv") else "",
              f"Made {meta['date']} on {meta['device']}.", ""]
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    try:
        from .report import _plt, _save, method_styles
    except ImportError:
        return
    plt = _plt()
    styles = method_styles(list(summary))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    xs = [float(a) for a in angles]
    for name, rows in summary.items():
        axes[0].plot(xs, [rows[a]["pck@3"] for a in angles], label=name, marker="o", markersize=3, **styles[name])
        axes[1].plot(xs, [rows[a]["repeatability"] for a in angles], marker="o", markersize=3, **styles[name])
    for ax, t in zip(axes, ("PCK@3 of the best match", "detector repeatability (3 px)"), strict=True):
        ax.set_xlabel("in-plane rotation (deg)")
        ax.set_title(t, fontsize=10)
        ax.set_ylim(0, 1)
        ax.set_xticks(xs)
        ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    _save(fig, out / "rotation_curve.png")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..data.image_folder import list_images, load_rgb
    from .cli import methods_from_args
    from .methods import MethodError
    from .pairs import image_folder
    from .rotation import ANGLES, CANVAS, REPEAT_PX, evaluate_rotation

    angles = tuple(args.angles) if args.angles else ANGLES
    try:
        methods, device = methods_from_args(args)
        folder = image_folder(args.images)
    except (MethodError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    h, w = args.size
    canvas_hw = (round(h * CANVAS), round(w * CANVAS))
    canvases = [c for p in list_images(folder) if (c := load_rgb(p, canvas_hw)) is not None]
    if not canvases:
        return _fail(f"no readable image in {folder}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(canvases) * len(angles), desc="rotation", unit="pair", disable=args.no_progress) as bar:
        res = evaluate_rotation(methods, canvases, (h, w), angles, args.points, args.seed, device, bar)
    summary = res.summary()
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "images": str(args.images),
            "photos": len(canvases), "size": f"{w}x{h}", "points": args.points, "seed": args.seed,
            "tolerance_px": REPEAT_PX, "device": str(device),
            "argv": ["rotation"] + sys.argv[2:] if sys.argv[1:2] == ["rotation"] else []}
    write_report(summary, meta, args.out)
    last = f"{angles[-1]:g}"
    for name, rows in summary.items():
        print(f"  {name}: PCK@3 {rows[f'{angles[0]:g}']['pck@3']:.3f} at {angles[0]:g} deg, {rows[last]['pck@3']:.3f} "
              f"at {last} deg ({rows[last]['kept']:.0%} kept); repeatability {rows[last]['repeatability']:.3f}")
    print(f"report: {args.out / 'report.md'}")
    return 0


__all__ = ["register", "run", "write_report"]
