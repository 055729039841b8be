"""Figure of a genetic block search: fitness per generation."""

from __future__ import annotations

import numpy as np

from protloc.plot._common import import_pyplot

__all__ = ["ga_history"]


def ga_history(selector, ax=None):
    """Best and mean fitness per generation of a fitted GeneticBlockSelector.

    The mean is drawn with a band of one standard deviation over the population; a
    dotted line marks the generation where the selected individual was first found, and
    a dashed line the fitness of all blocks (``all_blocks_score_``), which the search
    must beat (see ``min_improvement``).

    Parameters
    ----------
    selector : GeneticBlockSelector
        Fitted; its ``history_`` is drawn.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from protloc.selection import GeneticBlockSelector
    >>> X = np.random.default_rng(0).normal(size=(20, 4))
    >>> y = np.repeat([0, 1], 10)
    >>> selector = GeneticBlockSelector(blocks=2, cv=2, population_size=3, generations=2,
    ...                                 random_state=0, progress=False).fit(X, y)
    >>> fig = ga_history(selector)
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
    ['best', 'mean']
    """
    if not hasattr(selector, "history_"):
        raise ValueError(
            f"{type(selector).__name__} is not fitted: call fit before plotting its history."
        )
    plt = import_pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    else:
        fig = ax.figure
    history = selector.history_
    generation = np.arange(len(history["best_score"]))
    mean, std = history["mean_score"], history["std_score"]
    ax.plot(generation, history["best_score"], marker="o", markersize=3, label="best")
    ax.plot(generation, mean, label="mean")
    ax.fill_between(generation, mean - std, mean + std, alpha=0.2, label="mean ± std")
    found = np.flatnonzero((history["best_individual"] == selector.block_support_).all(axis=1))
    if found.size:
        ax.axvline(found[0], color="grey", linestyle=":", label="selection found")
    all_blocks = getattr(selector, "all_blocks_score_", None)
    if all_blocks is not None and np.isfinite(all_blocks):
        ax.axhline(all_blocks, color="black", linestyle="--", linewidth=1, label="all blocks")
    scoring = selector.scoring if isinstance(selector.scoring, str) else "score"
    ax.set_xlabel("generation")
    ax.set_ylabel(f"fitness ({scoring})")
    n_selected = int(selector.block_support_.sum())
    ax.set_title(
        f"{n_selected} of {selector.block_support_.size} blocks, best {selector.best_score_:.3f}"
    )
    ax.legend(loc="lower right")
    return fig
