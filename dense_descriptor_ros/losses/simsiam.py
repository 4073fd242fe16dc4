"""Dense SimSiam: a positive-only loss on matched pixels, kept from collapsing by a predictor and a
stop-gradient."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_shape
from ..correspondence.pairs import PairSample
from .base import LossOutput, check_loss_inputs, sample_valid

_BATCH_NORMS = (nn.BatchNorm1d, nn.SyncBatchNorm)


def collapse_std(z: torch.Tensor) -> torch.Tensor:
    """Mean per-channel std of the L2-normalised rows (SimSiam, Sec. 4.1): ~1/sqrt(D) healthy, ~0 collapsed.

    Shape:
        z: (N, D) -> (); 0 for N <= 1.
    """
    return F.normalize(z, dim=-1).std(dim=0, correction=0).mean() if z.shape[0] else z.new_zeros(())


class DenseSimSiamLoss(nn.Module):
    """Negative cosine similarity between predicted and stop-gradient descriptors of matched pixels
    (SimSiam, Chen & He, CVPR 2021, Eq. 2-3, with pixel correspondences as the two "views").

    Equation, over the valid matches (a_i, b_i) of the whole batch, z = descriptor, p = predictor(z):
        L = -1/2 * mean_i [ cos(p_a_i, sg(z_b_i)) + cos(p_b_i, sg(z_a_i)) ]
    sg = stop-gradient (detach): desc_a receives gradient only through p_a, desc_b only through p_b.
    The predictor runs once per view on the flattened valid rows, as SimSiam runs it once per view.

    The predictor (the model's, e.g. `DescriptorNet.predictor`) becomes a submodule of this loss; its
    parameters are the model's, so optimise the model's parameters, not the loss's on top.

    Shape:
        desc_a: (B, D, Ha, Wa), desc_b: (B, D, Hb, Wb) at `stride`; predictor: (N_valid, D) -> (N_valid, D)
        -> LossOutput with a () loss; 0 (zero gradient) when no match is valid.
    """

    def __init__(self, predictor: nn.Module | None, eps: float = 1e-8) -> None:
        super().__init__()
        if predictor is None:
            raise ValueError("DenseSimSiamLoss needs a predictor MLP (without one SimSiam collapses): set "
                             "model.predictor_hidden > 0 and pass model.predictor")
        if not isinstance(predictor, nn.Module):
            raise ValueError(f"predictor must be an nn.Module, got {type(predictor).__name__}")
        self.predictor = predictor
        self.eps = float(eps)

    def forward(self, desc_a: torch.Tensor, desc_b: torch.Tensor, pairs: PairSample,
                stride: int = 1) -> LossOutput:
        check_loss_inputs(desc_a, desc_b, pairs, stride)
        mv = pairs.match_valid
        za = sample_valid(desc_a, pairs.matches_a, mv, stride)[mv]  # (N_valid, D)
        zb = sample_valid(desc_b, pairs.matches_b, mv, stride)[mv]
        n = za.shape[0]
        if n == 0:
            # Keep the graph (and the predictor's parameters) attached so a backward() still works.
            zero = desc_a.sum() * 0 + desc_b.sum() * 0 + sum(p.sum() * 0 for p in self.predictor.parameters())
            zero = zero.float() if zero.dtype in (torch.float16, torch.bfloat16) else zero
            parts = {"simsiam": zero, "z_std": zero, "p_std": zero, "num_matches": zero}
            return LossOutput(zero, {k: v.detach().float() for k, v in parts.items()})
        if n == 1 and any(m.training for m in self.predictor.modules() if isinstance(m, _BATCH_NORMS)):
            raise ValueError("DenseSimSiamLoss: only 1 valid match in the batch, but the predictor's "
                             "BatchNorm1d needs >= 2 rows in train mode; sample more matches per pair")
        pa, pb = self.predictor(za), self.predictor(zb)
        check_shape(pa, (n, za.shape[1]), "predictor output")
        sim_a = F.cosine_similarity(pa, zb.detach(), dim=-1, eps=self.eps)
        sim_b = F.cosine_similarity(pb, za.detach(), dim=-1, eps=self.eps)
        loss = -0.5 * (sim_a.mean() + sim_b.mean())
        parts = {"simsiam": loss, "z_std": collapse_std(torch.cat([za, zb])),
                 "p_std": collapse_std(torch.cat([pa, pb])), "num_matches": mv.sum()}
        return LossOutput(loss, {k: v.detach().float() for k, v in parts.items()})
