"""The evaluation report: JSON, a markdown table comparing methods side by side, plots and images.

    DIR/report.json                 every number (per method, set, subset), the run's settings
    DIR/report.md                   the comparison tables (links the figures)
    DIR/pairs.json                  the pair list scored (reuse it with --pairs to score other methods)
    DIR/pck_curves.png              PCK curves of all methods, one panel per set and subset
    DIR/error_cdf.png               CDFs of the pixel error (log scale) and of the 3D error
    DIR/descriptors_<set>.png       descriptor images (PCA to RGB) of each set's first pair
    DIR/correspondences_<set>.png   best matches between the two views, coloured by error
    DIR/descriptor_scatter.png      descriptors of a few objects in 3D (PCA), coloured by part
    DIR/instance_scatter.png        descriptors of held-out instances of one category in 3D (PCA), coloured by
                                    part, one marker per instance (do the instances line up?)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..fileio import atomic_write
from ..viz.pca import descriptor_to_rgb, pca_basis
from . import metrics as M
from .runner import EvalResults

SET_TITLES = {"cross_view": "cross-view", "cross_instance": "cross-instance",
              "keypoints": "keypoint transfer", "augment": "augmentation", "real_photo": "real photos",
              "real_stereo": "real stereo"}
#: Best matches drawn per correspondence overlay.
OVERLAY_POINTS = 60


def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        if v != 0 and abs(v) < 0.5 * 10.0**-digits:
            return f"{v:.1e}"  # tiny but not zero (e.g. the std of a freshly initialised head)
        return f"{v:.{digits}f}"
    return str(v)


def _get(d: dict, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def pck_curves(results: EvalResults, max_px: float = M.AUC_MAX_PX, step: float = 0.5) -> dict:
    """{method: {set: {subset: [pck at 0, step, ..., max_px]}}} from the raw errors."""
    from .runner import subsets

    t = torch.arange(0.0, max_px + 1e-9, step)
    out: dict = {}
    for name, rec in results.records.items():
        for set_name, sr in rec.sets.items():
            e = sr.cat("errors_px")
            for sub, sel in subsets(sr).items():
                out.setdefault(name, {}).setdefault(set_name, {})[sub] = [round(v, 5) for v in
                                                                          M.pck_curve(e[sel], t).tolist()]
    return {"thresholds_px": t.tolist(), "curves": out}


def build_report(results: EvalResults, meta: dict) -> dict:
    """The JSON report: run settings, per-method metrics and PCK curves."""
    return _json_safe({"meta": dict(meta, eval_seconds=round(results.seconds, 2),
                                    pairs_per_set={k: len(v) for k, v in results.pair_ids.items()}),
                       "methods": results.summary(), "pck_curves": pck_curves(results)})


# ---------------------------------------------------------------------------------------------- markdown

SUMMARY_COLUMNS = (
    ("ms/frame", ("ms_per_frame",), 1),
    ("cross-view PCK@3", ("sets", "cross_view", "object", "pck@3"), 3),
    ("cross-view AUC@25", ("sets", "cross_view", "object", "auc@25"), 3),
    ("cross-view 3D err (mm)", ("sets", "cross_view", "object", "median_mm"), 1),
    ("cross-view frac. closer", ("sets", "cross_view", "object", "frac_closer"), 3),
    ("cross-instance PCK@10", ("sets", "cross_instance", "object", "pck@10"), 3),
    ("cross-instance part acc.", ("sets", "cross_instance", "part_accuracy"), 3),
    ("keypoints err (px)", ("sets", "keypoints", "object", "median_px"), 1),
    ("keypoints err (mm)", ("sets", "keypoints", "object", "median_mm"), 1),
    ("augment PCK@3", ("sets", "augment", "all", "pck@3"), 3),
    ("augment AUC@25", ("sets", "augment", "all", "auc@25"), 3),
    ("real photo PCK@3", ("sets", "real_photo", "all", "pck@3"), 3),
    ("real stereo PCK@5", ("sets", "real_stereo", "all", "pck@5"), 3),
    ("eff. rank", ("health", "effective_rank"), 2),
)
SET_COLUMNS = (("n", "n", 0), ("PCK@1", "pck@1", 3), ("PCK@3", "pck@3", 3), ("PCK@5", "pck@5", 3),
               ("PCK@10", "pck@10", 3), ("AUC@25", "auc@25", 3), ("mean px", "mean_px", 1),
               ("median px", "median_px", 1), ("3D median mm", "median_mm", 1),
               ("3D PCK@1cm", "pck3d@1cm", 3), ("frac. closer", "frac_closer", 4))
MATCH_COLUMNS = (("matches", "coarse", "n_matches", 0), ("match rate", "coarse", "match_rate", 3),
                 ("coarse acc@1", "coarse", "acc@1", 3), ("coarse acc@3", "coarse", "acc@3", 3),
                 ("coarse offset px", "coarse", "mean_px", 2), ("refined acc@1", "refined", "acc@1", 3),
                 ("refined acc@3", "refined", "acc@3", 3), ("refined offset px", "refined", "mean_px", 2))
HEALTH_COLUMNS = (("eff. rank", "effective_rank", 2), ("min channel std", "min_channel_std", 4),
                  ("mean channel std", "mean_channel_std", 4), ("match dist.", "mean_match_distance", 4),
                  ("non-match dist.", "mean_nonmatch_distance", 4), ("separation", "separation", 2))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def markdown_report(report: dict, figures: list[str] | None = None) -> str:
    """The comparison tables of a JSON report as markdown."""
    meta, methods = report["meta"], report["methods"]
    lines = ["# Dense descriptor evaluation", ""]
    lines.append(", ".join(f"**{k}**: {v}" for k, v in meta.items() if not isinstance(v, dict | list)))
    lines.append("")
    counts = ", ".join(f"{SET_TITLES.get(k, k)} {v}" for k, v in meta["pairs_per_set"].items())
    lines.append(f"Pairs per set: {counts}. Best match over the whole image B (cross-instance and "
                 "keypoints: over the target object); errors on object pixels unless stated; 3D error "
                 "through B's depth; ms/frame = descriptor computation, median, this run.")
    lines += ["", "## Summary", ""]
    cols = [c for c in SUMMARY_COLUMNS if any(_get(m, *c[1]) is not None for m in methods.values())]
    rows = [[f"`{name}`", str(m["dim"]), str(m["stride"])] + [_fmt(_get(m, *c[1]), c[2]) for c in cols]
            for name, m in methods.items()]
    lines += _table(["method", "D", "stride"] + [c[0] for c in cols], rows)
    set_names = [s for s in SET_TITLES
                 if any(s in m["sets"] for m in methods.values())]
    for s in set_names:
        for sub in ("object", "all"):
            if not any(_get(m, "sets", s, sub) for m in methods.values()):
                continue
            lines += ["", f"## {SET_TITLES.get(s, s)} ({sub} pixels)", ""]
            cols2 = [c for c in SET_COLUMNS
                     if any(_get(m, "sets", s, sub, c[1]) is not None for m in methods.values())]
            rows = [[f"`{name}`"] + [_fmt(_get(m, "sets", s, sub, c[1]), c[2]) for c in cols2]
                    for name, m in methods.items() if _get(m, "sets", s, sub)]
            lines += _table(["method"] + [c[0] for c in cols2], rows)
    if any(m.get("matching") for m in methods.values()):
        lines += ["", "## Matching: coarse vs coarse + subpixel refinement", "",
                  "`matching.match_dense` (mutual, ratio test) from the query points on the native maps; "
                  "accuracy = fraction of returned matches within k px of the truth, offset = mean distance "
                  "to it.", ""]
        rows = [[f"`{name}`", SET_TITLES.get(s, s)] + [_fmt(_get(p, c[1], c[2]), c[3]) for c in MATCH_COLUMNS]
                for name, m in methods.items() for s, p in m.get("matching", {}).items()]
        lines += _table(["method", "set"] + [c[0] for c in MATCH_COLUMNS], rows)
    if any(m.get("health") for m in methods.values()):
        lines += ["", "## Descriptor-space health", ""]
        rows = [[f"`{name}`"] + [_fmt(_get(m, "health", c[1]), c[2]) for c in HEALTH_COLUMNS]
                + ["yes" if _get(m, "health", "collapsed") else "no"] for name, m in methods.items()]
        lines += _table(["method"] + [c[0] for c in HEALTH_COLUMNS] + ["collapsed"], rows)
    for s in ("cross_instance", "keypoints"):
        pc = {name: _get(m, "sets", s, "per_category") for name, m in methods.items()}
        pc = {k: v for k, v in pc.items() if v}
        if not pc:
            continue
        cats = sorted({c for v in pc.values() for c in v})
        part = s == "cross_instance"
        lines += ["", f"## {SET_TITLES.get(s, s)} per category (PCK@10{' / part accuracy' if part else ''}"
                  " / median px)", ""]
        rows = [[c, str(next(v[c]["n"] for v in pc.values() if c in v))]
                + [" / ".join(_fmt(_get(v, c, key), d) for key, d in
                              ((("pck@10", 3), ("part_accuracy", 3), ("median_px", 1)) if part else
                               (("pck@10", 3), ("median_px", 1))))
                   for v in pc.values()]
                for c in cats]
        lines += _table(["category", "points"] + [f"`{k}`" for k in pc], rows)
    kp = {name: _get(m, "sets", "keypoints", "per_keypoint") for name, m in methods.items()}
    kp = {k: v for k, v in kp.items() if v}
    if kp:
        names = sorted({n for v in kp.values() for n in v})
        lines += ["", "## Keypoint transfer per keypoint (median error px / mm)", ""]
        rows = [[n, str(next(v[n]["n"] for v in kp.values() if n in v))]
                + [f"{_fmt(_get(v, n, 'median_px'), 1)} / {_fmt(_get(v, n, 'median_mm'), 1)}"
                   for v in kp.values()]
                for n in names]
        lines += _table(["keypoint", "n"] + [f"`{k}`" for k in kp], rows)
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    _plt().close(fig)


def method_styles(names: list[str]) -> dict[str, dict]:
    """One distinct line style per method, so that a dozen methods stay apart in one figure: a colour each
    (tab20), trained models solid and thick, fixed baselines dashed, randomly initialised networks dotted."""
    cmap = _plt().get_cmap("tab20")
    styles = {}
    for i, name in enumerate(names):
        base = name.split(":")[0]
        if base == "random":
            kind = {"linestyle": ":", "linewidth": 1.2}
        elif base in ("rootsift", "rgb", "lab"):
            kind = {"linestyle": "--", "linewidth": 1.2}
        else:
            kind = {"linestyle": "-", "linewidth": 2.0}
        styles[name] = {"color": cmap(i % 20), **kind}
    return styles


def _legend(fig, axes) -> None:
    """One legend for the figure, outside the panels (no curve hidden under it)."""
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)


def plot_pck_curves(report: dict, path: Path) -> None:
    """All methods' PCK curves in one figure, a panel per set and subset."""
    plt = _plt()
    t = report["pck_curves"]["thresholds_px"]
    curves = report["pck_curves"]["curves"]
    panels = sorted({(s, sub) for m in curves.values() for s, v in m.items() for sub in v},
                    key=lambda x: (list(SET_TITLES).index(x[0]) if x[0] in SET_TITLES else 9, x[1]))
    n = max(1, len(panels))
    cols = min(3, n)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(4.6 * cols, 3.6 * -(-n // cols)), squeeze=False,
                             layout="constrained")
    styles = method_styles(list(curves))
    for ax, (s, sub) in zip(axes.flat, panels, strict=False):
        for name, m in curves.items():
            y = _get(m, s, sub)
            if y:
                ax.plot(t, [v if v is not None else np.nan for v in y], label=name, **styles[name])
        ax.set(title=f"{SET_TITLES.get(s, s)} ({sub} pixels)", xlabel="threshold (px)", ylabel="PCK",
               ylim=(0, 1), xlim=(0, t[-1]))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    _legend(fig, axes)
    _save(fig, path)


def plot_error_cdfs(results: EvalResults, path: Path) -> None:
    """CDF of the best-match pixel error per set (object subset where there is one), and of the 3D error."""
    from .runner import subsets

    plt = _plt()
    sets = [s for s in SET_TITLES if any(s in r.sets for r in results.records.values())]
    has3d = [s for s in sets if any(r.sets.get(s) and r.sets[s].errors_m for r in results.records.values())]
    n = len(sets) + len(has3d)
    cols = min(3, max(n, 1))
    fig, axes = plt.subplots(-(-max(n, 1) // cols), cols, figsize=(4.6 * cols, 3.6 * -(-max(n, 1) // cols)),
                             squeeze=False, layout="constrained")
    panels = [(s, False) for s in sets] + [(s, True) for s in has3d]
    styles = method_styles(list(results.records))
    for ax, (s, in3d) in zip(axes.flat, panels, strict=False):
        for name, r in results.records.items():
            sr = r.sets.get(s)
            if sr is None:
                continue
            subs = subsets(sr)
            sel = subs.get("object", subs.get("all"))
            e = (sr.cat("errors_m") * 1000.0 if in3d else sr.cat("errors_px"))[sel]
            e = e[torch.isfinite(e)]
            if e.numel():
                x, y = M.error_cdf(e.clamp_min(0.1))  # log axis: exact matches drawn at 0.1
                ax.step(x.numpy(), y.numpy(), where="post", label=name, **styles[name])
        ax.set_xscale("log")
        ax.set(title=f"{SET_TITLES.get(s, s)}: {'3D error (mm)' if in3d else 'pixel error'}",
               xlabel="error (mm)" if in3d else "error (px)", ylabel="fraction <= error", ylim=(0, 1))
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    _legend(fig, axes)
    _save(fig, path)


# --------------------------------------------------------------------------------------------- visualisations


def _rgb8(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """White text on a dark box in the top-left corner."""
    img = np.ascontiguousarray(img.copy())
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    cv2.rectangle(img, (0, 0), (tw + 6, th + base + 4), (0, 0, 0), -1)
    cv2.putText(img, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buf.tobytes()))


def descriptor_images(results: EvalResults, set_name: str) -> np.ndarray:
    """Grid: images A | B on top, then per method the PCA-RGB of A's and B's descriptors (one basis per
    method, so a colour means the same descriptor in both views)."""
    show = results.showcase[set_name]
    h, w = show.pair.size
    rows = [np.concatenate([_label(_rgb8(show.pair.image_a), "A"), _label(_rgb8(show.pair.image_b), "B")], 1)]
    for name, (da, db) in show.maps.items():
        method = results.records[name].method
        fa = method.full_resolution(da[None], (h, w))[0]
        fb = method.full_resolution(db[None], (h, w))[0]
        basis = pca_basis(torch.stack([fa, fb]))
        rgb_a, rgb_b = descriptor_to_rgb(fa, basis), descriptor_to_rgb(fb, basis)
        rows.append(np.concatenate([_label(rgb_a, name), rgb_b], 1))
    return np.concatenate(rows, 0)


def _error_colour(e: float) -> tuple[int, int, int]:
    """Green under 3 px, yellow under 10 px, red beyond (RGB)."""
    if e <= 3:
        return (40, 220, 40)
    if e <= 10:
        return (250, 210, 0)
    return (240, 40, 40)


def correspondence_overlay(image_a: torch.Tensor, image_b: torch.Tensor, uv_a: torch.Tensor,
                           pred_b: torch.Tensor, errors: torch.Tensor, title: str = "",
                           max_points: int = OVERLAY_POINTS) -> np.ndarray:
    """A | B side by side, a line from each query in A to its best match in B coloured by its error.

    Shape:
        image_a, image_b: (3, H, W); uv_a, pred_b: (N, 2); errors: (N,) -> (H, 2W, 3) uint8.
    """
    a, b = _rgb8(image_a), _rgb8(image_b)
    w = a.shape[1]
    canvas = np.ascontiguousarray(np.concatenate([a, b], 1) // 2 + 64)  # dimmed, so the lines stand out
    step = max(1, len(uv_a) // max_points)
    for i in range(0, len(uv_a), step):
        c = _error_colour(float(errors[i]))
        pa = (int(round(float(uv_a[i, 0]))), int(round(float(uv_a[i, 1]))))
        pb = (int(round(float(pred_b[i, 0]))) + w, int(round(float(pred_b[i, 1]))))
        cv2.line(canvas, pa, pb, c, 1, cv2.LINE_AA)
        cv2.circle(canvas, pa, 2, c, -1, cv2.LINE_AA)
        cv2.circle(canvas, pb, 2, c, -1, cv2.LINE_AA)
    return _label(canvas, title) if title else canvas


def correspondence_images(results: EvalResults, set_name: str) -> np.ndarray:
    """Overlays of every method on a set's first pair, stacked."""
    show = results.showcase[set_name]
    obj = show.pair.object_sample
    # object points first: they are what the comparison is about
    order = torch.cat([obj.nonzero()[:, 0], (~obj).nonzero()[:, 0]])
    rows = []
    for name, (pred, err) in show.matches.items():
        pck3 = (err[obj] <= 3).float().mean().item() if obj.any() else (err <= 3).float().mean().item()
        title = f"{name}  PCK@3 {pck3:.2f}  (green <3px, yellow <10px, red)"
        rows.append(correspondence_overlay(show.pair.image_a, show.pair.image_b, show.pair.uv_a[order],
                                           pred[order], err[order], title))
    return np.concatenate(rows, 0)


def plot_descriptor_scatter(results: EvalResults, path: Path, part_names: dict[int, str] | None = None,
                            objects: int = 3, points: int = 300) -> bool:
    """3D scatter (PCA of the descriptors) of pixels of a few objects of the first cross-view pair,
    coloured by semantic part, one marker per object; one panel per method. False if no pair has parts."""
    show = next((s for k, s in results.showcase.items() if k != "augment" and s.pair.part_a is not None
                 and s.pair.instance_a is not None), None)
    if show is None:
        return False
    inst, part = show.pair.instance_a.long(), show.pair.part_a.long()
    ids, counts = torch.unique(inst[(inst > 0) & (part > 0)], return_counts=True)
    keep = ids[counts.argsort(descending=True)][:objects]
    if keep.numel() == 0:
        return False
    g = torch.Generator().manual_seed(0)
    pix = []
    for i in keep.tolist():
        idx = ((inst == i) & (part > 0)).reshape(-1).nonzero()[:, 0]
        pix.append((i, idx[torch.randperm(len(idx), generator=g)[:points]]))
    plt = _plt()
    names = list(show.maps)
    cols = min(3, len(names))
    fig = plt.figure(figsize=(4.4 * cols, 4.0 * -(-len(names) // cols)))
    markers = "o^sDv"
    shown_parts = torch.unique(part[torch.isin(inst, keep) & (part > 0)]).tolist()
    cmap = plt.get_cmap("tab10" if len(shown_parts) <= 10 else "tab20")
    colour = {int(p): cmap(k % cmap.N) for k, p in enumerate(shown_parts)}
    h, w = show.pair.size
    for k, name in enumerate(names):
        ax = fig.add_subplot(-(-len(names) // cols), cols, k + 1, projection="3d")
        method = results.records[name].method
        fa = method.full_resolution(show.maps[name][0][None], (h, w))[0]
        flat = fa.reshape(fa.shape[0], -1).T
        allidx = torch.cat([p for _, p in pix])
        x = flat[allidx]
        mean = x.mean(0)
        if x.shape[1] >= 3:
            basis = torch.linalg.svd(x - mean, full_matrices=False)[2][:3].T
        else:
            basis = torch.eye(x.shape[1], 3)
        y = ((x - mean) @ basis).numpy()
        start = 0
        for j, (i, idx) in enumerate(pix):
            parts = part.reshape(-1)[idx].numpy()
            yy = y[start:start + len(idx)]
            start += len(idx)
            for p in np.unique(parts):
                sel = parts == p
                label = (part_names or {}).get(int(p), f"part {p}")
                ax.scatter(yy[sel, 0], yy[sel, 1], yy[sel, 2], s=4, marker=markers[j % len(markers)],
                           color=colour[int(p)], label=f"obj {i}: {label}")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.legend(fontsize=5, markerscale=2, loc="upper left")
    _save(fig, path)
    return True


def plot_instance_scatter(results: EvalResults, path: Path, part_names: dict[int, str] | None = None,
                          instances: int = 6, points: int = 150) -> bool:
    """3D scatter (PCA of the descriptors) of the cross-instance query points of up to `instances` different
    held-out instances of one category (mugs, when two are in the pairs), coloured by semantic part, one
    marker per instance, one panel per method: where descriptors are category-level, a part's colour forms
    one cluster whatever the marker. False if no cross-instance pair was scored."""
    plt = _plt()
    names = [n for n, r in results.records.items() if r.instance_samples]
    if not names:
        return False
    first = results.records[names[0]].instance_samples
    per_cat: dict[str, list[str]] = {}
    for cat, key, _, _ in first:
        if key not in per_cat.setdefault(cat, []):
            per_cat[cat].append(key)
    # mugs when there are two to compare (what the ACF module needs), else the category with the most instances
    cat = "mug" if len(per_cat.get("mug", [])) >= 2 else max(per_cat, key=lambda c: len(per_cat[c]))
    keys = per_cat[cat][:instances]
    markers = "o^sDvP*X"
    fig = plt.figure(figsize=(4.4 * min(3, len(names)), 4.0 * -(-len(names) // 3)))
    cmap = plt.get_cmap("tab10")
    for k, name in enumerate(names):
        ax = fig.add_subplot(-(-len(names) // 3), min(3, len(names)), k + 1, projection="3d")
        g = torch.Generator().manual_seed(0)
        rows = []  # (instance index, descriptors, parts), the first pair of each instance
        for i, key in enumerate(keys):
            d, p = next((d, p) for c, kk, d, p in results.records[name].instance_samples if c == cat and kk == key)
            pick = torch.randperm(len(d), generator=g)[:points]
            rows.append((i, d[pick], p[pick]))
        mean, basis = pca_basis(torch.cat([d for _, d, _ in rows]).T[..., None])  # points as a (D, N, 1) map
        all_parts = sorted({int(v) for _, _, p in rows for v in p.tolist() if v > 0})
        colour = {pid: cmap(j % cmap.N) for j, pid in enumerate(all_parts)}
        for i, d, p in rows:
            y = ((d - mean) @ basis).numpy()
            for pid in all_parts:
                sel = (p == pid).numpy()
                if sel.any():
                    label = (part_names or {}).get(pid, f"part {pid}") if i == 0 else None
                    ax.scatter(y[sel, 0], y[sel, 1], y[sel, 2], s=4, marker=markers[i % len(markers)],
                               color=colour[pid], label=label)
        ax.set_title(f"{name}: {len(keys)} {cat} instance{'' if len(keys) == 1 else 's'}", fontsize=9)
        ax.tick_params(labelsize=6)
        if k == 0:
            ax.legend(fontsize=6, markerscale=2, loc="upper left", title="part (marker = instance)",
                      title_fontsize=6)
    _save(fig, path)
    return True


def write_report(results: EvalResults, out_dir: str | Path, meta: dict, figures: bool = True,
                 part_names: dict[int, str] | None = None) -> dict:
    """Write report.json, report.md and (with `figures`) the plots and visualisations; returns the report."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(results, meta)
    made: list[str] = []
    if figures and results.records:
        plot_pck_curves(report, out / "pck_curves.png")
        plot_error_cdfs(results, out / "error_cdf.png")
        made += ["pck_curves.png", "error_cdf.png"]
        for s in results.showcase:
            _write_png(out / f"descriptors_{s}.png", descriptor_images(results, s))
            _write_png(out / f"correspondences_{s}.png", correspondence_images(results, s))
            made += [f"descriptors_{s}.png", f"correspondences_{s}.png"]
        if plot_descriptor_scatter(results, out / "descriptor_scatter.png", part_names):
            made.append("descriptor_scatter.png")
        if plot_instance_scatter(results, out / "instance_scatter.png", part_names):
            made.append("instance_scatter.png")
    report["meta"]["figures"] = made
    text = json.dumps(report, indent=1, allow_nan=False) + "\n"
    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(text))
    md = markdown_report(report, made)
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(md))
    return report


__all__ = ["build_report", "markdown_report", "pck_curves", "plot_pck_curves", "plot_error_cdfs",
           "descriptor_images", "correspondence_overlay", "correspondence_images", "plot_descriptor_scatter",
           "plot_instance_scatter", "write_report"]
