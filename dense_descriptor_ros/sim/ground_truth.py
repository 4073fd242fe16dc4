"""Ground-truth correspondences for synthetic views: across views of a scene, across instances of a
category, and between named keypoints.

* cross_view: exact dense A -> B map from depth and poses (geometry.reproject, 1 mm occlusion test),
  with the quality checks used in the tests (cycle error, label agreement at the matches).
* cross_instance: for pixels of one instance, the pixel of another instance of the same category
  whose canonical object coordinates are nearest, if closer than a threshold (canonical units: a
  fraction of the radius / height).
* keypoint_matches: the pixels of the same named keypoint on two instances, where visible in both.
"""

from __future__ import annotations

import torch

from ..checks import check_shape
from ..geometry.reprojection import SYNTHETIC_ABS_TOL, interpolate_depth, reproject, reproject_points
from .dataset import SyntheticView


def cross_view(a: SyntheticView, b: SyntheticView, abs_tol: float = SYNTHETIC_ABS_TOL, rel_tol: float = 0.0,
               same_instance: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense map (H, W, 2) from view A to view B (-1 where invalid) and valid (H, W).

    same_instance: also require the instance label at the (rounded) match in B to equal A's.
    """
    uv, valid = reproject(a.depth, a.K, a.T_world_camera, b.depth, b.K, b.T_world_camera, abs_tol, rel_tol)
    if same_instance:
        lab = labels_at(b.instance, uv)
        valid &= lab == a.instance.long()
    return uv, valid


def labels_at(labels: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Label map (H, W) read at the nearest pixel of positions uv (..., 2) (clamped into the image)."""
    h, w = labels.shape
    x = uv[..., 0].round().long().clamp(0, w - 1)
    y = uv[..., 1].round().long().clamp(0, h - 1)
    return labels[y, x].long()


def label_agreement(a: SyntheticView, b: SyntheticView, uv_b: torch.Tensor, valid: torch.Tensor,
                    footprint: bool = True) -> dict[str, float]:
    """Fraction of valid matches whose instance / part / category label in A is found in B at the match.

    footprint=True: B agrees when any of the (up to) four pixels around the sub-pixel match carries A's
    label; a match half a pixel from a part boundary is not a wrong match. footprint=False: B's label at
    the nearest pixel (stricter; boundary pixels then count as disagreements).
    """
    h, w = b.instance.shape
    x0 = uv_b[..., 0].floor().long().clamp(0, max(w - 2, 0))
    y0 = uv_b[..., 1].floor().long().clamp(0, max(h - 2, 0))
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    out = {}
    for key in ("instance", "part", "category"):
        la, lab_b = getattr(a, key).long(), getattr(b, key).long()
        if footprint:
            fp = torch.stack([lab_b[y0, x0], lab_b[y0, x1], lab_b[y1, x0], lab_b[y1, x1]], -1)
            agree = (fp == la[..., None]).any(-1)
        else:
            agree = labels_at(lab_b, uv_b) == la
        out[key] = float(agree[valid].float().mean()) if valid.any() else float("nan")
    return out


def cycle_error(a: SyntheticView, b: SyntheticView, uv_b: torch.Tensor, valid: torch.Tensor,
                abs_tol: float = SYNTHETIC_ABS_TOL) -> torch.Tensor:
    """A -> B -> A round-trip error in pixels at the valid matches (N,): B's depth is interpolated at the
    match (in 1/z), back-projected and projected into A."""
    h, w = valid.shape
    ys, xs = torch.nonzero(valid, as_tuple=True)
    p_b = uv_b[ys, xs].double()
    z_b, ok = interpolate_depth(b.depth.double(), p_b)
    uv_a, back = reproject_points(p_b, torch.where(ok, z_b, torch.zeros_like(z_b)), b.K, b.T_world_camera,
                                  a.depth, a.K, a.T_world_camera, abs_tol=abs_tol)
    err = (uv_a - torch.stack([xs, ys], -1).double()).norm(dim=-1)
    return torch.where(back, err, torch.full_like(err, float("nan")))


def cross_instance(a: SyntheticView, instance_a: int, b: SyntheticView, instance_b: int,
                   points_a: torch.Tensor | None = None, max_distance: float = 0.1, chunk: int = 2048
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Match pixels of instance_a in A to pixels of instance_b in B by nearest canonical coordinates.

    Args:
        points_a: (N, 2) integer pixel (x, y) in A; None for every pixel of A (dense output).
        max_distance: a match is valid when its canonical-coordinate distance is at most this. It must
            exceed B's pixel spacing in canonical units (pixel footprint / radius, e.g. 2 mm / 40 mm =
            0.05 at 320x240 and 60 cm), else gaps between B's samples count as misses.
    Shape:
        Returns uv_b (N, 2) (or (H, W, 2)) pixel (x, y) in B (-1 invalid), distance (N,) (inf where
        no candidate) and valid (N,) bool; points off instance_a are invalid.
    Raises:
        ValueError if the two instances are not of the same (procedural) category.
    """
    cat_a, cat_b = _category(a, instance_a), _category(b, instance_b)
    if cat_a != cat_b or cat_a is None:
        raise ValueError(f"cross_instance needs two instances of one category, got {cat_a} and {cat_b}")
    h, w = a.instance.shape
    dense = points_a is None
    if dense:
        points_a = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy"), -1).reshape(-1, 2)
    check_shape(points_a, ("N", 2), "points_a")
    pa = points_a.long()
    inside = (pa[:, 0] >= 0) & (pa[:, 0] < w) & (pa[:, 1] >= 0) & (pa[:, 1] < h)
    pa = torch.stack([pa[:, 0].clamp(0, w - 1), pa[:, 1].clamp(0, h - 1)], -1)
    on_a = inside & (a.instance[pa[:, 1], pa[:, 0]].long() == instance_a) & a.coords_valid[pa[:, 1], pa[:, 0]]
    ca = a.coords[pa[:, 1], pa[:, 0]].double()
    mask_b = (b.instance.long() == instance_b) & b.coords_valid
    yb, xb = torch.nonzero(mask_b, as_tuple=True)
    n = pa.shape[0]
    dist = torch.full((n,), float("inf"), dtype=torch.float64)
    idx = torch.zeros(n, dtype=torch.long)
    if yb.numel():
        cb = b.coords[yb, xb].double()
        for s in range(0, n, chunk):
            d = torch.cdist(ca[s:s + chunk].nan_to_num(0.0), cb)
            best = d.min(dim=1)
            dist[s:s + chunk], idx[s:s + chunk] = best.values, best.indices
    valid = on_a & (dist <= max_distance)
    dist = torch.where(on_a, dist, torch.full_like(dist, float("inf")))
    uv = torch.stack([xb, yb], -1)[idx].float() if yb.numel() else torch.zeros(n, 2)
    uv = torch.where(valid[:, None], uv, torch.full_like(uv, -1.0))
    if dense:
        return uv.reshape(h, w, 2), dist.reshape(h, w), valid.reshape(h, w)
    return uv, dist, valid


def _category(v: SyntheticView, instance_id: int) -> str | None:
    if not 1 <= instance_id <= len(v.objects):
        raise ValueError(f"view {v.scene}/{v.index} has no instance {instance_id}")
    obj = v.objects[instance_id - 1]
    return obj["category"] if "canonical_scale" in obj else None


def keypoint_matches(a: SyntheticView, instance_a: int, b: SyntheticView, instance_b: int
                     ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Named keypoints visible on instance_a in A and on instance_b in B (same category).

    Returns the names and their pixels uv_a, uv_b (M, 2), sorted by name.
    """
    cat_a, cat_b = _category(a, instance_a), _category(b, instance_b)
    if cat_a != cat_b or cat_a is None:
        raise ValueError(f"keypoint_matches needs two instances of one category, got {cat_a} and {cat_b}")
    ka = {k["name"]: k["uv"] for k in a.keypoints if k["instance_id"] == instance_a and k["visible"]}
    kb = {k["name"]: k["uv"] for k in b.keypoints if k["instance_id"] == instance_b and k["visible"]}
    names = sorted(set(ka) & set(kb))
    return (names, torch.tensor([ka[n] for n in names], dtype=torch.float32).reshape(-1, 2),
            torch.tensor([kb[n] for n in names], dtype=torch.float32).reshape(-1, 2))
