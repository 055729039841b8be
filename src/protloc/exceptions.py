"""Exceptions and warnings that protloc raises on purpose, documented in one place."""

from __future__ import annotations

__all__ = ["ModelUnavailableError", "SelectionWarning"]


class ModelUnavailableError(OSError):
    """A model or its weights could not be obtained: not cached locally and not downloadable.

    Raised by every step that fetches a model (timm backbones with
    ``weights="imagenet"``, Cellpose's built-in models, ``protloc fetch-models``).
    The message names the model, where protloc looked, and how to get it onto an
    offline machine. It subclasses :class:`OSError`, so code that already catches
    download failures as ``OSError`` keeps working.

    Examples
    --------
    >>> try:
    ...     raise ModelUnavailableError("no weights for 'x'")
    ... except OSError as exc:
    ...     print(type(exc).__name__, exc)
    ModelUnavailableError no weights for 'x'
    """


class SelectionWarning(UserWarning):
    """A feature selection kept every block because no subset was good enough.

    Emitted by :class:`~protloc.selection.GeneticBlockSelector` when the best subset
    its genetic algorithm found does not beat all blocks by more than
    ``min_improvement``: the selector then keeps all blocks, and its ``improved_`` is
    False. The message gives both cross-validated scores. Set ``min_improvement=None``
    to keep the algorithm's subset anyway, or silence the warning with
    ``warnings.filterwarnings("ignore", category=SelectionWarning)``.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("kept all blocks", SelectionWarning)
    >>> issubclass(caught[0].category, UserWarning)
    True
    """
