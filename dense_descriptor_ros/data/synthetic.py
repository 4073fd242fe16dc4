"""Dense Object Nets-style training pairs from the synthetic RGB-D datasets written by `dense-descriptor sim
generate` (read by `sim.dataset.SyntheticDataset`, re-exported here).

`SyntheticPairDataset` turns a scene into a training pair: two views
of it, the dense A -> B correspondence map from depth and camera poses (geometry.reproject, with the
1 mm occlusion test), object masks for mask-guided sampling, and `sample_pairs`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..correspondence.sampling import sample_pairs
from ..geometry.camera import pixel_grid, view_angle_deg
from ..geometry.reprojection import SYNTHETIC_ABS_TOL, interpolate_depth, reproject, reproject_points
from ..sim.dataset import SPLITS, SyntheticDataset, SyntheticView  # re-exported: the reader lived here first
from .base import PairItem
from .canonical import canonical_targets


def _resize(img: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    interp = cv2.INTER_NEAREST_EXACT if nearest else (cv2.INTER_AREA if h < img.shape[0] else cv2.INTER_LINEAR)
    return cv2.resize(img, (w, h), interpolation=interp)


def resized_correspondences(depth_a: torch.Tensor, K_a: torch.Tensor, T_a: torch.Tensor, depth_b: torch.Tensor,
                            K_b: torch.Tensor, T_b: torch.Tensor, size: tuple[int, int], abs_tol: float,
                            rel_tol: float = 0.0, max_spread: float = 0.01,
                            points: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense A -> B map between both views resized to `size` (H, W), from their native depth maps.

    Each resized pixel centre of A (or each of `points`) is mapped to its native sub-pixel position; its
    depth is interpolated in 1/z (exact on planar patches) and only kept where the neighbouring depths agree
    within the relative `max_spread` (no blends of two surfaces across a depth edge). The 3D point is then
    tested against B's native depth and its B position scaled to the resized B image.

    Shape:
        depth_*: native (H, W); points: (..., 2) resized-A pixels (x, y), default every pixel (h, w, 2);
        returns uv_b (..., 2) in resized-B pixels (-1 invalid) and valid (...).
    """
    h, w = size
    ha, wa = depth_a.shape
    hb, wb = depth_b.shape
    grid = pixel_grid(h, w, depth_a.device, torch.float64) if points is None else points.double()
    src = torch.stack([(grid[..., 0] + 0.5) * wa / w - 0.5, (grid[..., 1] + 0.5) * ha / h - 0.5], -1)
    z, ok = interpolate_depth(depth_a.double(), src)
    # spread of the (up to) four native neighbours around each position
    pad = torch.nn.functional.pad(depth_a.double()[None, None], (0, 1, 0, 1), mode="replicate")[0, 0]
    x0 = src[..., 0].floor().clamp(0, wa - 1).long()
    y0 = src[..., 1].floor().clamp(0, ha - 1).long()
    nb = torch.stack([pad[y0, x0], pad[y0, x0 + 1], pad[y0 + 1, x0], pad[y0 + 1, x0 + 1]], -1)
    nb = torch.where(nb > 0, nb, z[..., None])
    ok &= (nb.amax(-1) - nb.amin(-1)) <= max_spread * z
    uv_b, valid = reproject_points(src, torch.where(ok, z, torch.zeros_like(z)), K_a, T_a, depth_b, K_b, T_b,
                                   abs_tol=abs_tol, rel_tol=rel_tol)
    sx, sy = size[1] / wb, size[0] / hb
    uv = torch.stack([(uv_b[..., 0] + 0.5) * sx - 0.5, (uv_b[..., 1] + 0.5) * sy - 0.5], -1)
    valid &= (uv[..., 0] >= 0) & (uv[..., 0] <= w - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= h - 1)
    return torch.where(valid[..., None], uv, torch.full_like(uv, -1.0)).float(), valid


