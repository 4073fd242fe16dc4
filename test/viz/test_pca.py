"""The PCA basis behind every descriptor picture and scatter."""

from __future__ import annotations

import torch

from dense_descriptor_ros.viz.pca import pca_basis


def test_the_basis_always_has_three_axes_and_spans_the_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g) @ torch.randn(3, 16, generator=g)  # 8 points in a 3D subspace of R^16
    mean, basis = pca_basis(x.T[..., None])  # points as a (D, N, 1) map
    assert mean.shape == (16,) and basis.shape == (16, 3)
    centred = x - mean
    assert torch.allclose(centred @ basis @ basis.T, centred, atol=1e-4)  # nothing lost outside the 3 axes
    # two points give min(N, D) = 2 axes: the basis is still (D, 3), the missing one zero
    mean, basis = pca_basis(x[:2].T[..., None])
    assert basis.shape == (16, 3) and torch.count_nonzero(basis.norm(dim=0)) == 2
    # D < 3: the identity's first columns
    _, basis = pca_basis(torch.randn(2, 4, 4, generator=g))
    assert torch.equal(basis, torch.eye(2, 3))
