"""The correspondence batch shared by samplers and losses, and descriptor lookup at pixel positions.

Pixel convention everywhere in the package: (x, y) = (column, row), pixel centres at integers, so
the top-left pixel's centre is (0, 0) and the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5].
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from ..checks import check_shape  # re-exported: correspondence.pairs.check_shape predates checks.py


@dataclass
class PairSample:
    """Matches and non-matches between view A and view B for a batch of B pairs.

    Shape:
        matches_a, matches_b: (B, N, 2) float pixel (x, y) in A and B; row i of A matches row i of B.
        match_valid: (B, N) bool, False for padding / points that left the frame or are occluded.
        nonmatch_a, nonmatch_b: (B, M, 2) float pixel (x, y): pairs that must NOT match.
        nonmatch_valid: (B, M) bool.
        nonmatch_background: (B, M) bool, True where the non-match in B lies on background (Dense
            Object Nets weighs background and masked non-matches separately).
    """

    matches_a: torch.Tensor
    matches_b: torch.Tensor
    match_valid: torch.Tensor
    nonmatch_a: torch.Tensor
    nonmatch_b: torch.Tensor
    nonmatch_valid: torch.Tensor
    nonmatch_background: torch.Tensor

    def __post_init__(self) -> None:
        b, n = self.match_valid.shape[:2]
        check_shape(self.matches_a, (b, n, 2), "matches_a")
        check_shape(self.matches_b, (b, n, 2), "matches_b")
        m = self.nonmatch_valid.shape[1]
        check_shape(self.nonmatch_a, (b, m, 2), "nonmatch_a")
        check_shape(self.nonmatch_b, (b, m, 2), "nonmatch_b")
        check_shape(self.nonmatch_background, (b, m), "nonmatch_background")

    def to(self, device: torch.device | str) -> PairSample:
        return PairSample(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @staticmethod
    def collate(items: list[PairSample]) -> PairSample:
        """Concatenate along the batch dimension (all items must have equal N and M)."""
        return PairSample(**{f.name: torch.cat([getattr(i, f.name) for i in items]) for f in fields(PairSample)})


def pixel_to_level(uv: torch.Tensor, stride: int) -> torch.Tensor:
    """Input-pixel coordinates -> coordinates on a map of the given stride (centre convention)."""
    return (uv + 0.5) / stride - 0.5


def sample_descriptors(desc: torch.Tensor, uv: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Bilinearly interpolate descriptors at (sub)pixel positions of the input image.

    Args:
        desc: (B, D, h, w) descriptor map at `stride` relative to the input image.
        uv: (B, N, 2) pixel (x, y) in input-image coordinates.
        stride: the map's stride; positions are converted with `pixel_to_level`.

    Returns:
        (B, N, D). Positions outside the map are clamped to the border.
    """
    check_shape(desc, ("B", "D", "h", "w"), "desc")
    check_shape(uv, (desc.shape[0], "N", 2), "uv")
    if not torch.isfinite(uv).all():
        # grid_sample's CPU backward crashes the process on NaN positions (torch 2.13): refuse them here
        raise ValueError("uv holds NaN or inf positions; mark such rows invalid and give them finite coordinates")
    h, w = desc.shape[-2:]
    p = pixel_to_level(uv, stride)
    gx = 2.0 * p[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * p[..., 1] / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(1).to(desc.dtype)  # (B, 1, N, 2)
    out = F.grid_sample(desc, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0].transpose(1, 2)