class SyntheticPairDataset:
    """Dense Object Nets-style training pairs from synthetic scenes (implements the PairDataset protocol).

    Item (index, seed): scene `index`; two different views A, B drawn with
    torch.Generator().manual_seed(seed) among pairs whose optical axes differ by at least
    `min_view_angle_deg` (and at most `max_view_angle_deg`; any other view if no pair qualifies); matches
    from the exact depth reprojection (occlusion-tested, and the instance at the match must agree);
    matches on objects (instance > 0) and non-matches split between objects and background.

    Args:
        root: dataset folder. split: scene split (see SyntheticDataset).
        n_matches, nonmatches_per_match, background_fraction, min_nonmatch_distance: see sample_pairs.
        image_size: (H, W) of the returned images, None for the stored size (resizing keeps exact
            correspondences: see resized_correspondences).
        abs_tol, rel_tol: occlusion tolerance of the reprojection (synthetic default 1 mm).
        part_labels: also return each view's part ids (PairItem.labels_a / labels_b).
        canonical: also return each view's canonical (x, y, z, r) targets (PairItem.coords_a / coords_b,
            `data.canonical`).
    """

    def __init__(self, root: str | Path, split: str = "train", n_matches: int = 1024, nonmatches_per_match: int = 1,
                 image_size: tuple[int, int] | None = None, min_view_angle_deg: float = 15.0,
                 max_view_angle_deg: float = 180.0, background_fraction: float = 0.5,
                 min_nonmatch_distance: float = 8.0, abs_tol: float = SYNTHETIC_ABS_TOL,
                 rel_tol: float = 0.0, part_labels: bool = False, canonical: bool = False) -> None:
        self.data = SyntheticDataset(root, split)
        if len(self.data) == 0:
            raise ValueError(f"{root}: no complete scenes in split {split!r}")
        if not 0 <= min_view_angle_deg <= max_view_angle_deg:
            raise ValueError("need 0 <= min_view_angle_deg <= max_view_angle_deg")
        self.n_matches, self.nonmatches_per_match = n_matches, nonmatches_per_match
        self.image_size = tuple(image_size) if image_size is not None else None
        self.min_angle, self.max_angle = min_view_angle_deg, max_view_angle_deg
        self.background_fraction, self.min_nonmatch_distance = background_fraction, min_nonmatch_distance
        self.abs_tol, self.rel_tol = abs_tol, rel_tol
        self.part_labels, self.canonical = part_labels, canonical

    def __len__(self) -> int:
        return len(self.data)

    def pick_views(self, scene: str, g: torch.Generator) -> tuple[int, int]:
        """View A uniformly, then B among the views within the angle range (pure function of g)."""
        n = self.data.num_views(scene)
        a = int(torch.randint(n, (1,), generator=g))
        if n == 1:
            return a, a
        poses = [self.data.camera(scene, v)[1] for v in range(n)]
        others = [v for v in range(n) if v != a]
        ok = [v for v in others if self.min_angle <= view_angle_deg(poses[a], poses[v]) <= self.max_angle]
        pool = ok or others
        return a, pool[int(torch.randint(len(pool), (1,), generator=g))]

    def __getitem__(self, key: tuple[int, int]) -> PairItem:
        index, seed = key
        g = torch.Generator().manual_seed(int(seed))
        scene = self.data.scenes[index % len(self.data)]
        ia, ib = self.pick_views(scene, g)
        # only what training needs: colour, depth and the object masks (and the parts, coordinates when asked for)
        keys = (("rgb", "depth", "instance") + (("part",) if self.part_labels else ())
                + (("coords", "category") if self.canonical else ()))
        va, vb = (self.data.arrays(scene, i, keys) for i in (ia, ib))
        (K_a, T_a), (K_b, T_b) = self.data.camera(scene, ia), self.data.camera(scene, ib)
        size = self.image_size or tuple(va["depth"].shape)
        if size == tuple(va["depth"].shape) and size == tuple(vb["depth"].shape):
            uv_b, valid = reproject(va["depth"], K_a, T_a, vb["depth"], K_b, T_b, abs_tol=self.abs_tol,
                                    rel_tol=self.rel_tol)
            inst_a, inst_b = va["instance"], vb["instance"]
        else:
            uv_b, valid = resized_correspondences(va["depth"], K_a, T_a, vb["depth"], K_b, T_b, size, self.abs_tol,
                                                  self.rel_tol)
            inst_a = torch.from_numpy(_resize(va["instance"].numpy(), size, nearest=True))
            inst_b = torch.from_numpy(_resize(vb["instance"].numpy(), size, nearest=True))
        # labels must agree at the match (rejects the rare contact-edge pixels the depth test lets through)
        hb, wb = inst_b.shape
        xb = uv_b[..., 0].round().long().clamp(0, wb - 1)
        yb = uv_b[..., 1].round().long().clamp(0, hb - 1)
        valid &= inst_a == inst_b[yb, xb]
        pairs = sample_pairs(uv_b, valid, (hb, wb), self.n_matches, self.nonmatches_per_match, g,
                             mask_a=inst_a > 0, mask_b=inst_b > 0, background_fraction=self.background_fraction,
                             min_nonmatch_distance=self.min_nonmatch_distance)
        img_a = torch.from_numpy(_resize(va["rgb"].numpy(), size)).permute(2, 0, 1).float() / 255.0
        img_b = torch.from_numpy(_resize(vb["rgb"].numpy(), size)).permute(2, 0, 1).float() / 255.0
        labels = [torch.from_numpy(_resize(v["part"].numpy(), size, nearest=True)).long() if self.part_labels
                  else None for v in (va, vb)]
        coords = [canonical_targets(torch.from_numpy(_resize(v["coords"].numpy(), size, nearest=True)),
                                    torch.from_numpy(_resize(v["category"].numpy(), size, nearest=True)),
                                    self.data.category_names) if self.canonical else None for v in (va, vb)]
        return PairItem(img_a.contiguous(), img_b.contiguous(), pairs, *labels, *coords)


__all__ = ["SPLITS", "SyntheticView", "SyntheticDataset", "SyntheticPairDataset", "resized_correspondences"]
