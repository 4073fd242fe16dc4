"""Dense InfoNCE: every location of the other view's map is a candidate, so the loss trains exactly what
best-match evaluation measures (find the true pixel among all pixels of the other image)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dense_descriptor_ros.correspondence.pairs import PairSample

from .base import LossOutput, check_loss_inputs, masked_mean, sample_valid


def _cell_centres(h: int, w: int, stride: int, device: torch.device) -> torch.Tensor:
    """(h*w, 2) input-pixel (x, y) of every cell centre of a map at `stride`."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([xs, ys], -1).reshape(-1, 2).float() * stride + (stride - 1) / 2.0


def _dense_nce(q_map: torch.Tensor, uv_q: torch.Tensor, k_map: torch.Tensor, uv_k: torch.Tensor,
               valid: torch.Tensor, stride: int, temperature: float, sigma: float) -> tuple[torch.Tensor, ...]:
    """Soft cross-entropy of each query against all cells of k_map (target: Gaussian at the true match)."""
    b, d, h, w = k_map.shape
    dtype = torch.promote_types(k_map.dtype, torch.float32)  # at least float32 for the log-sum-exp
    q = F.normalize(sample_valid(q_map, uv_q, valid, stride).to(dtype), dim=-1)  # (B, N, D)
    k = F.normalize(k_map.to(dtype).flatten(2), dim=1)  # (B, D, h*w)
    with torch.autocast(q.device.type, enabled=False):
        logits = torch.bmm(q, k) / temperature  # (B, N, h*w)
    cells = _cell_centres(h, w, stride, k_map.device)
    d2 = (uv_k.to(dtype).unsqueeze(2) - cells.to(dtype).view(1, 1, -1, 2)).pow(2).sum(-1)  # (B, N, h*w)
    target = torch.softmax(-d2 / (2 * sigma**2), dim=-1)
    ce = -(target * torch.log_softmax(logits, dim=-1)).sum(-1)  # (B, N)
    # the entropy of the target is the floor of the soft cross-entropy: report the excess (0 = perfect)
    ent = -(target * torch.log(target.clamp_min(1e-30))).sum(-1)
    with torch.no_grad():
        err = (cells[logits.argmax(-1)] - uv_k.float()).norm(dim=-1)
    return masked_mean(ce, valid), masked_mean(ce - ent, valid).detach(), masked_mean(err, valid).detach()


class DenseInfoNCELoss(nn.Module):
    """InfoNCE against every location of the other view (a dense softmax over the map, as in the coarse
    matching losses of dense matchers; InfoNCE of van den Oord et al. 2018).

    Equation, for a match (a_i in A, b_i in B), q_i = d_A(a_i)/||.||, k_j = d_B(c_j)/||.|| over all cells
    c_j of B's map (at the map's stride), target t_ij = softmax_j(-||c_j - b_i||^2 / (2 sigma^2)):
        L_AB = -1/N * sum_i sum_j t_ij log softmax_j(q_i . k_j / tau)
    symmetric: L = (L_AB + L_BA) / 2 with the roles of A and B swapped. sigma (input pixels) should be at
    least stride / 2 so that the target is not a single arbitrary cell.

    Shape:
        desc_a: (B, D, Ha, Wa), desc_b: (B, D, Hb, Wb) at `stride`; pairs: N matches (non-matches unused:
        every other cell is a negative) -> LossOutput with a () loss. Memory: logits are (B, N, Hb * Wb).
    """

    def __init__(self, temperature: float = 0.05, sigma: float = 2.0, symmetric: bool = True) -> None:
        super().__init__()
        if temperature <= 0 or sigma <= 0:
            raise ValueError(f"temperature and sigma must be > 0, got {temperature}, {sigma}")
        self.temperature, self.sigma, self.symmetric = float(temperature), float(sigma), symmetric

    def forward(self, desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample, stride: int = 1) -> LossOutput:
        check_loss_inputs(desc_a, desc_b, pairs, stride)
        sigma = max(self.sigma, stride / 2)
        v = pairs.match_valid
        l_ab, ex_ab, err_ab = _dense_nce(desc_a, pairs.matches_a, desc_b, pairs.matches_b, v, stride,
                                         self.temperature, sigma)
        parts = {"dense_nce_ab": l_ab.detach(), "excess_ab": ex_ab, "argmax_err_px": err_ab}
        loss = l_ab
        if self.symmetric:
            l_ba, _, _ = _dense_nce(desc_b, pairs.matches_b, desc_a, pairs.matches_a, v, stride,
                                    self.temperature, sigma)
            parts["dense_nce_ba"] = l_ba.detach()
            loss = 0.5 * (l_ab + l_ba)
        parts["dense_nce"] = loss.detach()
        return LossOutput(loss, parts)
