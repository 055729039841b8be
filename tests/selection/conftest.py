"""Synthetic feature blocks for the selection tests."""

import numpy as np
import pytest

SIGNAL_BLOCKS = (4, 11, 25)


def make_block_problem(
    n_per_class=15,
    n_blocks=30,
    width=3,
    signal=SIGNAL_BLOCKS,
    shift=2.0,
    multilabel=False,
    seed=0,
):
    """X of ``n_blocks`` blocks of ``width`` columns, of which only ``signal`` carry y.

    Class c (0 .. 2**len(signal) - 1) shifts block ``signal[k]`` when bit k of c is
    set, so every signal block is needed to tell all classes apart and every other
    block is noise. With ``multilabel=True``, y is the 0/1 matrix of those bits: label
    k is carried by block ``signal[k]`` alone.
    """
    rng = np.random.default_rng(seed)
    n_bits = len(signal)
    y = np.repeat(np.arange(2**n_bits), n_per_class)
    bits = (y[:, None] >> np.arange(n_bits)) & 1
    X = rng.normal(size=(y.size, n_blocks * width))
    for k, b in enumerate(signal):
        X[:, b * width : (b + 1) * width] += shift * bits[:, k : k + 1]
    return X, (bits if multilabel else y)


@pytest.fixture(scope="module")
def block_problem():
    return make_block_problem()
