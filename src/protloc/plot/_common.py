"""Shared plotting helpers: lazy matplotlib import and the RGB composite of HPA channels."""

from __future__ import annotations

import numpy as np

from protloc._validation import channel_names


def import_pyplot():
    """Import matplotlib.pyplot on a non-interactive backend, with an install hint."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "Plots need matplotlib: install it with `pip install protloc[plot]`."
        ) from exc
    if matplotlib.get_backend().lower() not in (
        "agg",
        "pdf",
        "svg",
        "module://matplotlib_inline.backend_inline",
    ):
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def rgb_composite(image, channels=None):
    """HPA-style RGB view of one image (rows, cols, channels) as floats in [0, 1].

    Red = microtubules plus half the ER (yellow), green = protein, blue = nucleus,
    the usual HPA rendering. Images without those names show their first three
    channels.

    Examples
    --------
    >>> import numpy as np
    >>> rgb_composite(np.zeros((4, 4, 4), np.uint8)).shape
    (4, 4, 3)
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    names = list(channels) if channels is not None else list(channel_names(image))

    def plane(name):
        if name not in names:
            return np.zeros(image.shape[:2])
        p = image[..., names.index(name)]
        top = np.percentile(p, 99.5)
        return np.clip(p / top, 0, 1) if top > 0 else np.zeros_like(p)

    if {"green", "blue"} <= set(names):
        red = np.clip(plane("red") + 0.5 * plane("yellow"), 0, 1)
        green = np.clip(plane("green") + 0.5 * plane("yellow"), 0, 1)
        return np.stack([red, green, plane("blue")], axis=-1)
    planes = [plane(n) for n in names[:3]]
    while len(planes) < 3:
        planes.append(np.zeros(image.shape[:2]))
    return np.stack(planes, axis=-1)
