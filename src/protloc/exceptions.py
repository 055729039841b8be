"""Exceptions and warnings that protloc raises on purpose, documented in one place."""

from __future__ import annotations

__all__ = ["ModelUnavailableError"]


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
