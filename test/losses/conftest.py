"""Fixtures for the loss tests: tiny float64 tensors and thousands of gradcheck calls, so one thread
(a parallel op on a busy 2-core machine can wait ~10 ms per call for its second thread)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(torch_one_thread):
    """Every loss test runs torch on one thread."""
