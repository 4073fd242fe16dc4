"""Fixtures for the loss tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one intra-op thread: these tensors are tiny, and on a busy 2-core machine a float64 op that
    goes parallel can wait ~10 ms per call for the second thread (gradcheck makes thousands of calls)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
