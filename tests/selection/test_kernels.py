import numpy as np
import pytest
from sklearn.metrics.pairwise import (
    euclidean_distances,
    linear_kernel,
    polynomial_kernel,
    rbf_kernel,
    sigmoid_kernel,
)
from sklearn.svm import SVC

from protloc.selection import _kernels

RNG = np.random.default_rng(0)
X = RNG.normal(loc=0.3, size=(25, 10)) * np.repeat([1.0, 3.0, 0.5, 2.0], [2, 3, 4, 1])
BLOCKS = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5, 6, 7, 8]), np.array([9])]
MASK = np.array([True, False, True, True])
COLUMNS = np.concatenate([BLOCKS[b] for b in np.flatnonzero(MASK)])


def test_summed_pieces_are_the_gram_and_distances_of_the_concatenation():
    gram = _kernels.sum_pieces(_kernels.block_pieces(X, BLOCKS, "gram"), MASK)
    np.testing.assert_allclose(gram, X[:, COLUMNS] @ X[:, COLUMNS].T, rtol=1e-12)
    distances = _kernels.sum_pieces(_kernels.block_pieces(X, BLOCKS, "sqeuclidean"), MASK)
    expected = euclidean_distances(X[:, COLUMNS], squared=True)
    np.testing.assert_allclose(distances, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.diag(distances), 0.0)


def test_block_pieces_writes_into_out():
    out = np.zeros((len(BLOCKS), 25, 25))
    result = _kernels.block_pieces(X, BLOCKS, "gram", out=out)
    assert result is out and out[1].any()


@pytest.mark.parametrize("rows", [np.arange(25), np.arange(3, 20, 2)])
def test_concat_variance_matches_numpy(rows):
    moments = _kernels.block_moments(X, BLOCKS, rows)
    assert _kernels.concat_variance(moments, MASK) == pytest.approx(
        X[np.ix_(rows, COLUMNS)].var(), rel=1e-13
    )


def test_scale_gamma_is_svcs_gamma():
    rows = np.arange(4, 22)
    y = np.arange(rows.size) % 2
    svc = SVC().fit(X[np.ix_(rows, COLUMNS)], y)
    moments = _kernels.block_moments(X, BLOCKS, rows)
    gamma = _kernels.resolve_gamma("scale", moments, MASK, COLUMNS.size)
    assert gamma == pytest.approx(svc._gamma, rel=1e-13)
    assert _kernels.resolve_gamma("auto", moments, MASK, COLUMNS.size) == 1 / COLUMNS.size
    assert _kernels.resolve_gamma(0.25, moments, MASK, COLUMNS.size) == 0.25


def test_scale_gamma_of_constant_columns_is_one_like_svc():
    constant = np.ones((6, 4))
    moments = _kernels.block_moments(constant, [np.arange(2), np.arange(2, 4)], np.arange(6))
    assert _kernels.concat_variance(moments, np.array([True, True])) == 0.0
    assert _kernels.resolve_gamma("scale", moments, np.array([True, True]), 4) == 1.0


@pytest.mark.parametrize(
    "kernel, reference",
    [
        ("linear", lambda A: linear_kernel(A)),
        ("rbf", lambda A: rbf_kernel(A, gamma=0.07)),
        ("poly", lambda A: polynomial_kernel(A, degree=3, gamma=0.07, coef0=1.5)),
        ("sigmoid", lambda A: sigmoid_kernel(A, gamma=0.07, coef0=-0.5)),
    ],
)
def test_apply_kernel_matches_sklearn(kernel, reference):
    coef0 = {"poly": 1.5, "sigmoid": -0.5}.get(kernel, 0.0)
    pieces = _kernels.block_pieces(X, BLOCKS, _kernels.PIECE_KIND[kernel])
    summed = _kernels.sum_pieces(pieces, MASK)
    result = _kernels.apply_kernel(summed, kernel, gamma=0.07, degree=3, coef0=coef0)
    np.testing.assert_allclose(result, reference(X[:, COLUMNS]), rtol=1e-10, atol=1e-12)


def test_estimate_nbytes_counts_pieces_and_workers():
    pieces, work = _kernels.estimate_nbytes(3, 100, 80, 20, 4)
    assert pieces == 3 * 100 * 100 * 8
    assert work == 4 * (100 * 100 + 80 * 80 + 20 * 80) * 8
