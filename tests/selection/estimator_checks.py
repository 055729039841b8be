"""Instances of protloc.selection estimators for scikit-learn's estimator checks.

Gathered by ``tests/test_common.py``; each expected failure states its reason. The
instances search 2 generations of 4 individuals over 2 folds, one block per column
(``blocks=1``): the checks pass plain arrays of any width, which have no feature names
for ``blocks="auto"``. ``min_improvement=None``: on the checks' tiny data a subset often
only ties all blocks, and the SelectionWarning that then says so would fail the checks
(warnings are errors); tests/selection/test_genetic_small_n.py tests that rule.
"""

from protloc.selection import GeneticBlockSelector

_SMALL = dict(
    blocks=1, cv=2, population_size=4, generations=2, min_improvement=None, progress=False
)

ESTIMATOR_CHECKS = [
    (GeneticBlockSelector(random_state=0, **_SMALL), {}),
    (GeneticBlockSelector(fitness="refit", random_state=0, **_SMALL), {}),
]
