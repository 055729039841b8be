"""Localization maps of an FCN overlaid on the image they were computed from."""

from __future__ import annotations

from numbers import Integral

import numpy as np

from protloc.plot._common import import_pyplot, rgb_composite


def localization_maps(
    image,
    maps,
    classes=None,
    *,
    class_names=None,
    channels=None,
    alpha=0.55,
    cmap="inferno",
    ncols=4,
    panel_size=2.6,
):
    """Overlay per-class localization maps on the RGB composite of one image.

    The first panel shows the image; each further panel shows one class's map
    (stretched over the whole image) on top of a dimmed composite.

    Parameters
    ----------
    image : array-like of shape (rows, cols, channels)
        One image, e.g. ``X[i]``.
    maps : array-like of shape (n_classes, rows', cols')
        Its class maps with values in [0, 1], e.g.
        ``FCNClassifier.localization_maps(X[i:i + 1])[0]``; any resolution.
    classes : sequence of int, optional
        Which maps to show (indices into ``maps``), typically the predicted classes
        ``np.flatnonzero(clf.predict(X[i:i + 1])[0])``. Default: all.
    class_names : sequence of str, optional
        One name per map, used as panel titles. Default: ``"class k"``.
    channels : sequence of str, optional
        Channel names of ``image`` for the composite; default from its channel count.
    alpha : float, default=0.55
        Opacity of the map over the image.
    cmap : str, default="inferno"
        Colormap of the maps, from 0 to 1.
    ncols : int, default=4
        Panels per row.
    panel_size : float, default=2.6
        Side of one panel in inches.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.plot import localization_maps
    >>> image = np.zeros((32, 32, 4), np.uint8)
    >>> maps = np.random.default_rng(0).random((3, 8, 8))
    >>> fig = localization_maps(image, maps, classes=[0, 2], class_names=["a", "b", "c"])
    >>> [ax.get_title() for ax in fig.axes][:3]
    ['image', 'a\\nmax 1.00', 'c\\nmax 0.99']
    """
    image = np.asarray(image)
    maps = np.asarray(maps, dtype=float)
    if image.ndim != 3:
        raise ValueError(
            f"image must be one image of shape (rows, cols, channels), got shape {image.shape};"
            " pass X[i], not the whole batch."
        )
    if maps.ndim != 3:
        raise ValueError(
            f"maps must have shape (n_classes, rows', cols') for one image, got {maps.shape}; "
            "pass clf.localization_maps(X[i:i + 1])[0]."
        )
    n_classes = maps.shape[0]
    classes = list(range(n_classes)) if classes is None else list(np.ravel(classes))
    for c in classes:
        if (
            isinstance(c, bool)
            or not isinstance(c, Integral | np.integer)
            or not (0 <= c < n_classes)
        ):
            raise ValueError(
                f"classes must be integer indices into the {n_classes} maps, got {c!r}."
            )
    classes = [int(c) for c in classes]
    if class_names is None:
        class_names = [f"class {k}" for k in range(n_classes)]
    class_names = list(class_names)
    if len(class_names) != n_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but maps has {n_classes} classes."
        )

    plt = import_pyplot()
    rgb = rgb_composite(image, channels)
    rows, cols = image.shape[:2]
    extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    n_panels = 1 + len(classes)
    ncols = max(1, min(ncols, n_panels))
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False
    )
    for ax in axes.flat[n_panels:]:
        fig.delaxes(ax)
    axes = axes.ravel()
    axes[0].imshow(rgb, extent=extent)
    axes[0].set_title("image")
    for ax, k in zip(axes[1:n_panels], classes):
        ax.imshow(0.6 * rgb, extent=extent)
        shown = ax.imshow(
            maps[k],
            extent=extent,
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            alpha=alpha,
            interpolation="bilinear",
        )
        ax.set_title(f"{class_names[k]}\nmax {maps[k].max():.2f}", fontsize=9)
    for ax in axes[:n_panels]:
        ax.set_axis_off()
    if classes:
        fig.colorbar(shown, ax=list(axes[1:n_panels]), shrink=0.8, label="map value")
    return fig
