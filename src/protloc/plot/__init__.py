"""Figures for protloc results (needs the ``plot`` extra: ``pip install protloc[plot]``).

Every function returns a matplotlib ``Figure``; matplotlib is imported only when a
function is called. Each figure family lives in its own private module.
"""

import importlib

_EXPORTS = {
    "ga_history": "protloc.plot._ga",
    "segmentation_overlay": "protloc.plot._segmentation",
    "localization_maps": "protloc.plot._nets",
    "per_class_f1": "protloc.plot._report",
    "cooccurrence": "protloc.plot._report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'protloc.plot' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
