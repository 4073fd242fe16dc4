"""Rotation-equivariant descriptors from any descriptor network, by lifting it to the cyclic group C_N.

A network trained on upright images answers differently when the image turns. Running it on N rotated copies
of the image (angles 2 pi k / N, k = 0..N-1) and resampling every output back onto the original pixel grid gives
an *orbit*: N descriptors per pixel, one per orientation. It is equivariant by construction (the lifting
layer of a group CNN, Cohen & Welling 2016, with the network itself as the filter): when the input turns by a
group angle 2 pi m / N, the orbit of the turned pixel is the original pixel's orbit shifted circularly by m:

    orbit_B[k](R p) = orbit_A[(k + m) mod N](p)        B = A rotated by 2 pi m / N about its centre.

From the orbit:

* `group_pool` - the invariant descriptor (mean over the orbit, re-normalised: group pooling);
* `orbit_orientation` - an orientation per pixel (phase of the first circular harmonic of the orbit read along a
  fixed direction of the descriptor space, so it turns with the image: orientation_B(R p) = orientation_A(p) +
  angle) and its strength;
* `orbit_rotation` - the relative rotation of two pixels (circular cross-correlation of their orbits, peak
  refined by a parabola), which is exact at group angles and interpolated between them.

Multiples of 90 degrees are exact (the image is turned by index, without interpolation); other angles
(N = 8, 12, 16) resample the image bilinearly onto a square canvas, and pixels whose turned position falls outside
it are left out of the pool for that member. The cost is N forward passes: an offline option (`docs/rotation.md`).

Angle convention: an angle turns the image content counter-clockwise as displayed (y down),
p' - c' = R (p - c) with R = [[cos a, sin a], [-sin a, cos a]] (torch.rot90 with k = 1 is +90 degrees).
`eval.rotation.rotated_pair` turns its view *window* by +angle, so the content of its view B by -angle.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..checks import check_shape

#: Group orders the lifting supports (multiples of 4, so the right angles are exact members).
ORDERS = (4, 8, 12, 16)


def rotation_matrix(angle: float | torch.Tensor) -> torch.Tensor:
    """(2, 2) R of the package's convention (counter-clockwise as displayed, y down)."""
    a = torch.as_tensor(angle, dtype=torch.float64)
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([torch.stack([c, s]), torch.stack([-s, c])])


