import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gekodata.planning.draws import draw_counts
from gekodata.planning.epoch_plan import epoch_generator, resolve_budget, shuffled_plan

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
    mean = np.mean(
        [draw_counts(weights, total, np.random.default_rng(s)) for s in range(4000)], axis=0
    )
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
    assert abs(both - single**2) < 0.05
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


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (-1, "budget must be >= 0, got -1"),
        (0.0, "a fractional budget must be in (0, 1], got 0.0"),
        (1.5, "a fractional budget must be in (0, 1], got 1.5"),
        ("half", "budget must be None, an int or a fraction, got 'half'"),
        (True, "budget must be None, an int or a fraction, got True"),
    ],
)
def test_bad_budgets(budget, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        resolve_budget(budget, 1, 10)


def test_bad_weights():
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        draw_counts(np.array([1.0, -1.0]), 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        draw_counts(np.array([1.0, np.nan]), 3, np.random.default_rng(0))


# --------------------------------------------------------------------------- the keyed permutation
@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 64, 1000, 4097, 65537])
def test_keyed_permutation_is_a_bijection_for_any_size(size):
    from gekodata.planning.stream import KeyedPermutation

    x = KeyedPermutation(size, np.random.default_rng(size))(np.arange(size))
    np.testing.assert_array_equal(np.sort(x), np.arange(size))


def test_keyed_permutation_is_keyed_and_looks_random():
    from gekodata.planning.stream import KeyedPermutation

    size = 200_003
    perm = lambda seed: KeyedPermutation(size, np.random.default_rng(seed))(np.arange(size)).astype(
        np.int64
    )
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
    from gekodata.planning.stream import EpochStream, KeyedPermutation
    from gekodata.sampler.collective import rank_shard

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


# --------------------------------------------------------------------------- per-class draw counts
def class_counts(classes, weights, total, seed, extra_indices=None):
    """Per-sample counts drawn by the per-class path (classes: uint8 [N], weights: [K])."""
    from gekodata.planning.class_draws import class_pool, class_sizes

    source = lambda lo, hi: classes[lo:hi]  # noqa: E731
    sizes = class_sizes(source, len(classes))
    pool = class_pool(
        source,
        sizes,
        weights,
        total,
        np.random.default_rng(seed),
        np.dtype(np.int32),
        extra_indices=extra_indices,
    )
    indices = np.arange(len(classes)) if pool.indices is None else pool.indices
    return np.bincount(indices, minlength=len(classes)), pool


class_weights_strategy = arrays(
    np.float64,
    st.integers(1, 6),
    elements=st.one_of(st.just(0.0), st.floats(1e-3, 10.0), st.sampled_from([1.0, 2.0, 3.0, 0.1])),
)


@settings(max_examples=150, deadline=None)
@given(
    weights=class_weights_strategy,
    total=st.integers(0, 2000),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    data=st.data(),
)
def test_class_counts_sum_to_budget_and_stay_within_one_of_expectation(
    weights, total, seed, n, data
):
    classes = np.array(
        data.draw(st.lists(st.integers(0, len(weights) - 1), min_size=n, max_size=n)),
        dtype=np.uint8,
    )
    counts, _ = class_counts(classes, weights, total, seed)
    per_sample = weights[classes]
    if per_sample.sum() == 0:
        assert counts.sum() == 0
        return
    assert counts.sum() == total
    expected = total * per_sample / per_sample.sum()
    assert (np.floor(expected - 1e-9) <= counts).all() and (
        counts <= np.ceil(expected + 1e-9)
    ).all()
    assert (counts[per_sample == 0] == 0).all()


def test_class_counts_are_exact_in_expectation_like_the_general_path():
    """Hand-made classes and weights: the mean count over many seeds is each sample's
    expectation, for the per-class path as for draw_counts."""
    classes = np.repeat(np.arange(5, dtype=np.uint8), [7, 5, 3, 9, 6])
    table = np.array([1.0, 2.0, 3.3, 0.0, 0.7])
    total = 23
    expected = total * table[classes] / table[classes].sum()
    per_class = np.mean([class_counts(classes, table, total, s)[0] for s in range(3000)], axis=0)
    general = np.mean(
        [draw_counts(table[classes], total, np.random.default_rng(s)) for s in range(3000)], axis=0
    )
    np.testing.assert_allclose(per_class, expected, atol=0.05)
    np.testing.assert_allclose(general, expected, atol=0.05)


def test_class_draw_counts_are_exact_rationals():
    from gekodata.planning.class_draws import class_draw_counts

    sizes, weights = np.array([3, 0, 5, 2]), np.array([0.1, 4.0, 0.2, 0.0])
    for seed in range(50):
        base, extra = class_draw_counts(sizes, weights, 10, np.random.default_rng(seed))
        # e = 10 * w / 1.3: 0.769..., -, 1.538..., 0
        np.testing.assert_array_equal(base, [0, 0, 1, 0])
        assert int(sizes @ base + extra.sum()) == 10 and extra[1] == extra[3] == 0
        assert extra[0] in (2, 3) and extra[2] in (2, 3)
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        class_draw_counts(sizes, np.array([1.0, -1.0, 1.0, 1.0]), 3, np.random.default_rng(0))


