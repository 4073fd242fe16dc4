"""The probe's report: mIoU tables (markdown + JSON) and a figure of its label images on held-out views."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from ..runtime.part_probe import PartProbe
from .fit import describe_view
from .metrics import iou_per_class, mean_iou, merge_classes


@dataclass
class ProbeResult:
    """One method's probe and its confusion on the held-out views (rows ground truth)."""

    name: str
    probe: PartProbe
    confusion: np.ndarray
    train_pixels: int


def summarise(result: ProbeResult, category_groups: list[int]) -> dict:
    """Part mIoU (every class), category mIoU (parts merged into their category, background kept) and object
    IoU (everything that is not background against background), plus the IoU of every class."""
    conf = result.confusion
    objects = merge_classes(conf, [0 if g == 0 else 1 for g in category_groups])
    ious = iou_per_class(conf)
    return {"part_miou": mean_iou(conf), "category_miou": mean_iou(merge_classes(conf, category_groups)),
            "object_iou": float(iou_per_class(objects)[1]), "pixel_accuracy": float(np.trace(conf) / conf.sum()),
            "train_pixels": result.train_pixels,
            "iou": {c: (None if math.isnan(v) else float(v)) for c, v in zip(result.probe.classes, ious, strict=True)},
            "confusion": conf.tolist()}


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def write_probe_report(results: list[ProbeResult], space, out: Path, meta: dict) -> dict:
    """report.json and report.md in `out`; returns the JSON dictionary."""
    cat_names, groups = space.category_groups()
    report = {"meta": meta, "classes": space.classes, "categories": cat_names,
              "methods": {r.name: summarise(r, groups) for r in results}}
    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    present = results[0].confusion.sum(1) > 0 if results else []
    lines = ["# Linear-probe part segmentation", "",
             f"Data {meta['data']}: fitted on {meta['train_views']} training-split views "
             f"(<= {meta['per_class']} pixels per class and view), scored on every pixel of {meta['test_views']} "
             "views of the test split (held-out instances). Part mIoU averages the classes present in those views; "
             "category mIoU merges each category's parts; object IoU is object against background.", "",
             "| method | part mIoU | category mIoU | object IoU | pixel accuracy | training pixels |",
             "|---|---|---|---|---|---|"]
    for name, s in report["methods"].items():
        lines.append(f"| {name} | {_fmt(s['part_miou'])} | {_fmt(s['category_miou'])} | {_fmt(s['object_iou'])} "
                     f"| {_fmt(s['pixel_accuracy'])} | {s['train_pixels']} |")
    lines += ["", "IoU per class (classes present in the held-out views):", "",
              "| class | " + " | ".join(report["methods"]) + " |", "|---|" + "---|" * len(results)]
    for i, c in enumerate(space.classes):
        if len(present) and present[i]:
            lines.append(f"| {c} | " + " | ".join(_fmt(s["iou"][c]) for s in report["methods"].values()) + " |")
    if meta.get("argv"):
        lines += ["", "Command: `dense-descriptor " + " ".join(meta["argv"]) + "`"]
    lines += ["", f"Made {meta['date']} on {meta['device']}.", ""]
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text("\n".join(lines)))
    return report


def label_palette(n: int) -> np.ndarray:
    """(n, 3) uint8 colours: background black, then well-separated hues (golden-angle steps, two brightnesses)."""
    import colorsys

    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(1, n):
        s, v = (0.85, 0.95) if i % 2 else (0.55, 0.7)
        out[i] = np.round(np.array(colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, s, v)) * 255)
    return out


def plot_examples(methods, results: list[ProbeResult], data, views, space, path: Path, device) -> bool:
    """Image, ground truth and every method's label image for a few held-out views (PNG). False without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return False
    pal = label_palette(len(space.classes))
    cols = 2 + len(results)
    fig, axes = plt.subplots(len(views), cols, figsize=(2.6 * cols, 2.1 * len(views) + 0.9), squeeze=False)
    used: set[int] = set()
    for r, view in enumerate(views):
        rgb = data.arrays(view[0], view[1], ("rgb",))["rgb"].numpy()
        axes[r, 0].imshow(rgb)
        gt = None
        for c, (m, res) in enumerate(zip(methods, results, strict=True)):
            desc, lab = describe_view(m, data, view, space, device)
            gt = lab
            pred = res.probe.predict(desc.numpy())
            used |= set(np.unique(pred).tolist())
            axes[r, 2 + c].imshow(pal[pred])
            if r == 0:
                axes[r, 2 + c].set_title(res.name, fontsize=8)
        used |= set(np.unique(gt).tolist())
        axes[r, 1].imshow(pal[gt])
        axes[r, 0].set_ylabel(f"{view[0]} v{view[1]}", fontsize=7)
        if r == 0:
            axes[r, 0].set_title("image", fontsize=8)
            axes[r, 1].set_title("ground truth", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=pal[i] / 255.0, label=space.classes[i]) for i in sorted(used)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return True


__all__ = ["ProbeResult", "label_palette", "plot_examples", "summarise", "write_probe_report"]
