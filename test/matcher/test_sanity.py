"""The training recipe's sanity checks for the matcher (the research line insists on them): the loss at init matches
theory, one batch overfits, an input-independent baseline does worse than real inputs, and gradients flow only from
the inputs that should reach an output (no mixing across batch items; both images reach every match).

The task: B's map is A's shifted by a few fine cells (fresh content where nothing comes from A), so every coarse cell
of A has an exact target in B; each item has its own shift."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dense_descriptor_ros.matcher.config import MatcherConfig
from dense_descriptor_ros.matcher.losses import chance_coarse_loss
from dense_descriptor_ros.matcher.model import MatcherNet
from dense_descriptor_ros.train.matcher import step_losses

STRIDE = 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread(torch_one_thread):
    yield


def shifted_pairs(shifts: list[tuple[int, int]], d: int = 8, h: int = 8, w: int = 12, seed: int = 0):
    """Maps (B, d, h, w) A and B = A shifted by (dx, dy) fine cells, and B pixels of A's coarse cell centres."""
    g = torch.Generator().manual_seed(seed)
    n = len(shifts)
    a = F.normalize(torch.randn(n, d, h, w, generator=g), dim=1)
    b = F.normalize(torch.randn(n, d, h, w, generator=g), dim=1)
    hc, wc = h // 2, w // 2
    r, c = torch.meshgrid(torch.arange(hc), torch.arange(wc), indexing="ij")
    centre = torch.stack([2 * c + 0.5, 2 * r + 0.5], -1).reshape(-1, 2).float()  # fine (column, row)
    targets = []
    for i, (dx, dy) in enumerate(shifts):
        b[i, :, dy:, dx:] = a[i, :, : h - dy, : w - dx]
        t = centre + torch.tensor([dx, dy], dtype=torch.float32)
        inside = (t[:, 0] <= w - 1) & (t[:, 1] <= h - 1)
        px = (t + 0.5) * STRIDE - 0.5
        targets.append(torch.where(inside[:, None], px, torch.full_like(px, float("nan"))))
    return a, b, torch.stack(targets)


def small(seed: int = 0) -> MatcherNet:
    torch.manual_seed(seed)
    return MatcherNet(MatcherConfig(descriptor_dim=8, d_model=32, layers=1, heads=2, fine_dim=8, image_channels=0))


def fit(net: MatcherNet, a, b, target, steps: int, lr: float = 3e-3) -> list[float]:
    opt = torch.optim.Adam([{"params": [p for n, p in net.named_parameters() if "scale" not in n]},
                            {"params": [net.log_scale, net.log_fine_scale], "lr": 20 * lr}], lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = step_losses(net, a, b, target, STRIDE, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_coarse_loss_at_init_is_log_na_plus_log_nb():
    torch.manual_seed(0)
    net = MatcherNet(MatcherConfig(descriptor_dim=16))  # the default architecture at 320 x 240 (1200 cells)
    a = F.normalize(torch.randn(2, 16, 60, 80), dim=1)
    b = F.normalize(torch.randn(2, 16, 60, 80), dim=1)
    target = torch.rand(2, 1200, 2) * torch.tensor([319.0, 239.0])
    images = torch.rand(2, 3, 240, 320), torch.rand(2, 3, 240, 320)
    with torch.no_grad():
        _, m = step_losses(net, a, b, target, STRIDE, 1.0, *images)
    theory = chance_coarse_loss(1200, 1200)
    assert m["loss/coarse"] == pytest.approx(theory, rel=0.02)
    # and the fine expectation starts near the window centre: error about the spread of the targets (~1 cell)
    assert m["train/fine_error_px"] < 2.0 * STRIDE


def test_one_batch_overfits():
    a, b, target = shifted_pairs([(2, 2), (3, 1)])
    net = small()
    losses = fit(net, a, b, target, 250)
    with torch.no_grad():
        _, m = step_losses(net, a, b, target, STRIDE, 1.0)
    assert losses[-1] < 0.1 * losses[0]
    assert m["train/coarse_accuracy"] == 1.0
    assert m["train/fine_error_px"] < 0.25 * STRIDE  # a quarter of a fine cell


def test_an_input_independent_baseline_does_worse_than_real_inputs():
    shifts = [(1, 0), (2, 2), (0, 3), (3, 1), (2, 0), (0, 1), (1, 3), (3, 3)]
    a, b, target = shifted_pairs(shifts, seed=1)
    real = fit(small(), a, b, target, 150)
    zero = fit(small(), torch.zeros_like(a), torch.zeros_like(b), target, 150)
    # with zeros only the position encoding is left: at best the average of eight different shifts
    assert min(zero[-10:]) > 3.0 * max(real[-10:])
    assert min(zero[-10:]) > math.log(len(shifts)) * 0.5


def test_gradients_reach_only_the_inputs_that_should_reach_an_output():
    a, b, target = shifted_pairs([(2, 2), (1, 3)])
    a.requires_grad_(True)
    b.requires_grad_(True)
    net = small().eval()
    ca, cb, fa, fb = net(a, b)
    logp = net.dual_softmax(ca, cb)
    # item 0's loss: the log-probability of its first valid target, plus its refined position
    pos, _ = net.refine(fa, fb, torch.tensor([[0], [0]]), torch.tensor([[7], [7]]))
    (logp[0, 0, 7] + pos[0, 0].sum()).backward()
    assert a.grad[1].abs().max() == 0 and b.grad[1].abs().max() == 0  # nothing from another item
    assert a.grad[0].abs().max() > 0 and b.grad[0].abs().max() > 0  # both images reach the match
    # and a coarse cell of A far from cell 0 still reaches it (attention: global context, not a local window)
    assert a.grad[0, :, 6:, 10:].abs().max() > 0
