"""Figures for protloc results (needs the ``plot`` extra: ``pip install protloc[plot]``).

Every function returns a matplotlib ``Figure``; matplotlib is imported only when a
function is called. Each figure family lives in its own private module.
"""

from protloc._lazy import lazy_exports

_EXPORTS = {
    "ga_history": "protloc.plot._ga",
    "segmentation_overlay": "protloc.plot._segmentation",
    "localization_maps": "protloc.plot._nets",
    "per_class_f1": "protloc.plot._report",
    "cooccurrence": "protloc.plot._report",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
