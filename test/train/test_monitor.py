"""The training-time collapse indicators (TensorBoard's health/*) tell a collapsed space from a healthy one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dense_descriptor_ros.correspondence.pairs import PairSample
from dense_descriptor_ros.train.monitor import collapse_indicators


def _pairs(n: int = 32) -> PairSample:
    g = torch.Generator().manual_seed(0)
    ua = torch.rand(1, n, 2, generator=g) * 15
    nb = (ua + 6.0) % 16  # every non-match 6+ cells away from its match
    return PairSample(ua, ua.clone(), torch.ones(1, n, dtype=torch.bool), ua.clone(), nb,
                      torch.ones(1, n, dtype=torch.bool), torch.zeros(1, n, dtype=torch.bool))


def test_a_collapsed_space_shows_in_every_indicator():
    pairs = _pairs()
    healthy = F.normalize(torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(1)), dim=1)
    collapsed = F.normalize(torch.ones(1, 8, 16, 16) + 1e-4 * healthy, dim=1)  # every pixel the same vector
    h = collapse_indicators(healthy, healthy, pairs, stride=1)
    c = collapse_indicators(collapsed, collapsed, pairs, stride=1)
    assert h["health/channel_std"] > 0.2 and c["health/channel_std"] < 1e-3
    # identical views: matches at distance 0; non-matches far apart only where the space is not collapsed
    assert h["health/match_dist"] < 1e-6 and c["health/match_dist"] < 1e-6
    assert h["health/nonmatch_dist"] > 0.8 and c["health/nonmatch_dist"] < 1e-3
