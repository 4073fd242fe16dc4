"""A detector-free coarse-to-fine matcher (LoFTR-style, Sun et al. 2021) on top of descriptor maps.

Input: the descriptor maps of two images from one descriptor network (stride s, usually 4). They are pooled 2x to
the coarse level (stride 2s: 1/8 for s = 4), projected to `d_model` channels, given a 2-D sinusoidal position
encoding and passed through `layers` pairs of self- and cross-attention layers with *linear* attention
(Katharopoulos et al. 2020: elu + 1 feature map, O(N) in the number of cells, for the CPU budget). Coarse matches
come from a dual-softmax over the cosine similarities of every cell pair (logits = learned scale x cosine: the
scale starts at 1, so the coarse loss starts at its theoretical value log(Na) + log(Nb), and is capped at
`max_scale`). Each coarse match is refined in a 6 x 6 window of fine cells (stride s) centred on the matched coarse
cell: the fine feature of A's cell centre is correlated with the window's features and the position is the
expectation under their softmax (sub-pixel, differentiable). Fine features: the descriptors, the attended coarse
context and (optionally) a small CNN on the image. With `residual_start` both levels begin as a projection of the
descriptors, so that training starts from descriptor matching rather than from scratch (docs/matcher.md).

Pixel convention of the package (pixel centres at integers): coarse cell (r, c) of A is centred on fine-map
coordinate (2c + 0.5, 2r + 0.5), the centre of its 2 x 2 fine cells; fine cell (i, j) on image pixel
((j + 0.5) s - 0.5, (i + 0.5) s - 0.5).

Shapes: B batch, D descriptor dimension, (h, w) fine map (even), (hc, wc) = (h / 2, w / 2), N = hc * wc.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_shape
from .config import MatcherConfig

#: Side of the fine window (fine cells) around a coarse match: fine cells 2r - 2 ... 2r + 3 (the coarse cell's
#: two cells plus two on each side), so the window is centred on the coarse cell centre.
WINDOW = 6
_HALF = WINDOW // 2 - 1  # 2: cells before the coarse cell's first fine cell


def position_encoding(d_model: int, hc: int, wc: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """2-D sinusoidal encoding (LoFTR's): d_model / 4 frequencies each for sin x, cos x, sin y, cos y.

    Shape:
        -> (d_model, hc, wc).
    """
    if d_model % 4:
        raise ValueError(f"d_model must be a multiple of 4, got {d_model}")
    y = torch.arange(hc, device=device, dtype=dtype)[:, None].expand(hc, wc)
    x = torch.arange(wc, device=device, dtype=dtype)[None, :].expand(hc, wc)
    k = torch.arange(d_model // 4, device=device, dtype=dtype)
    freq = torch.exp(-math.log(10000.0) * 2.0 * k / (d_model // 2))[:, None, None]  # (d/4, 1, 1)
    return torch.cat([torch.sin(x * freq), torch.cos(x * freq), torch.sin(y * freq), torch.cos(y * freq)], 0)


class LinearAttention(nn.Module):
    """softmax-free attention: phi(Q) (phi(K)^T V) / (phi(Q) sum phi(K)), phi = elu + 1.

    Shape:
        q: (B, H, L, c), k, v: (B, H, S, c) -> (B, H, L, c).
    """

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k = F.elu(q) + 1, F.elu(k) + 1
        kv = k.transpose(2, 3) @ v  # (B, H, c, c): the O(S) summary of the source
        z = q @ k.sum(2, keepdim=True).transpose(2, 3)  # (B, H, L, 1)
        return (q @ kv) / (z + self.eps)


class AttentionLayer(nn.Module):
    """LoFTR's encoder layer: x + norm(MLP([x, norm(merge(attention(x, source)))]))."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} must be divisible by heads {heads}")
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(d_model, d_model, bias=False) for _ in range(3))
        self.attention = LinearAttention()
        self.merge = nn.Linear(d_model, d_model, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2 * d_model, 2 * d_model, bias=False), nn.ReLU(True),
                                 nn.Linear(2 * d_model, d_model, bias=False))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """x: (B, L, d), source: (B, S, d) -> (B, L, d)."""
        b, length, d = x.shape
        h = self.heads
        q = self.q(x).view(b, length, h, d // h).transpose(1, 2)
        k = self.k(source).view(b, -1, h, d // h).transpose(1, 2)
        v = self.v(source).view(b, -1, h, d // h).transpose(1, 2)
        msg = self.norm1(self.merge(self.attention(q, k, v).transpose(1, 2).reshape(b, length, d)))
        return x + self.norm2(self.mlp(torch.cat([x, msg], -1)))


class MatcherNet(nn.Module):
    """Coarse matching with attention + dual-softmax, and fine refinement by expectation (see module docstring).

    `forward` returns the coarse features and fine maps (for the training losses); `match` is the inference graph
    (what the ONNX export contains): for every coarse cell of A its best cell of B, the dual-softmax confidence,
    whether the match is mutual, and the refined position in B.
    """

    def __init__(self, config: MatcherConfig) -> None:
        super().__init__()
        self.config = c = config
        self.coarse_in = nn.Linear(c.descriptor_dim, c.d_model)
        self.layers = nn.ModuleList(AttentionLayer(c.d_model, c.heads) for _ in range(2 * c.layers))
        self.coarse_out = nn.Linear(c.d_model, c.d_model)
        # fine features: the descriptors with the attended coarse context added (LoFTR's fusion of both levels)
        self.fine_in = nn.Conv2d(c.descriptor_dim, c.fine_dim, 1)
        self.fine_context = nn.Conv2d(c.d_model, c.fine_dim, 1)
        self.fine_out = nn.Sequential(*[m for _ in range(c.fine_layers)
                                        for m in (nn.ReLU(), nn.Conv2d(c.fine_dim, c.fine_dim, 3, padding=1))])
        # Residual start: both levels' features are an orthogonal projection of the descriptors (which already
        # match: cosines preserved when the width is >= D) plus learned terms whose last layer starts at zero, so
        # training begins from descriptor matching under a dual-softmax instead of from scratch.
        # (config.residual_start false: LoFTR's plain start, the features learned from scratch.)
        self.coarse_skip = self.fine_skip = None
        if c.residual_start:
            self.coarse_skip = nn.Linear(c.descriptor_dim, c.d_model, bias=False)
            self.fine_skip = nn.Conv2d(c.descriptor_dim, c.fine_dim, 1, bias=False)
            nn.init.orthogonal_(self.coarse_skip.weight)
            nn.init.orthogonal_(self.fine_skip.weight.view(c.fine_dim, c.descriptor_dim))
            for last in (self.coarse_out, self.fine_out[-1]):
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        # A small CNN on the image at the fine stride: the descriptors are trained to be invariant, which smooths away
        # the local detail that sub-cell localisation needs (LoFTR's fine level also reads image features).
        self.image_stem = _image_stem(c.image_channels, c.fine_dim, c.image_stride) if c.image_channels else None
        # logits of the coarse dual-softmax and the fine window: learned scales on cosines (see module docstring)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.log_fine_scale = nn.Parameter(torch.full((), math.log(c.fine_init_scale)))

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.config.max_scale)

    def fine_scale(self) -> torch.Tensor:
        return self.log_fine_scale.exp().clamp(max=self.config.max_scale)

    def _check(self, desc_a: torch.Tensor, desc_b: torch.Tensor) -> None:
        check_shape(desc_a, ("B", self.config.descriptor_dim, "h", "w"), "desc_a")
        check_shape(desc_b, tuple(desc_a.shape), "desc_b")
        for name, d in (("desc_a", desc_a), ("desc_b", desc_b)):
            if not torch.jit.is_tracing() and (d.shape[-1] % 2 or d.shape[-2] % 2 or d.shape[-1] < 2
                                               or d.shape[-2] < 2):
                raise ValueError(f"{name}: the fine map's height and width must be even and >= 2 (crop it: "
                                 f"`even_crop`), got {tuple(d.shape[-2:])}")

    def forward(self, desc_a: torch.Tensor, desc_b: torch.Tensor, image_a: torch.Tensor | None = None,
                image_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coarse features and fine feature maps of both images.

        Shape:
            desc_a, desc_b: (B, D, h, w); image_a, image_b: (B, 3, H, W) RGB in [0, 1] the maps were computed from
            (needed when config.image_channels > 0; H, W >= image_stride x (h, w): the maps' cells cover them from
            the top-left) -> coarse_a (B, Na, d_model) and coarse_b (B, Nb, d_model) unit vectors, fine_a and fine_b
            (B, f, h, w) with f = fine_dim. Both maps must have the same size.
        """
        self._check(desc_a, desc_b)
        if self.image_stem is not None and (image_a is None or image_b is None):
            raise ValueError("this matcher reads the images too (image_channels > 0): pass image_a and image_b")
        b, _, h, w = desc_a.shape
        pe = position_encoding(self.config.d_model, h // 2, w // 2, desc_a.device, desc_a.dtype)
        pa = F.avg_pool2d(desc_a, 2).flatten(2).transpose(1, 2)  # (B, N, D)
        pb = F.avg_pool2d(desc_b, 2).flatten(2).transpose(1, 2)
        pe = pe.flatten(1).transpose(0, 1)  # (N, d)
        xa, xb = self.coarse_in(pa) + pe, self.coarse_in(pb) + pe  # (B, N, d)
        for i in range(0, len(self.layers), 2):
            xa, xb = self.layers[i](xa, xa), self.layers[i](xb, xb)  # self
            xa, xb = self.layers[i + 1](xa, xb), self.layers[i + 1](xb, xa)  # cross
        ca, cb = self.coarse_out(xa), self.coarse_out(xb)
        if self.coarse_skip is not None:
            ca, cb = ca + self.coarse_skip(pa), cb + self.coarse_skip(pb)
        ca, cb = F.normalize(ca, dim=-1), F.normalize(cb, dim=-1)
        fa, fb = self._fine(desc_a, xa, image_a), self._fine(desc_b, xb, image_b)
        return ca, cb, fa, fb

    def _fine(self, desc: torch.Tensor, coarse: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
        b, _, h, w = desc.shape
        ctx = coarse.transpose(1, 2).reshape(b, -1, h // 2, w // 2)
        x = self.fine_in(desc) + F.interpolate(self.fine_context(ctx), scale_factor=2.0, mode="nearest")
        if self.image_stem is not None:
            x = x + self.image_stem((image - 0.45) / 0.25)[..., :h, :w]
        out = self.fine_out(x)
        return F.normalize(out + self.fine_skip(desc) if self.fine_skip is not None else out, dim=1)

    def dual_softmax(self, coarse_a: torch.Tensor, coarse_b: torch.Tensor) -> torch.Tensor:
        """log P(i, j) = log softmax_j(S) + log softmax_i(S), S = scale x cosine.

        Shape:
            coarse_a (B, Na, d), coarse_b (B, Nb, d) -> (B, Na, Nb) log-probabilities.
        """
        sim = self.scale() * coarse_a @ coarse_b.transpose(1, 2)
        return sim.log_softmax(2) + sim.log_softmax(1)

    def window_logits(self, fine_a: torch.Tensor, fine_b: torch.Tensor, cell_a: torch.Tensor,
                      cell_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits of the fine cells of B's window around each coarse cell for A's coarse cell centres.

        Shape:
            fine_a, fine_b: (B, f, h, w); cell_a, cell_b: (B, M) int64 flat coarse cell indices -> logits (B, M, 36)
            (cells outside the map at -1e4), and the fine-map column gx and row gy (B, M, 36) of every window cell.
        """
        b, f, h, w = fine_b.shape
        wc = w // 2
        m = cell_a.shape[1]
        # A: the centre of coarse cell i is the mean of its 2 x 2 fine cells
        qa = F.avg_pool2d(fine_a, 2).flatten(2).transpose(1, 2)  # (B, Nc, f)
        q = torch.gather(qa, 1, cell_a[..., None].expand(b, m, f))  # (B, M, f)
        # B: the 6 x 6 fine cells around each coarse cell (out-of-map cells masked)
        offs = torch.arange(WINDOW, device=fine_b.device) - _HALF
        rows = 2 * (cell_b // wc)[..., None] + offs  # (B, M, 6)
        cols = 2 * (cell_b % wc)[..., None] + offs
        inside = ((rows >= 0) & (rows < h))[..., :, None] & ((cols >= 0) & (cols < w))[..., None, :]  # (B, M, 6, 6)
        flat = (rows.clamp(0, h - 1)[..., :, None] * w + cols.clamp(0, w - 1)[..., None, :]).reshape(b, -1, 1)
        win = torch.gather(fine_b.flatten(2).transpose(1, 2), 1, flat.expand(b, flat.shape[1], f))
        win = win.view(b, m, WINDOW * WINDOW, f)
        logits = self.fine_scale() * (win * q[:, :, None, :]).sum(-1)  # (B, M, 36)
        logits = logits.masked_fill(~inside.flatten(2), -1e4)
        gy = rows.to(logits.dtype)[..., :, None].expand(b, m, WINDOW, WINDOW).flatten(2)
        gx = cols.to(logits.dtype)[..., None, :].expand(b, m, WINDOW, WINDOW).flatten(2)
        return logits, gx, gy

    def refine(self, fine_a: torch.Tensor, fine_b: torch.Tensor, cell_a: torch.Tensor,
               cell_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected fine-map position in B of A's coarse cell centres, searched around B's coarse cells.

        Shape:
            as `window_logits` -> position (B, M, 2) fine-map (column, row) in B, and its spread (B, M): the
            standard deviation (fine cells) of the window's softmax (small = confident).
        """
        logits, gx, gy = self.window_logits(fine_a, fine_b, cell_a, cell_b)
        p = logits.softmax(-1)  # (B, M, 36)
        x, y = (p * gx).sum(-1), (p * gy).sum(-1)
        var = (p * ((gx - x[..., None]) ** 2 + (gy - y[..., None]) ** 2)).sum(-1)
        return torch.stack([x, y], -1), var.clamp(min=1e-8).sqrt()

    def match(self, desc_a: torch.Tensor, desc_b: torch.Tensor, image_a: torch.Tensor | None = None,
              image_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The inference graph: for every coarse cell of A, its match in B.

        Shape:
            desc_a, desc_b: (B, D, h, w); image_a, image_b as in `forward` ->
            confidence (B, Na): dual-softmax probability of the best cell of B (in [0, 1]);
            mutual (B, Na) bool: A's cell is also the best of its match's column;
            position_b (B, Na, 2): refined fine-map (column, row) in B;
            spread (B, Na): the fine window's standard deviation in fine cells.
        """
        ca, cb, fa, fb = self.forward(desc_a, desc_b, image_a, image_b)
        logp = self.dual_softmax(ca, cb)
        best, cell_b = logp.max(2)
        mutual = logp.argmax(1).gather(1, cell_b) == torch.arange(logp.shape[1], device=logp.device)[None]
        cell_a = torch.arange(logp.shape[1], device=logp.device)[None].expand_as(cell_b)
        pos, spread = self.refine(fa, fb, cell_a, cell_b)
        return best.exp(), mutual, pos, spread


def _image_stem(channels: int, out: int, stride: int) -> nn.Sequential:
    """log2(stride) stride-2 3x3 convolutions to `channels`, then a 3x3 one to `out` (no normalisation layers: the
    batch statistics of two frames say nothing)."""
    n = int(round(math.log2(stride)))
    if 2 ** n != stride or n < 1:
        raise ValueError(f"image_stride must be a power of two >= 2, got {stride}")
    layers: list[nn.Module] = []
    c_in = 3
    for i in range(n):
        c = channels if i == n - 1 else max(channels // 2, 8)
        layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU(True)]
        c_in = c
    return nn.Sequential(*layers, nn.Conv2d(c_in, out, 3, padding=1))


def even_crop(desc: torch.Tensor) -> torch.Tensor:
    """Drop the last row / column of a (B, D, h, w) map where h / w is odd (the matcher pools 2 x 2)."""
    h, w = desc.shape[-2:]
    return desc[..., : h - h % 2, : w - w % 2]


def coarse_centres(hc: int, wc: int, device: torch.device | None = None) -> torch.Tensor:
    """Fine-map (column, row) of the centres of every coarse cell, row-major.

    Shape:
        -> (hc * wc, 2) float32.
    """
    r, c = torch.meshgrid(torch.arange(hc, device=device), torch.arange(wc, device=device), indexing="ij")
    return torch.stack([2 * c + 0.5, 2 * r + 0.5], -1).reshape(-1, 2).float()


__all__ = ["MatcherNet", "LinearAttention", "AttentionLayer", "position_encoding", "even_crop", "coarse_centres",
           "WINDOW"]
