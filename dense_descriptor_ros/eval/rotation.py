"""Descriptors against in-plane rotation (issue #16): PCK and detector repeatability as a function of the angle.

A robot's gripper and camera turn, so an object seen at 90 or 180 degrees must give the same points. Each pair
is one held-out real photograph (the `real_photo` set's images, never trained on) seen as a central view A and
the same region rotated about its centre by the angle, B (exact ground truth p_B = R p_A, no photometric change:
the curve isolates rotation). For every method and angle:

* PCK@3 / @5 and median error of the best match over the whole of B for the same seeded points of A;
* repeatability of today's detector (`matching.detect.detect_keypoints`: distinctiveness of the method's own
  descriptor map + NMS): the share of A's detections whose rotated position lies within 3 px of a detection in
  B, among those that land inside B;
* orientation from circular matching (`rotation.circular`): A's detections whose best match in B is correct
  (within 3 px) are described by the method's descriptors on rings around them in both views, and the rings'
  circular correlation gives the relative rotation; the share within 10 degrees of the true angle.

The anchors: `rootsift_oriented` (RootSIFT with SIFT's rotation normalisation per cell), the grid RootSIFT (no
orientation) and raw RGB. A method that keeps >= 90% of its 0-degree PCK@3 up to 180 degrees is rotation-robust.
Any method lifted to a rotation group (`c8:METHOD`, `rotation.lifting`) is scored like the others.

`rotated_pair` turns B's *window* by +angle over the photo, so B's content is turned by -angle in the convention
of `rotation.lifting`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..descriptor_map import DescriptorMap
from ..matching.detect import detect_keypoints
from ..rotation.circular import angle_difference, circular_descriptors, circular_match
from .methods import Method
from .metrics import best_match, pixel_errors
from .real_pairs import CANVAS, RealPair, _apply_h, _pixel_grid

#: Angles (degrees) of the default curve.
ANGLES = (0, 15, 30, 45, 60, 90, 120, 150, 180)
#: Pixel tolerance of the repeatability (and of PCK@3).
REPEAT_PX = 3.0
#: Tolerance (degrees) of an orientation from circular matching.
ORIENTATION_DEG = 10.0


def rotated_pair(canvas: np.ndarray, size: tuple[int, int], angle_deg: float) -> RealPair:
    """View A: the centre of `canvas` at `size` (H, W); view B: the same region rotated by `angle_deg`
    (counter-clockwise in the image) about its centre. Pixels of A whose point falls outside B or outside the
    canvas are not valid."""
    h, w = size
    ch, cw = canvas.shape[:2]
    c = np.array([(cw - 1) / 2, (ch - 1) / 2])
    hw, hh = (w - 1) / 2, (h - 1) / 2  # pixel centres: one canvas pixel per view pixel, an exact rotation
    base = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # image y points down
    out = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    M = [cv2.getPerspectiveTransform((corners + c).astype(np.float32), out).astype(np.float64)
         for corners in (base, base @ R.T)]
    views = [cv2.warpPerspective(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
             for m in M]
    src = _apply_h(np.linalg.inv(M[0]), _pixel_grid(h, w))
    map_ab = _apply_h(M[1], src)
    e = 1e-6  # the homographies' round-off must not drop the border pixels of an unrotated view
    valid = ((map_ab[..., 0] >= -e) & (map_ab[..., 0] <= w - 1 + e) & (map_ab[..., 1] >= -e)
             & (map_ab[..., 1] <= h - 1 + e) & (src[..., 0] >= -e) & (src[..., 0] <= cw - 1 + e) & (src[..., 1] >= -e)
             & (src[..., 1] <= ch - 1 + e))
    return RealPair(views[0], views[1], map_ab.astype(np.float32), valid)


def _valid_points(uv: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded pixel indices (x, y) of `uv` (clipped into the image) and which of them are valid pixels.

    Shape: uv (N, 2), valid (H, W) -> xi (N,), yi (N,), ok (N,) bool."""
    h, w = valid.shape
    xi = np.clip(np.round(uv[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(uv[:, 1]).astype(int), 0, h - 1)
    return xi, yi, valid[yi, xi]


def repeatability(uv_a: np.ndarray, uv_b: np.ndarray, map_ab: np.ndarray, valid: np.ndarray,
                  tol: float = REPEAT_PX) -> tuple[float, int]:
    """Share of A's detections (warped into B through `map_ab`) within `tol` px of some detection of B, among
    those with a valid warp; and how many that was.

    Shape: uv_a (Na, 2), uv_b (Nb, 2) pixel (x, y); map_ab (H, W, 2); valid (H, W)."""
    if len(uv_a) == 0:
        return float("nan"), 0
    xi, yi, ok = _valid_points(uv_a, valid)
    if not ok.any():
        return float("nan"), 0
    warped = map_ab[yi[ok], xi[ok]].astype(np.float64)
    if len(uv_b) == 0:
        return 0.0, int(ok.sum())
    d = np.linalg.norm(warped[:, None] - uv_b[None], axis=-1).min(1)
    return float((d <= tol).mean()), int(ok.sum())


@dataclass
class RotationResults:
    """Per method and angle: pixel errors of the matches (all pairs concatenated) and repeatabilities."""

    angles: list[float]
    errors: dict[str, dict[float, list[np.ndarray]]] = field(default_factory=dict)
    repeat: dict[str, dict[float, list[tuple[float, int]]]] = field(default_factory=dict)
    orientation: dict[str, dict[float, list[np.ndarray]]] = field(default_factory=dict)  # degrees, per keypoint

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """method -> str(angle) -> pck@3, pck@5, median_px, repeatability (detections-weighted), n, the share
        of the 0-degree PCK@3 kept ('kept'), and of circular matching: the share of correctly matched keypoints
        whose orientation is within ORIENTATION_DEG ('orientation@10'), its median error in degrees and how many
        keypoints that was ('orientation_n')."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for name, per in self.errors.items():
            rows = {}
            for ang in self.angles:
                e = np.concatenate(per[ang]) if per[ang] else np.zeros(0)
                rep = [(r, n) for r, n in self.repeat[name][ang] if n > 0 and np.isfinite(r)]
                total = sum(n for _, n in rep)
                rows[f"{ang:g}"] = {"pck@3": float((e <= 3).mean()) if e.size else float("nan"),
                                    "pck@5": float((e <= 5).mean()) if e.size else float("nan"),
                                    "median_px": float(np.median(e)) if e.size else float("nan"),
                                    "repeatability": sum(r * n for r, n in rep) / total if total else float("nan"),
                                    "n": int(e.size)}
                o = np.concatenate(self.orientation[name][ang]) if self.orientation[name][ang] else np.zeros(0)
                rows[f"{ang:g}"].update({f"orientation@{ORIENTATION_DEG:g}": float((o <= ORIENTATION_DEG).mean())
                                         if o.size else float("nan"),
                                         "orientation_median_deg": float(np.median(o)) if o.size else float("nan"),
                                         "orientation_n": int(o.size)})
            base = rows[f"{self.angles[0]:g}"]["pck@3"]
            for r in rows.values():
                r["kept"] = r["pck@3"] / base if base > 0 else float("nan")
            out[name] = rows
        return out


def _as_map(desc: torch.Tensor, method: Method, size: tuple[int, int]) -> DescriptorMap:
    """(1, D, h, w) -> DescriptorMap of an (H, W) image (channel-last NumPy)."""
    d = desc[0].permute(1, 2, 0).cpu().numpy()
    return DescriptorMap(d, (float(method.stride),) * 2, (size[1], size[0]), method.name, method.normalized)


def _orientation_errors(desc_a: torch.Tensor, desc_b: torch.Tensor, uv_a: np.ndarray, pair: RealPair,
                        angle_deg: float, stride: int) -> np.ndarray:
    """Degrees between the true angle and the circular matching's rotation, for each keypoint of A whose best
    match in B is correct (within REPEAT_PX).

    Shape: desc_a, desc_b (D, h, w); uv_a (K, 2) -> (K',)."""
    xi, yi, ok = _valid_points(uv_a, pair.valid)
    if not ok.any():
        return np.zeros(0)
    q = torch.from_numpy(uv_a[ok].astype(np.float32)).to(desc_a.device)
    truth = torch.from_numpy(pair.map_ab[yi[ok], xi[ok]]).float()
    bm = best_match(desc_a, desc_b, q, stride=stride)
    good = (bm.valid.cpu() & (pixel_errors(bm.uv.cpu(), truth) <= REPEAT_PX)).to(desc_a.device)
    if not good.any():
        return np.zeros(0)
    rot, _ = circular_match(circular_descriptors(desc_a, q[good], stride),
                            circular_descriptors(desc_b, bm.uv[good].float(), stride))
    # `rotated_pair` turns B's window by +angle over the photo, so B's content is turned by -angle
    return np.degrees(angle_difference(rot.cpu().double(), -np.deg2rad(angle_deg)).numpy())


def evaluate_rotation(methods: Sequence[Method], canvases: Iterable[np.ndarray], size: tuple[int, int] = (240, 320),
                      angles: Sequence[float] = ANGLES, points: int = 200, seed: int = 0,
                      device: str | torch.device = "cpu", progress=None) -> RotationResults:
    """The rotation curve of every method on every photo (`canvases`: photos resized to CANVAS x size).

    The query points of A are drawn (seeded per photo and angle) among the valid pixels and shared by all
    methods; the best match is searched over the whole of B."""
    res = RotationResults([float(a) for a in angles])
    for m in methods:
        res.errors[m.name] = {a: [] for a in res.angles}
        res.repeat[m.name] = {a: [] for a in res.angles}
        res.orientation[m.name] = {a: [] for a in res.angles}
    for pi, canvas in enumerate(canvases):
        for ai, ang in enumerate(res.angles):
            pair = rotated_pair(canvas, size, ang)
            idx = np.flatnonzero(pair.valid.ravel())
            rng = np.random.default_rng([seed, pi, ai])
            idx = rng.choice(idx, min(points, idx.size), replace=False)
            uv_a = torch.from_numpy(np.stack([idx % size[1], idx // size[1]], 1).astype(np.float32))
            truth = torch.from_numpy(pair.map_ab.reshape(-1, 2)[idx])
            for m in methods:
                ims = [torch.from_numpy(x).permute(2, 0, 1)[None].float().div(255.0).to(device)
                       for x in (pair.image_a, pair.image_b)]
                da, db = (m.describe(x) for x in ims)
                bm = best_match(da[0], db[0], uv_a.to(da.device), stride=m.stride)
                e = pixel_errors(bm.uv.cpu(), truth)
                res.errors[m.name][ang].append(e[bm.valid.cpu()].numpy())
                ka, _ = detect_keypoints(_as_map(da, m, size), max_keypoints=300)
                kb, _ = detect_keypoints(_as_map(db, m, size), max_keypoints=300)
                res.repeat[m.name][ang].append(repeatability(ka, kb, pair.map_ab, pair.valid))
                res.orientation[m.name][ang].append(_orientation_errors(da[0], db[0], ka, pair, ang, m.stride))
            if progress is not None:
                progress.update(1)
    return res


__all__ = ["ANGLES", "CANVAS", "ORIENTATION_DEG", "REPEAT_PX", "RotationResults", "evaluate_rotation", "repeatability",
           "rotated_pair"]
