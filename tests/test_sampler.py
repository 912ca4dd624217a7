import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gekodata import Bucket, BucketPolicy, Curriculum, PruningDataset, WeightedBucketSampler
from gekodata.store.layout import COLUMNS


def make(n=200, **kwargs):
    ds = PruningDataset(
        [{"x": i} for i in range(n)], prune_frozen_after=kwargs.pop("prune_frozen_after", None)
    )
    kwargs.setdefault("num_epochs", 5)
    kwargs.setdefault("policy", BucketPolicy())  # these tests check GEKO's buckets and phases
    return ds, WeightedBucketSampler(ds, **kwargs)


def report_all(sampler, loss_of, chunk=32):
    """Report every planned draw of the current epoch, with loss_of(idx) -> losses."""
    plan = np.array(list(sampler))
    for start in range(0, len(plan), chunk):
        idx = plan[start : start + chunk]
        loss = loss_of(idx)
        sampler.report(torch.tensor(loss), None, None, torch.tensor(idx))
    return plan


def test_epoch0_visits_every_sample_once_and_len_is_known():
    _, sampler = make(1000)
    assert len(sampler) == 1000
    plan = list(sampler)
    assert sorted(plan) == list(range(1000))
    assert all(type(i) is int for i in plan[:10])


def test_frozen_samples_shorten_the_epoch_and_are_never_planned():
    n = 300
    _, sampler = make(
        n, policy=BucketPolicy(curriculum=Curriculum.constant(hard=3, focus=1, light=1))
    )
    easy = np.arange(n) < 100  # samples 0..99 are mastered, the rest are wrong
    loss_of = lambda idx: np.where(easy[idx], 0.001, 3.0)
    report_all(sampler, loss_of)
    sampler.set_epoch(1)
    codes = sampler.store.bucket
    assert (codes[easy] == Bucket.FREEZE).all() and (codes[~easy] == Bucket.HARD).all()
    assert len(sampler) == n - 100
    assert not np.isin(sampler.plan, np.flatnonzero(easy)).any()
    assert set(sampler.plan.tolist()) == set(np.flatnonzero(~easy).tolist())


def test_fixed_budgets():
    _, s_int = make(100, budget=40)
    assert len(s_int) == 40 and len(set(s_int)) == 40
    _, s_frac = make(100, budget=0.25)
    assert len(s_frac) == 25
    _, s_big = make(10, budget=35)
    assert np.bincount(s_big.plan, minlength=10).tolist() == [4, 4, 4, 4, 4, 4, 4, 3, 4, 4] or (
        sorted(np.bincount(s_big.plan, minlength=10).tolist()) == [3] * 5 + [4] * 5
    )


def test_same_seed_same_reports_same_plans_and_store():
    def run(seed):
        _, sampler = make(150, seed=seed)
        rng = np.random.default_rng(7)
        losses = rng.random(150) * 2
        plans = []
        for epoch in range(4):
            sampler.set_epoch(epoch)
            plans.append(report_all(sampler, lambda idx, e=epoch: losses[idx] * (0.3**e)))
        return plans, sampler.store

    plans_a, store_a = run(1)
    plans_b, store_b = run(1)
    plans_c, _ = run(2)
    for a, b in zip(plans_a, plans_b):
        np.testing.assert_array_equal(a, b)
    for k in COLUMNS:
        np.testing.assert_array_equal(store_a.columns[k], store_b.columns[k])
    assert any(not np.array_equal(a, c) for a, c in zip(plans_a, plans_c))


def test_replanning_same_epoch_is_idempotent():
    _, sampler = make(50, prune_frozen_after=1)
    report_all(sampler, lambda idx: np.full(len(idx), 0.001))
    sampler.set_epoch(1)
    first = sampler.plan.copy()
    streak = sampler.store.frozen_streak.copy()
    for _ in range(3):
        len(sampler)
        list(sampler)
        sampler.set_epoch(1)
    np.testing.assert_array_equal(sampler.plan, first)
    np.testing.assert_array_equal(sampler.store.frozen_streak, streak)


