"""Pure genetic-algorithm operators on boolean block masks.

An individual is a boolean vector with one gene per feature block (True = the block
is concatenated into the classifier's input); a population is a 2-D boolean array of
shape (n_individuals, n_blocks). Every operator takes a ``numpy.random.Generator``
explicitly, returns new arrays and touches no global state, so a search is
reproducible from its seed and resumes exactly from a saved Generator state.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bit_flip_mutation",
    "crossover",
    "elite_indices",
    "k_point_crossover",
    "next_generation",
    "random_population",
    "rank",
    "repair",
    "tournament_select",
    "uniform_crossover",
]


def random_population(rng, n_individuals, n_blocks, max_blocks=None):
    """Random individuals whose sizes are spread evenly over 1..max_blocks.

    Each individual first draws its number of blocks uniformly in
    ``1..max_blocks``, then that many distinct blocks. Drawing sizes first (rather
    than switching each gene on with probability 1/2) puts small subsets in the first
    generation too, where a per-gene draw would almost only give about n_blocks/2.

    Examples
    --------
    >>> import numpy as np
    >>> pop = random_population(np.random.default_rng(0), 4, 6, max_blocks=2)
    >>> pop.shape, bool(pop.any(axis=1).all()), int(pop.sum(axis=1).max()) <= 2
    ((4, 6), True, True)
    """
    max_blocks = n_blocks if max_blocks is None else min(max_blocks, n_blocks)
    sizes = rng.integers(1, max_blocks + 1, size=n_individuals)
    population = np.zeros((n_individuals, n_blocks), dtype=bool)
    for row, size in zip(population, sizes):
        row[rng.choice(n_blocks, size=size, replace=False)] = True
    return population


def rank(fitness, population):
    """Rank of each individual, 0 = best.

    Higher fitness ranks first; equal fitness goes to the individual with fewer
    blocks (the smaller input is the cheaper and less over-fitted one), then to the
    lower index. NaN fitness ranks last.

    Examples
    --------
    >>> import numpy as np
    >>> rank(np.array([0.5, 0.9, 0.9]), np.array([[1, 0], [1, 1], [0, 1]], bool))
    array([2, 1, 0])
    """
    fitness = np.where(np.isnan(fitness), -np.inf, fitness)
    n = fitness.shape[0]
    order = np.lexsort((np.arange(n), population.sum(axis=1), -fitness))
    ranks = np.empty(n, dtype=np.intp)
    ranks[order] = np.arange(n)
    return ranks


def elite_indices(ranks, n_elite):
    """Indices of the ``n_elite`` best individuals, best first."""
    return np.argsort(ranks, kind="stable")[:n_elite]


def tournament_select(rng, ranks, n_select, tournament_size):
    """Winners of ``n_select`` tournaments among ``tournament_size`` random contestants.

    Contestants are drawn with replacement; the best-ranked contestant wins.

    Examples
    --------
    >>> import numpy as np
    >>> tournament_select(np.random.default_rng(0), np.array([1, 0, 2]), 5, 3).shape
    (5,)
    """
    contestants = rng.integers(0, ranks.shape[0], size=(n_select, tournament_size))
    return contestants[np.arange(n_select), np.argmin(ranks[contestants], axis=1)]


def uniform_crossover(rng, parents_a, parents_b):
    """Two children per pair; each gene comes from either parent with probability 1/2."""
    swap = rng.random(parents_a.shape) < 0.5
    return np.where(swap, parents_b, parents_a), np.where(swap, parents_a, parents_b)


def k_point_crossover(rng, parents_a, parents_b, k):
    """Two children per pair, swapping the segments between ``k`` random cut points.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.zeros((1, 6), bool), np.ones((1, 6), bool)
    >>> c, d = k_point_crossover(np.random.default_rng(1), a, b, 1)
    >>> bool((c ^ d).all()), int(c.sum()) in range(1, 6)
    (True, True)
    """
    n_pairs, n_blocks = parents_a.shape
    if n_blocks < 2:
        return parents_a.copy(), parents_b.copy()
    k = min(k, n_blocks - 1)
    # k distinct cut points in 1..n_blocks-1 per pair: the first k of a random permutation.
    cuts = np.argsort(rng.random((n_pairs, n_blocks - 1)), axis=1)[:, :k] + 1
    segment = (cuts[:, :, None] <= np.arange(n_blocks)[None, None, :]).sum(axis=1)
    swap = segment % 2 == 1
    return np.where(swap, parents_b, parents_a), np.where(swap, parents_a, parents_b)


def crossover(rng, parents_a, parents_b, rate, method="uniform"):
    """Cross each pair with probability ``rate``; the other pairs pass on unchanged.

    ``method`` is ``"uniform"`` or an int k for k-point crossover.
    """
    if method == "uniform":
        child_a, child_b = uniform_crossover(rng, parents_a, parents_b)
    else:
        child_a, child_b = k_point_crossover(rng, parents_a, parents_b, int(method))
    cross = (rng.random(parents_a.shape[0]) < rate)[:, None]
    return np.where(cross, child_a, parents_a), np.where(cross, child_b, parents_b)


def bit_flip_mutation(rng, population, rate):
    """Flip each gene independently with probability ``rate``."""
    return population ^ (rng.random(population.shape) < rate)


def repair(rng, population, max_blocks=None):
    """Give empty individuals one random block; trim oversized ones to ``max_blocks``.

    Trimming keeps a random subset of ``max_blocks`` of the individual's blocks.

    Examples
    --------
    >>> import numpy as np
    >>> pop = np.array([[0, 0, 0, 0], [1, 1, 1, 1]], bool)
    >>> repair(np.random.default_rng(0), pop, max_blocks=2).sum(axis=1)
    array([1, 2])
    """
    population = population.copy()
    n_blocks = population.shape[1]
    for i in np.flatnonzero(~population.any(axis=1)):
        population[i, rng.integers(n_blocks)] = True
    if max_blocks is not None:
        for i in np.flatnonzero(population.sum(axis=1) > max_blocks):
            on = np.flatnonzero(population[i])
            population[i] = False
            population[i, rng.choice(on, size=max_blocks, replace=False)] = True
    return population


def next_generation(
    rng,
    population,
    fitness,
    *,
    elitism,
    tournament_size,
    crossover_rate,
    mutation_rate,
    crossover_method="uniform",
    max_blocks=None,
):
    """Breed the next population: elites, then tournament, crossover, mutation, repair.

    The ``elitism`` best individuals pass on unchanged (and first); the rest are
    children of tournament-selected parent pairs.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pop = random_population(rng, 6, 5)
    >>> new = next_generation(rng, pop, np.arange(6.0), elitism=1, tournament_size=2,
    ...                       crossover_rate=0.8, mutation_rate=0.2)
    >>> new.shape, bool((new[0] == pop[5]).all())
    ((6, 5), True)
    """
    n_individuals = population.shape[0]
    ranks = rank(fitness, population)
    elites = population[elite_indices(ranks, elitism)]
    n_children = n_individuals - elites.shape[0]
    n_pairs = -(-n_children // 2)
    parents = tournament_select(rng, ranks, 2 * n_pairs, tournament_size)
    child_a, child_b = crossover(
        rng,
        population[parents[0::2]],
        population[parents[1::2]],
        crossover_rate,
        crossover_method,
    )
    children = np.stack([child_a, child_b], axis=1).reshape(-1, population.shape[1])
    children = bit_flip_mutation(rng, children[:n_children], mutation_rate)
    children = repair(rng, children, max_blocks)
    return np.concatenate([elites, children])
