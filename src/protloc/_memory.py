"""How much memory a fit may plan to use, and its refusal before it starts."""

from __future__ import annotations

import os

__all__ = ["check_memory", "memory_limit"]


def memory_limit(max_memory=None):
    """Bytes a fit may use: ``max_memory`` GiB, or half of the physical memory if None.

    Examples
    --------
    >>> memory_limit(2.0)
    2147483648.0
    """
    if max_memory is not None:
        return max_memory * 2**30
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30  # platforms without sysconf: a conservative laptop figure


def check_memory(nbytes, what, fix, max_memory=None):
    """Raise a ValueError naming the need and the fix when ``nbytes`` exceeds the limit.

    Examples
    --------
    >>> check_memory(2**20, "a kernel", "use fewer samples", max_memory=1.0)
    >>> check_memory(2**31, "a kernel", "use fewer samples", max_memory=1.0)
    Traceback (most recent call last):
    ...
    ValueError: a kernel needs about 2.0 GiB, more than the limit of 1.0 GiB: use fewer samples.
    """
    limit = memory_limit(max_memory)
    if nbytes > limit:
        raise ValueError(
            f"{what} needs about {nbytes / 2**30:.1f} GiB, more than the limit of "
            f"{limit / 2**30:.1f} GiB: {fix}."
        )
