"""Per-block kernel pieces, and their sums, for a fast cross-validated SVM fitness.

For columns split into blocks and a subset S of blocks, with ``x_S`` the
concatenation of the blocks in S:

- ``<x_S, z_S> = sum over b in S of <x_b, z_b>`` (the linear Gram), and
- ``||x_S - z_S||^2 = sum over b in S of ||x_b - z_b||^2`` (the squared distance).

So the Gram or squared-distance matrix of any subset is a sum of per-block matrices
computed once. The linear, polynomial and sigmoid kernels of libsvm are functions of
the Gram, the RBF kernel of the squared distance. One matrix per block covers all
samples, so every fold's train-train and test-train parts are slices of it.

``gamma="scale"`` is reproduced as scikit-learn's SVC computes it on the concatenated
training columns of each fold, ``1 / (n_features * X_train.var())`` (1 when the
variance is 0). That variance over all entries of the concatenation is assembled from
each block's (count, mean, sum of squared deviations) with the pairwise formula of
Chan, Golub and LeVeque, which is as stable as numpy's two-pass ``var``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PIECE_KIND",
    "apply_kernel",
    "block_moments",
    "block_pieces",
    "concat_variance",
    "estimate_nbytes",
    "max_samples_within",
    "resolve_gamma",
    "sum_pieces",
]

#: Which per-block piece each libsvm kernel is a function of.
PIECE_KIND = {"linear": "gram", "poly": "gram", "sigmoid": "gram", "rbf": "sqeuclidean"}

_ITEMSIZE = np.dtype(np.float64).itemsize


def block_pieces(X, blocks, kind, out=None):
    """Per-block Gram or squared-distance matrices, shape (n_blocks, n_samples, n_samples).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    blocks : list of int arrays
        Column indices of each block.
    kind : {"gram", "sqeuclidean"}
    out : ndarray of shape (n_blocks, n_samples, n_samples), float64, optional
        Written in place, for instance a memory-mapped file.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(3, 4)
    >>> pieces = block_pieces(X, [np.array([0, 1]), np.array([2, 3])], "gram")
    >>> bool(np.allclose(pieces.sum(axis=0), X @ X.T))
    True
    """
    n_samples = X.shape[0]
    if out is None:
        out = np.empty((len(blocks), n_samples, n_samples), dtype=np.float64)
    for b, columns in enumerate(blocks):
        Xb = np.asarray(X[:, columns], dtype=np.float64)
        piece = out[b]
        np.matmul(Xb, Xb.T, out=piece)
        if kind == "sqeuclidean":
            # ||a||^2 + ||b||^2 - 2 a.b, as libsvm and euclidean_distances compute it;
            # rounding can leave tiny negatives, and the diagonal is exactly 0.
            norms = np.diagonal(piece).copy()
            piece *= -2.0
            piece += norms[:, None]
            piece += norms[None, :]
            np.maximum(piece, 0.0, out=piece)
            np.fill_diagonal(piece, 0.0)
    return out


def block_moments(X, blocks, rows):
    """Each block's (count, mean, sum of squared deviations) over ``X[rows]``.

    Returns an array of shape (n_blocks, 3), the statistics of all entries of the
    block's sub-matrix, from which :func:`concat_variance` assembles the variance of
    any concatenation of blocks.
    """
    moments = np.empty((len(blocks), 3), dtype=np.float64)
    for b, columns in enumerate(blocks):
        values = np.asarray(X[np.ix_(rows, columns)], dtype=np.float64)
        mean = values.mean()
        moments[b] = values.size, mean, np.square(values - mean).sum()
    return moments


def concat_variance(moments, mask):
    """Variance of all entries of the concatenation of the blocks in ``mask``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(5, 6))
    >>> blocks = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5])]
    >>> m = block_moments(X, blocks, np.arange(5))
    >>> bool(np.isclose(concat_variance(m, np.array([1, 0, 1], bool)), X[:, [0, 1, 5]].var()))
    True
    """
    count, mean, m2 = moments[mask].T
    total = count.sum()
    grand_mean = (count * mean).sum() / total
    return float((m2.sum() + (count * np.square(mean - grand_mean)).sum()) / total)


def resolve_gamma(gamma, moments, mask, n_features):
    """The gamma sklearn's SVC would use on the concatenated training columns.

    ``gamma`` is ``"scale"``, ``"auto"`` or a float; ``moments`` come from
    :func:`block_moments` on the fold's training rows.
    """
    if gamma == "scale":
        variance = concat_variance(moments, mask)
        return 1.0 / (n_features * variance) if variance != 0 else 1.0
    if gamma == "auto":
        return 1.0 / n_features
    return float(gamma)


def sum_pieces(pieces, mask, out=None):
    """Sum of the pieces of the blocks in ``mask`` (the subset's Gram or distances)."""
    chosen = np.flatnonzero(mask)
    if out is None:
        out = np.empty(pieces.shape[1:], dtype=np.float64)
    np.copyto(out, pieces[chosen[0]])
    for b in chosen[1:]:
        np.add(out, pieces[b], out=out)
    return out


def apply_kernel(piece, kernel, *, gamma=None, degree=3, coef0=0.0):
    """Turn a summed piece into the kernel matrix, in place; returns it.

    ``piece`` is a Gram for "linear", "poly" and "sigmoid", a squared distance for
    "rbf"; the formulas are libsvm's.
    """
    if kernel == "rbf":
        np.multiply(piece, -gamma, out=piece)
        np.exp(piece, out=piece)
    elif kernel == "poly":
        np.multiply(piece, gamma, out=piece)
        np.add(piece, coef0, out=piece)
        np.power(piece, degree, out=piece)
    elif kernel == "sigmoid":
        np.multiply(piece, gamma, out=piece)
        np.add(piece, coef0, out=piece)
        np.tanh(piece, out=piece)
    return piece


def estimate_nbytes(n_blocks, n_samples, n_train, n_test, n_workers):
    """Memory of the kernel fitness: (pieces, working memory of all workers), in bytes.

    The pieces hold one (n_samples, n_samples) float64 matrix per block, which covers
    every fold's train-train and test-train parts. Each worker holds one summed
    matrix plus one fold's train-train and test-train kernels.

    Examples
    --------
    >>> estimate_nbytes(48, 1000, 800, 200, 2)
    (384000000, 28800000)
    """
    pieces = n_blocks * n_samples**2 * _ITEMSIZE
    per_worker = (n_samples**2 + n_train**2 + n_test * n_train) * _ITEMSIZE
    return pieces, n_workers * per_worker


def max_samples_within(limit, n_blocks, train_fraction, test_fraction, n_workers):
    """Largest sample count whose kernel fitness (:func:`estimate_nbytes`) fits ``limit`` bytes.

    ``train_fraction`` and ``test_fraction`` are the largest fold's shares of the
    samples (0.8 and 0.2 for 5 folds).

    Examples
    --------
    >>> n = max_samples_within(2**30, 48, 0.8, 0.2, 2)
    >>> sum(estimate_nbytes(48, n, int(0.8 * n), int(0.2 * n), 2)) <= 2**30
    True
    """
    per_sample2 = n_blocks + n_workers * (1 + train_fraction**2 + test_fraction * train_fraction)
    return int(np.sqrt(limit / (per_sample2 * _ITEMSIZE)))
