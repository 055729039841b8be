import numpy as np
import pytest

from protloc.plot import ga_history
from protloc.selection import GeneticBlockSelector

pytest.importorskip("matplotlib")


def test_ga_history_renders_png(block_problem, tmp_path):
    X, y = block_problem
    selector = GeneticBlockSelector(
        blocks=3,
        cv=3,
        population_size=6,
        generations=4,
        early_stopping=False,
        min_improvement=None,  # the plot shows the search, whatever it kept
        random_state=0,
        progress=False,
    ).fit(X, y)
    fig = ga_history(selector)
    ax = fig.axes[0]
    best, mean = ax.get_lines()[:2]
    np.testing.assert_array_equal(best.get_ydata(), selector.history_["best_score"])
    np.testing.assert_array_equal(mean.get_ydata(), selector.history_["mean_score"])
    (all_blocks,) = [line for line in ax.get_lines() if line.get_label() == "all blocks"]
    assert all_blocks.get_ydata()[0] == selector.all_blocks_score_
    assert "f1_macro" in ax.get_ylabel()
    path = tmp_path / "ga.png"
    fig.savefig(path, dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    import matplotlib.pyplot as plt

    fig2, ax2 = plt.subplots()
    assert ga_history(selector, ax=ax2) is fig2
    plt.close(fig)
    plt.close(fig2)


def test_ga_history_needs_a_fitted_selector():
    with pytest.raises(ValueError, match="not fitted"):
        ga_history(GeneticBlockSelector())
