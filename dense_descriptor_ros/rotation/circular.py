"""Circular descriptors: a keypoint described by the dense descriptors on rings around it, matched over
orientations, so that the match also says how much one view is turned against the other (issue #16).

Around keypoint p, ring r (radius rho_r) is read at M angles phi_m = 2 pi m / M (array coordinates, x right,
y down). When the image turns by angle a (counter-clockwise as displayed, `rotation.lifting` convention), the
point at angle phi of A's ring lies at angle phi - a of B's, so sample m of A is sample m - a M / (2 pi) of B
and the circular cross-correlation

    c(s) = mean_{r, m} <A[r, m], B[r, (m + s) mod M]>

peaks at s = -a M / (2 pi): the relative rotation is a = -s 2 pi / M, refined between bins by a parabola.
The peak value is a rotation-invariant similarity of the two keypoints. Its quality rests on the per-pixel
descriptors being themselves invariant (the rings only carry the orientation): `c<N>:` lifted descriptors
(`rotation.lifting`), not the plain network's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..checks import check_shape
from ..correspondence.pairs import sample_descriptors
from .lifting import circular_peak

#: Ring radii (input pixels) and samples per ring of the default circular descriptor.
RADII = (6.0, 12.0, 18.0)
SAMPLES = 36


def ring_offsets(radii: Sequence[float] = RADII, samples: int = SAMPLES,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """(R, M, 2) pixel offsets (x, y) of the ring samples: rho_r (cos phi_m, sin phi_m)."""
    if samples < 3:
        raise ValueError(f"samples must be >= 3, got {samples}")
    if not radii or any(r <= 0 for r in radii):
        raise ValueError(f"radii must be positive, got {tuple(radii)}")
    phi = torch.arange(samples, device=device, dtype=torch.float32) * (2 * math.pi / samples)
    rho = torch.as_tensor(list(radii), device=device, dtype=torch.float32)
    return torch.stack([rho[:, None] * torch.cos(phi), rho[:, None] * torch.sin(phi)], -1)


def circular_descriptors(desc: torch.Tensor, uv: torch.Tensor, stride: int = 1, radii: Sequence[float] = RADII,
                         samples: int = SAMPLES) -> torch.Tensor:
    """The descriptors on the rings around each point (bilinear; beyond the map border the border's), each
    unit length.

    Shape:
        desc (D, h, w) at `stride`; uv (K, 2) pixel (x, y) -> (K, R, M, D).
    """
    check_shape(desc, ("D", "h", "w"), "desc")
    check_shape(uv, ("K", 2), "uv")
    off = ring_offsets(radii, samples, desc.device)  # (R, M, 2)
    pts = uv.to(desc.device).float()[:, None, None] + off[None]  # (K, R, M, 2)
    k, r, m = pts.shape[:3]
    d = sample_descriptors(desc[None].float(), pts.reshape(1, -1, 2), stride)[0]
    return F.normalize(d.reshape(k, r, m, -1), dim=-1)


def circular_match(ring_a: torch.Tensor, ring_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative rotation of B against A (radians in [0, 2 pi), counter-clockwise as displayed) and the
    rotation-invariant similarity (the correlation's peak, in [-1, 1]) of paired circular descriptors.

    Shape:
        ring_a, ring_b: (K, R, M, D) -> rotation (K,), similarity (K,).
    """
    check_shape(ring_a, ("K", "R", "M", "D"), "ring_a")
    check_shape(ring_b, tuple(ring_a.shape), "ring_b")
    m = ring_a.shape[2]
    # c(s) for every shift at once: correlation along M is a product of spectra (real FFT over the ring)
    fa = torch.fft.rfft(ring_a.double(), dim=2)
    fb = torch.fft.rfft(ring_b.double(), dim=2)
    c = torch.fft.irfft((fa.conj() * fb).sum(3), n=m, dim=2).mean(1) / m  # (K, M): c[s] = mean_m <A[m], B[m+s]>
    pos, score = circular_peak(c)
    return ((-pos * (2 * math.pi / m)) % (2 * math.pi)).float(), score.float()


def angle_difference(a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """|a - b| on the circle, radians in [0, pi]."""
    d = torch.remainder(torch.as_tensor(a) - b, 2 * math.pi)
    return torch.minimum(d, 2 * math.pi - d)


__all__ = ["RADII", "SAMPLES", "angle_difference", "circular_descriptors", "circular_match", "ring_offsets"]
