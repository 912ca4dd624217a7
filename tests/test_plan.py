import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gekodata.plan import draw_counts, epoch_generator, resolve_budget, shuffled_plan

weights_strategy = arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.one_of(st.just(0.0), st.floats(1e-3, 10.0), st.sampled_from([1.0, 2.0, 3.0, 5.0])),
)


@settings(max_examples=200, deadline=None)
@given(weights=weights_strategy, total=st.integers(0, 2000), seed=st.integers(0, 2**32 - 1))
def test_counts_sum_to_budget_and_stay_within_one_of_expectation(weights, total, seed):
    counts = draw_counts(weights, total, np.random.default_rng(seed))
    if weights.sum() == 0:
        assert counts.sum() == 0
        return
    assert counts.sum() == total
    expected = total * weights / weights.sum()
    assert (np.abs(counts - expected) < 1 + 1e-9).all()
    assert (counts[weights == 0] == 0).all()
    assert (counts >= 0).all()


def test_equal_weights_give_exactly_one_draw_each():
    weights = np.where(np.arange(1000) % 7 == 0, 0.0, 5.0)
    counts = draw_counts(weights, int((weights > 0).sum()), np.random.default_rng(0))
    assert ((counts == 1) == (weights > 0)).all()


def test_counts_are_unbiased_over_offsets():
    weights = np.array([1.0, 2.0, 3.3, 0.7])
    total = 5
    mean = np.mean([draw_counts(weights, total, np.random.default_rng(s)) for s in range(4000)], axis=0)
    np.testing.assert_allclose(mean, total * weights / weights.sum(), atol=0.05)


@pytest.mark.parametrize("equal", [True, False])
def test_subsets_are_random_not_stripes(equal):
    """Half the data per epoch: which samples are drawn varies freely, not as index stripes."""
    n = 200
    weights = np.ones(n) if equal else np.where(np.arange(n) < 100, 1.0, 1.5)
    draws = np.array([draw_counts(weights, n // 2, np.random.default_rng(s)) for s in range(400)])
    assert len({row.tobytes() for row in draws}) == 400
    # neighbours are drawn independently-ish (a stripe grid makes them perfectly anti-correlated)
    both = np.mean((draws[:, :-1] > 0) & (draws[:, 1:] > 0))
    single = np.mean(draws > 0)
    assert abs(both - single ** 2) < 0.05
    # inclusion frequency matches the expectation per sample
    np.testing.assert_allclose(draws.mean(axis=0), (n // 2) * weights / weights.sum(), atol=0.1)


def test_plan_is_deterministic_per_seed_and_epoch():
    weights = np.random.default_rng(1).random(500)
    def plan(seed, epoch):
        rng = epoch_generator(seed, epoch)
        return shuffled_plan(draw_counts(weights, 400, rng), rng)
    np.testing.assert_array_equal(plan(3, 2), plan(3, 2))
    assert not np.array_equal(plan(3, 2), plan(3, 3))
    assert not np.array_equal(plan(3, 2), plan(4, 2))


def test_plan_holds_each_sample_its_count_times():
    counts = np.array([0, 3, 1, 0, 2])
    plan = shuffled_plan(counts, np.random.default_rng(0))
    assert plan.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(plan, minlength=5), counts)


def test_global_rng_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    rng = epoch_generator(0, 0)
    shuffled_plan(draw_counts(np.ones(100), 100, rng), rng)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize(
    "budget, expected",
    [(None, 7), (3, 3), (0, 0), (0.5, 50), (1.0, 100)],
)
def test_resolve_budget(budget, expected):
    assert resolve_budget(budget, default=7, num_samples=100) == expected


@pytest.mark.parametrize("budget", [-1, 0.0, 1.5, "half", True])
def test_bad_budgets(budget):
    with pytest.raises(ValueError):
        resolve_budget(budget, 1, 10)


def test_bad_weights():
    with pytest.raises(ValueError):
        draw_counts(np.array([1.0, -1.0]), 3, np.random.default_rng(0))
    with pytest.raises(ValueError):
        draw_counts(np.array([1.0, np.nan]), 3, np.random.default_rng(0))


# --------------------------------------------------------------------------- the keyed permutation
@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 64, 1000, 4097, 65537])
def test_keyed_permutation_is_a_bijection_for_any_size(size):
    from gekodata.stream import KeyedPermutation

    x = KeyedPermutation(size, np.random.default_rng(size))(np.arange(size))
    np.testing.assert_array_equal(np.sort(x), np.arange(size))


def test_keyed_permutation_is_keyed_and_looks_random():
    from gekodata.stream import KeyedPermutation

    size = 200_003
    perm = lambda seed: KeyedPermutation(size, np.random.default_rng(seed))(np.arange(size)).astype(np.int64)  # noqa: E731
    a = perm(1)
    np.testing.assert_array_equal(a, perm(1))
    assert np.mean(a != perm(2)) > 0.99
    # no structure a batch would see: neighbours are unrelated, runs go up half the time
    sd = 1 / np.sqrt(size)
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 5 * sd
    assert abs(np.corrcoef(np.arange(size), a)[0, 1]) < 5 * sd
    assert abs(np.mean(a[1:] > a[:-1]) - 0.5) < 5 * sd
    assert np.count_nonzero(a == np.arange(size)) < 10


def test_epoch_stream_slices_shards_and_materialises_alike():
    from gekodata.distributed import rank_shard
    from gekodata.stream import EpochStream, KeyedPermutation

    pool = np.random.default_rng(0).integers(0, 50, 1003).astype(np.int32)
    stream = EpochStream(pool, KeyedPermutation(len(pool), np.random.default_rng(3)), np.int32)
    whole = stream.materialize()
    assert whole.dtype == np.int32 and len(stream) == 1003
    np.testing.assert_array_equal(np.sort(whole), np.sort(pool))
    np.testing.assert_array_equal(stream[10:500], whole[10:500])
    np.testing.assert_array_equal(stream[-32:], whole[-32:])
    np.testing.assert_array_equal(stream[::3], whole[::3])
    assert stream[-1] == whole[-1] and stream[0] == whole[0]
    for world in (2, 3, 8):
        for rank in range(world):
            shard = stream.shard(rank, world)
            np.testing.assert_array_equal(shard.materialize(), rank_shard(whole, rank, world))
            np.testing.assert_array_equal(shard[5:17], rank_shard(whole, rank, world)[5:17])
    identity = EpochStream(None, KeyedPermutation(40, np.random.default_rng(1)), np.int64)
    np.testing.assert_array_equal(np.sort(identity.materialize()), np.arange(40))
