import numpy as np
import pytest

from protloc.selection import _ga_ops as ops


def rng(seed=0):
    return np.random.default_rng(seed)


def test_random_population_sizes_and_reproducibility():
    pop = ops.random_population(rng(), 200, 10, max_blocks=4)
    sizes = pop.sum(axis=1)
    assert pop.dtype == bool and pop.shape == (200, 10)
    assert sizes.min() == 1 and sizes.max() == 4
    # sizes are spread over 1..max_blocks, not concentrated around n_blocks / 2
    assert set(np.unique(sizes)) == {1, 2, 3, 4}
    np.testing.assert_array_equal(pop, ops.random_population(rng(), 200, 10, max_blocks=4))
    assert not np.array_equal(pop, ops.random_population(rng(1), 200, 10, max_blocks=4))


def test_rank_prefers_score_then_fewer_blocks_and_puts_nan_last():
    pop = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    fitness = np.array([0.5, 0.5, np.nan, 0.9])
    np.testing.assert_array_equal(ops.rank(fitness, pop), [2, 1, 3, 0])
    np.testing.assert_array_equal(ops.elite_indices(ops.rank(fitness, pop), 2), [3, 1])


def test_tournament_large_tournaments_pick_the_best():
    ranks = np.array([2, 0, 1])
    winners = ops.tournament_select(rng(), ranks, 20, tournament_size=60)
    np.testing.assert_array_equal(winners, 1)


def test_tournament_of_one_is_uniform():
    winners = ops.tournament_select(rng(), np.arange(4), 4000, tournament_size=1)
    counts = np.bincount(winners, minlength=4)
    assert counts.min() > 900


@pytest.mark.parametrize("method", ["uniform", 1, 2, 5])
def test_crossover_children_take_each_gene_from_one_parent(method):
    a = np.zeros((30, 8), dtype=bool)
    b = np.ones((30, 8), dtype=bool)
    child_a, child_b = ops.crossover(rng(), a, b, rate=1.0, method=method)
    # complementary parents give complementary children
    np.testing.assert_array_equal(child_a, ~child_b)
    assert 0 < child_a.sum() < child_a.size
    if method != "uniform":
        # k cut points give at most k + 1 segments per child
        changes = (np.diff(child_a.astype(int), axis=1) != 0).sum(axis=1)
        assert changes.max() <= method


def test_crossover_rate_zero_copies_parents():
    pop = ops.random_population(rng(), 10, 6)
    child_a, child_b = ops.crossover(rng(), pop[:5], pop[5:], rate=0.0)
    np.testing.assert_array_equal(child_a, pop[:5])
    np.testing.assert_array_equal(child_b, pop[5:])


def test_bit_flip_mutation_rates():
    pop = ops.random_population(rng(), 10, 6)
    np.testing.assert_array_equal(ops.bit_flip_mutation(rng(), pop, 0.0), pop)
    np.testing.assert_array_equal(ops.bit_flip_mutation(rng(), pop, 1.0), ~pop)
    flipped = ops.bit_flip_mutation(rng(), np.zeros((1000, 10), bool), 0.1).mean()
    assert 0.08 < flipped < 0.12


def test_repair_fills_empty_and_trims_oversized():
    pop = np.zeros((5, 6), dtype=bool)
    pop[3:] = True
    fixed = ops.repair(rng(), pop, max_blocks=2)
    np.testing.assert_array_equal(fixed.sum(axis=1), [1, 1, 1, 2, 2])
    assert pop[0].sum() == 0  # the input is not modified


def test_next_generation_keeps_elites_and_constraints():
    pop = ops.random_population(rng(), 12, 9, max_blocks=3)
    fitness = np.linspace(0, 1, 12)

    def breed():
        return ops.next_generation(
            rng(1), pop, fitness, elitism=2, tournament_size=3, crossover_rate=0.9,
            mutation_rate=0.5, crossover_method=2, max_blocks=3,
        )  # fmt: skip

    new = breed()
    assert new.shape == pop.shape
    np.testing.assert_array_equal(new[:2], pop[[11, 10]])
    assert new.any(axis=1).all() and new.sum(axis=1).max() <= 3
    np.testing.assert_array_equal(new, breed())
