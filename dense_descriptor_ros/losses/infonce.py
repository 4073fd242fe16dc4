"""Pixel-level InfoNCE / NT-Xent: each matched pixel must pick its partner among the other view's pixels."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dense_descriptor_ros.correspondence.pairs import PairSample

from .base import LossOutput, check_loss_inputs, masked_mean, safe_count, sample_valid


def _info_nce(q: torch.Tensor, keys: torch.Tensor, q_valid: torch.Tensor, key_valid: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of q_i against keys with target key i, pooled over valid queries.

    Shape:
        q: (B, N, D), keys: (B, K, D) with K >= N (key i < N is the positive of query i),
        q_valid: (B, N), key_valid: (B, K) -> (loss (), accuracy ()).
    """
    n = q.shape[1]
    # Invalid keys get a large finite negative bias, not -inf: an element without any valid key then
    # yields finite (ignored) rows instead of NaN. The bias is fused into the matmul, kept out of autocast
    # (float16 would turn it into -inf).
    bias = torch.zeros(key_valid.shape, dtype=q.dtype, device=q.device)
    bias = bias.masked_fill(~key_valid, torch.finfo(q.dtype).min).unsqueeze(1)  # (B, 1, K)
    with torch.autocast(q.device.type, enabled=False):
        logits = torch.baddbmm(bias, q / temperature, keys.transpose(1, 2).to(q.dtype))  # (B, N, K)
    positive = torch.arange(n, device=q.device)
    target = torch.where(q_valid, positive, -100)  # -100: cross_entropy's ignore_index
    ce = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100, reduction="sum")
    with torch.no_grad():
        # Ties count as wrong unless the positive comes first (argmax); fine for a monitoring metric.
        correct = (logits.argmax(-1) == positive).to(q.dtype)
    return ce / safe_count(q_valid, ce.dtype), masked_mean(correct, q_valid)


class PixelInfoNCELoss(nn.Module):
    """InfoNCE over matched pixels (van den Oord et al. 2018; NT-Xent of SimCLR, Chen et al. ICML 2020;
    at pixel level as in DenseCL, Wang et al. CVPR 2021).

    Equation, per batch element, with q_i = a_i / ||a_i||, k_i = b_i / ||b_i|| over the valid matches:
        L_AB = -1/N * sum_i log( exp(q_i . k_i / t) / sum_j exp(q_i . k_j / t) )
    where j runs over the valid matched keys of B (the other matches are the negatives) and, with
    use_nonmatches, also over the valid non-match points of B. symmetric: L = (L_AB + L_BA) / 2, where
    L_BA uses only matched keys (by the non-match layout, non-match points in A duplicate the anchors, so
    they are not negatives). Queries are pooled over the batch; with N equal descriptors L = log(N).

    Shape:
        desc_a: (B, D, Ha, Wa), desc_b: (B, D, Hb, Wb) at `stride`; pairs: N matches, M non-matches
        -> LossOutput with a () loss. Memory: logits are (B, N, N + M).
    """

    def __init__(self, temperature: float = 0.1, symmetric: bool = True, use_nonmatches: bool = False,
                 eps: float = 1e-8) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)
        self.use_nonmatches = bool(use_nonmatches)
        self.eps = float(eps)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, symmetric={self.symmetric}, "
                f"use_nonmatches={self.use_nonmatches}")

    def forward(self, desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample,
                stride: int = 1) -> LossOutput:
        check_loss_inputs(desc_a, desc_b, pairs, stride)
        mv = pairs.match_valid
        q = F.normalize(sample_valid(desc_a, pairs.matches_a, mv, stride), dim=-1, eps=self.eps)
        k = F.normalize(sample_valid(desc_b, pairs.matches_b, mv, stride), dim=-1, eps=self.eps)
        keys, key_valid = k, mv
        if self.use_nonmatches:
            nv = pairs.nonmatch_valid
            neg = F.normalize(sample_valid(desc_b, pairs.nonmatch_b, nv, stride), dim=-1, eps=self.eps)
            keys, key_valid = torch.cat([k, neg], dim=1), torch.cat([mv, nv], dim=1)
        loss_ab, acc_ab = _info_nce(q, keys, mv, key_valid, self.temperature)
        parts = {"infonce_ab": loss_ab, "accuracy_ab": acc_ab}
        loss, acc = loss_ab, acc_ab
        if self.symmetric:
            loss_ba, acc_ba = _info_nce(k, q, mv, mv, self.temperature)
            loss, acc = 0.5 * (loss_ab + loss_ba), 0.5 * (acc_ab + acc_ba)
            parts |= {"infonce_ba": loss_ba, "accuracy_ba": acc_ba}
        parts |= {"infonce": loss, "accuracy": acc, "num_matches": mv.sum()}
        return LossOutput(loss, {name: v.detach().float() for name, v in parts.items()})
