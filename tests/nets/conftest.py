"""Fixtures shared by the protloc.nets tests."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread():
    """Train with one intra-op thread, restoring torch's setting afterwards.

    The test machines run several pytest processes on two cores; torch's OpenMP
    workers then spin against each other and a tiny net trains several times
    slower than with one thread (measured 7x on the shared CI VM).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