def test_pruning_shrinks_the_live_count_and_unprune_restores():
    ds, sampler = make(
        100,
        num_epochs=6,  # epochs 0-5
        prune_frozen_after=2,
        policy=BucketPolicy(curriculum=Curriculum.constant(hard=1, focus=1, light=1)),
    )
    easy = np.arange(100) < 30
    for epoch in range(4):
        sampler.set_epoch(epoch)
        report_all(sampler, lambda idx: np.where(easy[idx], 0.001, 3.0))
    sampler.set_epoch(4)
    len(sampler)
    assert sampler.store.pruned[easy].all() and not sampler.store.pruned[~easy].any()
    assert sampler.num_live == 70 and len(ds) == 100
    np.testing.assert_array_equal(sampler.pruned_indices, np.flatnonzero(easy))
    assert sampler.unprune([0, 1, 50]) == 2
    assert sampler.num_live == 72 and len(ds) == 100
    sampler.set_epoch(5)
    assert {0, 1} <= set(sampler.plan.tolist())  # back as UNSEEN, planned again
    assert sampler.store.bucket[0] == Bucket.UNSEEN


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(5, 120), epochs=st.integers(2, 6))
def test_property_frozen_and_pruned_never_planned(seed, n, epochs):
    rng = np.random.default_rng(seed)
    ds, sampler = make(n, seed=seed, num_epochs=epochs, prune_frozen_after=int(rng.integers(1, 3)))
    losses = rng.random(n) * 3
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        plan = sampler.plan
        store = sampler.store
        frozen = store.bucket == Bucket.FREEZE
        assert not np.isin(plan, np.flatnonzero(frozen | store.pruned)).any()
        if epoch == 0:
            assert sorted(plan.tolist()) == list(range(n))
        report_all(sampler, lambda idx: losses[idx] * rng.random(len(idx)))


def test_bad_reports_raise_and_leave_store_unchanged():
    _, sampler = make(10)
    sampler.report(torch.tensor([0.5, 0.2]), None, None, torch.tensor([1, 2]))
    sampler.flush()
    before = {k: v.copy() for k, v in sampler.store.columns.items()}
    reported = sampler.efficiency_report().trained_passes
    bad_calls = [
        (dict(loss=torch.tensor([0.5]), idx=None), "report() needs idx: the samples' indices"),
        (
            dict(loss=torch.tensor([0.5, 0.1]), idx=torch.tensor([1])),
            "loss has 2 entries but idx has 1",
        ),
        (
            dict(loss=torch.tensor([float("nan")]), idx=torch.tensor([1])),
            "loss must be finite (as float32, the dtype the store computes in); entry 0 is nan (idx 1)",
        ),
        (
            dict(loss=torch.tensor([0.5]), idx=torch.tensor([10])),
            "idx 10 (entry 0) out of range for a dataset of 10 samples",
        ),
        (
            dict(loss=torch.tensor([0.5]), idx=torch.tensor([1.0])),
            "idx must be an integer array, got float32",
        ),
        (
            dict(loss=torch.tensor([0.5]), conf=torch.tensor([1.5]), idx=torch.tensor([1])),
            "conf must be in [0, 1]; entry 0 is 1.5 (idx 1)",
        ),
        (
            dict(loss=torch.tensor([[0.5]]), idx=torch.tensor([[1]])),
            "idx must be 1-D (one value per sample), got shape (1, 1)",
        ),
        (
            dict(loss=np.array([0.5, 0.1]), conf=np.array([0.5]), idx=np.array([1, 2])),
            "conf has 1 entries but idx has 2",
        ),
    ]
    for call, message in bad_calls:
        with pytest.raises(ValueError, match=re.escape(message)):
            sampler.report(**call)
    sampler.flush()
    for k, v in before.items():
        np.testing.assert_array_equal(sampler.store.columns[k], v)
    assert sampler.efficiency_report().trained_passes == reported


def test_float_indices_are_refused_with_an_explanation():
    _, sampler = make(10)
    with pytest.raises(ValueError, match="2\\^24"):
        sampler.report(torch.tensor([0.1]), None, None, torch.tensor([3.0]))


def test_missing_conf_and_correct_are_derived_from_loss():
    _, sampler = make(4)
    sampler.report(np.array([0.01, 2.0]), None, None, np.array([0, 1]))
    sampler.flush()
    store = sampler.store
    assert store.confidence[0] == pytest.approx(np.exp(-0.01), abs=1 / 255)
    assert store.last_correct[0] and not store.last_correct[1]


