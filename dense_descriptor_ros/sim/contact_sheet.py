"""A contact sheet of generated views: RGB with keypoints, depth, parts and canonical coordinates, and
optionally the same views' RGB from a second dataset (e.g. the other `--appearance` with the same seed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .format import DATASET_FILE, SCENE_FILE, SCENES_DIR, read_json, read_view


def _palette(n: int) -> np.ndarray:
    """n distinct colours (golden-ratio hues), index 0 black."""
    hsv = np.stack([(np.arange(n) * 0.618034 % 1.0) * 179, np.full(n, 200), np.full(n, 230)], 1).astype(np.uint8)
    rgb = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]
    rgb[0] = 0
    return rgb


def depth_colormap(depth: np.ndarray, focus: np.ndarray | None = None) -> np.ndarray:
    """Depth (H, W) metres -> RGB uint8 (turbo, near = red), black where invalid. The colour range
    spans the `focus` pixels (e.g. the objects) when given, so that they stand out."""
    ok = depth > 0
    sel = ok & focus if focus is not None and (ok & focus).any() else ok
    if sel.any():
        lo, hi = np.percentile(depth[sel], [1, 99])
        lo, hi = lo - 0.02, hi + (0.15 if focus is not None else 0.0)
    else:
        lo, hi = 0.0, 1.0
    t = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap((255 * (1 - t)).astype(np.uint8), cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~ok] = 0
    return rgb


def coords_image(coords: np.ndarray) -> np.ndarray:
    """Canonical coordinates -> RGB (x, y in [-1.2, 1.2], z in [0, 1] mapped to [0, 255]), black where none."""
    lo, hi = np.array([-1.2, -1.2, 0.0]), np.array([1.2, 1.2, 1.0])
    t = np.clip((np.nan_to_num(coords) - lo) / (hi - lo), 0, 1)
    out = (255 * t).astype(np.uint8)
    out[~np.isfinite(coords).all(-1)] = 0
    return out


def view_panels(scene_dir: Path, view: int, meta: dict) -> list[np.ndarray]:
    """The four panels of one view."""
    img = read_view(scene_dir, view, ("rgb", "depth", "instance", "part", "coords"))
    rgb = img["rgb"].copy()
    for kp in meta["keypoints"]:
        if kp["visible"]:
            c = (int(round(kp["uv"][0])), int(round(kp["uv"][1])))
            cv2.circle(rgb, c, 3, (255, 255, 255), -1, lineType=cv2.LINE_AA)
            cv2.circle(rgb, c, 2, (255, 0, 0), -1, lineType=cv2.LINE_AA)
    return [rgb, depth_colormap(img["depth"], img["instance"] > 0), _palette(256)[img["part"]],
            coords_image(img["coords"])]


def _look(root: Path) -> str:
    return str(read_json(root / DATASET_FILE).get("generator", {}).get("appearance", "cartoon"))


def make_contact_sheet(root: Path, views: list[tuple[str, int]] | None = None, n: int = 4,
                       compare: Path | None = None) -> np.ndarray:
    """RGB uint8 sheet: one row per view (RGB + visible keypoints, depth, parts, canonical coordinates,
    and the RGB of the same scene and view in dataset `compare` if given). `views` as (scene name, view
    index); default the first `n` scenes' view 0."""
    root = Path(root)
    look = _look(root)  # fails early on a folder that is not a dataset
    titles = [f"RGB ({look}) + keypoints", "depth", "parts", "canonical coords"]
    if compare is not None:
        titles.append(f"RGB ({_look(Path(compare))}, same seed)")
    if views is None:
        scenes = sorted(p.name for p in (root / SCENES_DIR).glob("scene_*") if (p / SCENE_FILE).is_file())
        views = [(s, 0) for s in scenes[:n]]
    if not views:
        raise ValueError(f"no complete scenes in {root}")
    rows = []
    for scene, v in views:
        meta = read_json(root / SCENES_DIR / scene / SCENE_FILE)["views"][v]
        panels = view_panels(root / SCENES_DIR / scene, v, meta)
        if compare is not None:
            other = read_view(Path(compare) / SCENES_DIR / scene, v, ("rgb",))["rgb"]
            if other.shape != panels[0].shape:
                raise ValueError(f"{compare}: {scene} view {v} has another image size")
            panels.append(other)
        rows.append(np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255) for p in panels], 1))
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    w = rows[0].shape[1] // len(titles)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * w + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, *rows], 0)


def write_contact_sheet(root: Path, out: Path, views: list[tuple[str, int]] | None = None, n: int = 4,
                        compare: Path | None = None) -> None:
    sheet = make_contact_sheet(root, views, n, compare)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out}")