@pytest.mark.parametrize("equal", [True, False])
def test_class_subsets_are_random_not_stripes(equal):
    """Half the data per epoch: which members of a class get a draw varies freely."""
    n = 200
    classes = np.zeros(n, dtype=np.uint8) if equal else (np.arange(n) >= 100).astype(np.uint8)
    table = np.array([1.0, 1.5])
    draws = np.array([class_counts(classes, table, n // 2, s)[0] for s in range(400)])
    assert len({row.tobytes() for row in draws}) == 400
    both = np.mean((draws[:, :-1] > 0) & (draws[:, 1:] > 0))
    single = np.mean(draws > 0)
    assert abs(both - single**2) < 0.05
    np.testing.assert_allclose(
        draws.mean(axis=0), (n // 2) * table[classes] / table[classes].sum(), atol=0.1
    )


def test_class_pool_spans_blocks_and_appends_extra_indices(monkeypatch):
    """Blocks smaller than a class: the extra draws still land on each member with its exact
    probability; appended indices get one draw each; one class drawn once each is the identity."""
    import gekodata.planning.class_draws as plan

    monkeypatch.setattr(plan, "BLOCK", 16)
    monkeypatch.setattr(plan, "blocks", lambda n: ((lo, min(lo + 16, n)) for lo in range(0, n, 16)))
    classes = (np.arange(100) % 3 == 0).astype(np.uint8)
    table = np.array([1.0, 2.0])
    draws = np.array([class_counts(classes, table, 70, s)[0] for s in range(2000)])
    assert (draws.sum(axis=1) == 70).all()
    np.testing.assert_allclose(
        draws.mean(axis=0), 70 * table[classes] / table[classes].sum(), atol=0.06
    )
    counts, pool = class_counts(
        classes, np.array([0.0, 1.0]), 10, 0, extra_indices=np.array([1, 2])
    )
    assert counts.sum() == 12 and counts[1] == counts[2] == 1 and pool.unique == 10
    counts, pool = class_counts(np.zeros(40, dtype=np.uint8), np.array([1.0]), 40, 0)
    assert pool.indices is None and (counts == 1).all()


def test_plan_epoch_per_class_agrees_with_the_per_sample_path():
    """Every built-in setting through both paths (a subclass overriding sample_weights forces the
    per-sample one): the same budget, record and audits; counts within one of the same
    expectations; loss weights equal."""
    import dataclasses

    from gekodata import BucketPolicy, GEKOStateStore, InfoBatchPolicy
    from gekodata.planning.audit import ForgettingAudit
    from gekodata.planning.epoch_plan import classify_epoch, plan_epoch

    def per_sample(policy):
        class PerSample(type(policy)):
            def sample_weights(self, store, codes, phase):
                return super().sample_weights(store, codes, phase)

        return PerSample(
            **{f.name: getattr(policy, f.name) for f in dataclasses.fields(policy) if f.init}
        )

    rng = np.random.default_rng(5)
    n = 3000
    for policy, kwargs in [
        (BucketPolicy(), {}),
        (BucketPolicy(max_times_seen=3), {"budget": 0.5}),
        (BucketPolicy(noise_guard=True, suspect_min_accuracy=0.0), {}),
        (BucketPolicy(), {"unbiased_floor": 0.2}),
        (InfoBatchPolicy(), {}),
        (BucketPolicy(), {"audit": ForgettingAudit(0.3, 0.1, 0)}),
    ]:
        store = GEKOStateStore(n)
        for _ in range(3):
            loss = rng.exponential(0.5, n)
            store.update(
                rng.integers(0, n, n),
                loss,
                np.exp(-loss),
                rng.random(n) < 0.7,
                pred=rng.integers(0, 3, n),
            )
        store.set_pruned(rng.random(n) < 0.05)
        classify_epoch(store, policy, None)
        plans = [
            plan_epoch(store, p, epoch=2, num_epochs=5, seed=1, **kwargs)
            for p in (policy, per_sample(policy))
        ]
        fast, slow = plans
        assert (
            type(per_sample(policy)).bucket_weights(per_sample(policy), policy.curriculum.phases[0])
            is None
        )
        for key in ("planned", "pruned", "buckets", "audit_planned", "num_samples", "phase"):
            assert getattr(fast.record, key) == getattr(slow.record, key), key
        np.testing.assert_array_equal(fast.audits, slow.audits)
        if slow.loss_weights is None:
            assert fast.loss_weights is None
        else:
            np.testing.assert_allclose(fast.loss_weights, slow.loss_weights, rtol=1e-6)
        counts = [np.bincount(p.indices, minlength=n) for p in plans]
        assert abs(int(counts[0].max()) - int(counts[1].max())) <= 1
        assert ((counts[0] > 0) == (counts[1] > 0)).mean() > 0.5
        assert (np.abs(counts[0] - counts[1]) <= 1).all()  # both within one of the same expectation


def test_a_policy_whose_budget_takes_no_counts_is_planned_per_sample():
    from gekodata import BucketPolicy, GEKOStateStore
    from gekodata.planning.epoch_plan import plan_epoch

    class OldStyle(BucketPolicy):
        def default_budget(self, weights, codes):
            return float(np.count_nonzero(weights)) / 2

    store = GEKOStateStore(100)
    plan = plan_epoch(store, OldStyle(), epoch=0, num_epochs=3, seed=0)
    assert plan.record.planned == 50 and len(set(plan.indices.tolist())) == 50


def test_the_per_class_path_is_declared_by_the_policy():
    from gekodata import (BucketPolicy, ForgettingPolicy, InfoBatchPolicy, PromptPolicy, ReducibleLossPolicy,
                          SelectionPolicy)

    assert BucketPolicy.per_class_plan and InfoBatchPolicy.per_class_plan
    assert not any(p.per_class_plan for p in (SelectionPolicy, ForgettingPolicy, ReducibleLossPolicy, PromptPolicy))

    class Reweighted(BucketPolicy):  # overrides a method the declaration covers: per sample
        def loss_weight_table(self, weights, codes=None):
            return None

    class Restated(Reweighted):
        per_class_plan = True

    class Renamed(BucketPolicy):  # overrides nothing the declaration covers
        def classify(self, store):
            return super().classify(store)

    assert not Reweighted.per_class_plan and Restated.per_class_plan and Renamed.per_class_plan
