"""Training losses: binary cross-entropy and focal loss, multi-label or multi-class.

Focal loss (Lin et al. 2017) scales each term by ``(1 - p_t) ** gamma``, so easy,
well-classified examples (most negatives in imbalanced multi-label data) weigh less;
the HPA 2018 Kaggle winners trained with focal and Lovász-style losses.
"""

from __future__ import annotations

import numpy as np

from protloc._torch import import_torch

__all__ = ["balanced_weights", "multiclass_loss", "multilabel_loss"]


def balanced_weights(Y, multilabel):
    """Class weights for ``class_weight="balanced"``.

    Multi-label: the positive weight of each class, ``n_negative / n_positive``
    (1 for a class without positives). Multi-class: scikit-learn's
    ``n_samples / (n_classes * count)``.

    Examples
    --------
    >>> balanced_weights(np.array([[1, 0], [0, 0], [0, 1], [0, 1]]), True).tolist()
    [3.0, 1.0]
    >>> balanced_weights(np.array([0, 0, 0, 1]), False).tolist()
    [0.6666666666666666, 2.0]
    """
    Y = np.asarray(Y)
    if multilabel:
        positives = Y.sum(axis=0).astype(float)
        negatives = Y.shape[0] - positives
        return np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    counts = np.bincount(Y).astype(float)
    return Y.shape[0] / (len(counts) * np.maximum(counts, 1))


def multilabel_loss(logits, targets, *, kind="bce", gamma=2.0, pos_weight=None):
    """Mean per-class sigmoid loss of logits ``(n, k)`` against 0/1 targets ``(n, k)``."""
    torch = import_torch()
    F = torch.nn.functional
    terms = F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=pos_weight, reduction="none"
    )
    if kind == "focal":
        prob = torch.sigmoid(logits)
        p_t = prob * targets + (1 - prob) * (1 - targets)
        terms = terms * (1 - p_t).pow(gamma)
    return terms.mean()


def multiclass_loss(logits, targets, *, kind="bce", gamma=2.0, weight=None):
    """Mean softmax cross-entropy (or its focal form) of logits ``(n, k)``, int targets ``(n,)``."""
    torch = import_torch()
    F = torch.nn.functional
    log_prob = F.log_softmax(logits, dim=1)
    log_p_t = log_prob.gather(1, targets[:, None])[:, 0]
    terms = -log_p_t
    if kind == "focal":
        terms = terms * (1 - log_p_t.exp()).pow(gamma)
    if weight is not None:
        w = weight[targets]
        return (terms * w).sum() / w.sum()
    return terms.mean()