def rotate_image(image: torch.Tensor, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The image turned by `angle` (radians) about its centre, and which canvas pixels come from inside it.

    Right angles turn by index (exact; the canvas swaps H and W at 90 and 270 degrees). Other angles resample
    bilinearly onto a square canvas of side max(H, W) centred on the image (zero outside): square, so that
    turning an image by 90 degrees and then by any angle is exactly turning it by the sum, which makes the
    lifted orbit exactly equivariant under right angles at every member.

    Shape:
        image: (B, C, H, W) -> rotated (B, C, H', W'), inside (B, 1, H', W') float in [0, 1].
    """
    check_shape(image, ("B", "C", "H", "W"), "image")
    b, _, h, w = image.shape
    quarter = angle / (math.pi / 2)
    if abs(quarter - round(quarter)) < 1e-9:
        q = int(round(quarter)) % 4
        # counter-clockwise as displayed = torch.rot90 over (H, W) with k = q
        out = torch.rot90(image, q, dims=(2, 3))
        return out, torch.ones_like(out[:, :1])
    side = max(h, w)
    grid = _rotation_grid(h, w, (side, side), angle, image.device, image.dtype)  # canvas -> source
    ones = torch.ones_like(image[:, :1])
    out = F.grid_sample(torch.cat([image, ones], 1), grid.expand(b, -1, -1, -1), mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    return out[:, :-1], out[:, -1:]


def _rotation_grid(h_src: int, w_src: int, size_dst: tuple[int, int], angle: float, device: torch.device,
                   dtype: torch.dtype, stride: float = 1.0) -> torch.Tensor:
    """grid_sample grid (1, h_dst, w_dst, 2) that reads, for every destination cell, the source point it came
    from when the source (h_src x w_src pixels) was turned by `angle` into a canvas whose size in input pixels is
    `size_dst` * stride. Cells are centred on input pixel (j + 0.5) * stride - 0.5."""
    hd, wd = size_dst
    ys = (torch.arange(hd, device=device, dtype=torch.float64) + 0.5) * stride - 0.5
    xs = (torch.arange(wd, device=device, dtype=torch.float64) + 0.5) * stride - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    # destination canvas in input pixels: (wd * stride) x (hd * stride); centres of both canvases
    cd = torch.tensor([(wd * stride - 1) / 2, (hd * stride - 1) / 2], device=device, dtype=torch.float64)
    cs = torch.tensor([(w_src - 1) / 2, (h_src - 1) / 2], device=device, dtype=torch.float64)
    r = rotation_matrix(angle).to(device)
    q = torch.stack([xx, yy], -1) - cd
    src = q @ r + cs  # R^T (q): rows are vectors, so q @ R = (R^T q^T)^T
    norm = torch.stack([(2 * src[..., 0] + 1) / w_src - 1, (2 * src[..., 1] + 1) / h_src - 1], -1)
    return norm.to(dtype)[None]


class OrbitLifter:
    """The C_N orbit of a descriptor function.

    Args:
        fn: (1, 3, H, W) float RGB in [0, 1] -> (1, D, ceil(H / stride), ceil(W / stride)) (a `Method.fn`).
        stride: input pixels per map cell.
        order: N, the number of orientations (4, 8, 12 or 16).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], stride: int, order: int = 8) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.fn, self.stride, self.order = fn, int(stride), int(order)

    @property
    def angles(self) -> torch.Tensor:
        """(N,) radians of the members."""
        return torch.arange(self.order, dtype=torch.float64) * (2 * math.pi / self.order)

    def orbit(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The orbit on the original map grid and where each member saw the image.

        Member k at cell p is fn(image turned by angle k) read at p's turned position (bilinear on its map).

        Shape:
            image: (1, 3, H, W) -> orbit (N, D, h, w), weight (N, 1, h, w) in [0, 1] (0 where the member's
            canvas did not hold the pixel), h = ceil(H / stride), w = ceil(W / stride).
        """
        check_shape(image, (1, 3, "H", "W"), "image")
        h_in, w_in = image.shape[-2:]
        s = self.stride
        members, weights = [], []
        for k, a in enumerate(self.angles.tolist()):
            turned, inside = rotate_image(image, a)
            d = self.fn(turned).float()
            hk, wk = turned.shape[-2:]
            check_shape(d, (1, "D", -(-hk // s), -(-wk // s)), f"member {k} output")
            # where original cell p lands in member k's canvas: q = R_k (p - c) + c'; grid_sample wants the
            # inverse direction (destination -> source), so read the member with the grid of angle -a from
            # the member's canvas onto the original grid
            grid = _read_grid((h_in, w_in), (hk, wk), a, s, d.shape[-2:], image.device)
            members.append(F.grid_sample(d, grid.to(d.dtype), mode="bilinear", padding_mode="border",
                                         align_corners=False)[0])
            inside_cells = F.grid_sample(inside, grid.to(inside.dtype), mode="bilinear", padding_mode="zeros",
                                         align_corners=False)
            weights.append((inside_cells[0] > 0.999).float())
        return torch.stack(members), torch.stack(weights)


def _read_grid(size_src: tuple[int, int], size_member: tuple[int, int], angle: float, stride: int,
               map_member: tuple[int, int], device: torch.device) -> torch.Tensor:
    """grid (1, h, w, 2) on member k's map (normalised, align_corners=False) of every cell of the original map.

    Original cell p (input pixel coordinates, centre convention) turns to q = R (p - c) + c' in the member's
    canvas; the member's map cell of q is (q + 0.5) / stride - 0.5."""
    h_in, w_in = size_src
    hk, wk = size_member
    mh, mw = map_member
    h, w = -(-h_in // stride), -(-w_in // stride)
    ys = (torch.arange(h, device=device, dtype=torch.float64) + 0.5) * stride - 0.5
    xs = (torch.arange(w, device=device, dtype=torch.float64) + 0.5) * stride - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    c = torch.tensor([(w_in - 1) / 2, (h_in - 1) / 2], device=device, dtype=torch.float64)
    ck = torch.tensor([(wk - 1) / 2, (hk - 1) / 2], device=device, dtype=torch.float64)
    q = (torch.stack([xx, yy], -1) - c) @ rotation_matrix(angle).to(device).T + ck
    # member map cell u = (q + 0.5) / stride - 0.5; normalised x = (2 u + 1) / map_w - 1
    #                                                             = (2 q + 1) / (stride map_w) - 1
    norm = torch.stack([(2 * q[..., 0] + 1) / (stride * mw) - 1, (2 * q[..., 1] + 1) / (stride * mh) - 1], -1)
    return norm.float()[None]


def group_pool(orbit: torch.Tensor, weight: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    """The invariant descriptor: the (weighted) mean of the orbit, unit length when `normalize`.

    Shape:
        orbit (N, D, h, w), weight (N, 1, h, w) or None -> (D, h, w).
    """
    check_shape(orbit, ("N", "D", "h", "w"), "orbit")
    if weight is None:
        pooled = orbit.mean(0)
    else:
        check_shape(weight, (orbit.shape[0], 1, *orbit.shape[-2:]), "weight")
        pooled = (orbit * weight).sum(0) / weight.sum(0).clamp_min(1e-6)
    return F.normalize(pooled, dim=0) if normalize else pooled


def reference_direction(dim: int, seed: int = 0, device: str | torch.device = "cpu") -> torch.Tensor:
    """(D,) the fixed unit vector `orbit_orientation` reads the orbit along (seeded Gaussian: no preferred axis of
    the descriptor space, the same for every image and every model of that dimension)."""
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(dim, generator=g, dtype=torch.float64), dim=0).to(device)


def orbit_orientation(orbit: torch.Tensor, weight: torch.Tensor | None = None,
                      reference: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Orientation (radians, in (-pi, pi]) and strength (in [0, 1]) of every pixel.

    The members' projections on a fixed direction u of the descriptor space, s_k = <d_k, u>, are a function on
    the circle that shifts with the image (s_k of an image turned by a group angle is s_{k+m}), so the phase of
    its first harmonic turns with the image: orientation = -phase turns by +angle. (The direction must be fixed:
    anything computed from the orbit itself, such as its mean, is invariant, and for an exactly equivariant orbit
    gives a constant s_k.) The strength is the harmonic's amplitude over the sum of |s_k|: near 0 where the
    network answers the same at every orientation, and the orientation is then arbitrary.

    Shape:
        orbit (N, D, h, w), weight (N, 1, h, w) or None, reference (D,) or None (`reference_direction`)
        -> orientation (h, w), strength (h, w).
    """
    check_shape(orbit, ("N", "D", "h", "w"), "orbit")
    n, d = orbit.shape[:2]
    u = reference_direction(d, device=orbit.device) if reference is None else reference.to(orbit.device)
    check_shape(u, (d,), "reference")
    s = (F.normalize(orbit, dim=1) * u.to(orbit.dtype)[None, :, None, None]).sum(1)  # (N, h, w)
    if weight is not None:
        s = s * weight[:, 0]
    ang = torch.arange(n, device=orbit.device, dtype=orbit.dtype) * (2 * math.pi / n)
    re = (s * torch.cos(ang)[:, None, None]).sum(0)
    im = (s * torch.sin(ang)[:, None, None]).sum(0)
    return -torch.atan2(im, re), torch.hypot(re, im) / s.abs().sum(0).clamp_min(1e-12)


def circular_peak(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-bin peak of scores on a circle of M bins: the argmax refined by a parabola through it and its two
    neighbours. Returns the peak position in bins, in [0, M), and the peak score.

    Shape:
        scores (K, M) -> position (K,), score (K,).
    """
    check_shape(scores, ("K", "M"), "scores")
    m = scores.shape[1]
    best = scores.argmax(1)
    y0 = scores.gather(1, ((best - 1) % m)[:, None])[:, 0]
    y1 = scores.gather(1, best[:, None])[:, 0]
    y2 = scores.gather(1, ((best + 1) % m)[:, None])[:, 0]
    den = y0 - 2 * y1 + y2
    off = torch.where(den < -1e-12, 0.5 * (y0 - y2) / den.clamp(max=-1e-12), torch.zeros_like(den))
    return (best.to(scores.dtype) + off.clamp(-0.5, 0.5)) % m, y1


def orbit_rotation(orbit_a: torch.Tensor, orbit_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative rotation (radians, B relative to A, in [0, 2 pi)) and score of matched pixels from their orbits.

    With B = A turned by 2 pi m / N, orbit_B[k] = orbit_A[k + m], so c(r) = mean_k <A[k + r], B[k]> peaks at
    r = m; the peak is refined by a parabola (`circular_peak`).

    Shape:
        orbit_a, orbit_b: (K, N, D) the orbits of K matched pixel pairs -> rotation (K,), score (K,).
    """
    check_shape(orbit_a, ("K", "N", "D"), "orbit_a")
    check_shape(orbit_b, tuple(orbit_a.shape), "orbit_b")
    n = orbit_a.shape[1]
    a, b = F.normalize(orbit_a, dim=2), F.normalize(orbit_b, dim=2)
    scores = torch.stack([(torch.roll(a, -r, dims=1) * b).sum(2).mean(1) for r in range(n)], 1)  # (K, N)
    pos, score = circular_peak(scores)
    return pos * (2 * math.pi / n), score


__all__ = ["ORDERS", "OrbitLifter", "circular_peak", "group_pool", "orbit_orientation", "orbit_rotation",
           "reference_direction", "rotate_image", "rotation_matrix"]