def test_reports_accept_numpy_lists_and_mixed_dtypes():
    _, sampler = make(4)
    sampler.report([0.3, 0.4], [0.7, 0.6], [True, False], [2, 3])
    sampler.report(
        torch.tensor([0.3], dtype=torch.bfloat16),
        torch.tensor([0.5], dtype=torch.float16),
        torch.tensor([1]),
        torch.tensor([0], dtype=torch.int32),
    )
    assert sampler.pending_reports == 3 and sampler.store.visits.sum() == 0  # folded at sync points
    sampler.flush()
    assert sampler.store.visits.tolist() == [1, 0, 1, 1]


def test_unbiased_weights_estimate_the_full_mean_loss():
    n = 400
    ds, sampler = make(
        n,
        num_epochs=60,  # epochs 0-59
        unbiased=True,
        unbiased_floor=0.5,
        policy=BucketPolicy(curriculum=Curriculum.constant(hard=3, focus=1, light=1)),
    )
    rng = np.random.default_rng(0)
    losses = np.where(np.arange(n) < 200, 0.001, rng.random(n) * 3 + 1)
    report_all(sampler, lambda idx: losses[idx])
    estimates = []
    for epoch in range(1, 60):
        sampler.set_epoch(epoch)
        plan = sampler.plan
        v = sampler.loss_weights(plan).numpy()
        estimates.append(np.mean(v * losses[plan]))
    # frozen half is floored, not dropped: the estimate covers all live samples
    assert np.mean(estimates) == pytest.approx(losses.mean(), rel=0.02)
    # the epoch is shorter than the full data: 200 unfrozen + 0.5 * 200 floored passes
    assert len(sampler) == 300
    item = ds[int(plan[0])]
    assert item["weight"] == pytest.approx(float(sampler.loss_weights(np.array([plan[0]]))[0]))


def test_unbiased_requires_positive_floor_and_other_arg_errors():
    ds = PruningDataset(list(range(5)))
    with pytest.raises(ValueError, match="unbiased_floor must be finite and > 0, got 0"):
        WeightedBucketSampler(ds, num_epochs=2, unbiased=True, unbiased_floor=0)
    with pytest.raises(ValueError, match="num_epochs must be >= 1, got 0"):
        WeightedBucketSampler(ds, num_epochs=0)
    with pytest.raises(ValueError, match="budget must be >= 0, got -3"):
        WeightedBucketSampler(ds, num_epochs=2, budget=-3)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        WeightedBucketSampler(ds, num_epochs=2, seed=-1)
    with pytest.raises(
        RuntimeError, match=re.escape("loss weights exist only with unbiased=True or a policy")
    ):
        WeightedBucketSampler(ds, num_epochs=2).loss_weights(np.array([0]))


def test_all_frozen_gives_an_empty_epoch():
    _, sampler = make(20, policy=BucketPolicy())  # one-visit freeze
    report_all(sampler, lambda idx: np.full(len(idx), 1e-4))
    sampler.set_epoch(1)
    assert len(sampler) == 0 and list(sampler) == []


def test_global_rng_untouched():
    np.random.seed(5)
    torch.manual_seed(5)
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    _, sampler = make(100)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        report_all(sampler, lambda idx: np.full(len(idx), 0.5))
    sampler.efficiency_report()
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_efficiency_report_counts_real_reports():
    _, sampler = make(100)
    report_all(sampler, lambda idx: np.full(len(idx), 2.0))
    sampler.set_epoch(1)
    plan = np.array(list(sampler))
    half = plan[: len(plan) // 2]
    sampler.report(np.full(len(half), 0.1), None, None, half)
    report = sampler.efficiency_report()
    assert [r.reported for r in report.epochs] == [100, len(half)]
    assert report.trained_passes == 100 + len(half)
    assert report.fraction_saved == pytest.approx(1 - (100 + len(half)) / 200)
    current = sampler.epoch_record
    assert current.epoch == 1 and current.reported == len(half) and current.planned == len(plan)
    d = report.to_dict()
    assert d["trained_passes"] == report.trained_passes and len(d["epochs"]) == 2
    assert "saved" in str(report)


def test_plans_above_the_multinomial_limit():
    """torch.multinomial refuses more than 2^24 categories; the plan does not."""
    n = 2**24 + 1000
    sampler = WeightedBucketSampler(range(n), num_epochs=3, budget=1000)
    plan = sampler.plan
    assert len(plan) == 1000 and plan.max() < n and len(np.unique(plan)) == 1000
    sampler.report(np.array([0.1, 5.0]), None, None, np.array([n - 1, n - 2], dtype=np.int64))
    sampler.flush()
    assert sampler.store.visits[n - 2 :].tolist() == [1, 1]
