"""The non-GEKO policies: uniform (random-subset control) and InfoBatch."""

import re

import numpy as np
import pytest
import torch

from gekodata import (
    Bucket,
    BucketPolicy,
    GEKOStateStore,
    InfoBatchPolicy,
    PruningDataset,
    WeightedBucketSampler,
)
from gekodata.policy import policy_from_config


def report_plan(sampler, loss_of):
    plan = np.array(list(sampler))
    sampler.report(torch.tensor(loss_of(plan)), None, None, torch.tensor(plan))
    return plan


def test_uniform_never_freezes_and_budget_draws_fresh_random_subsets():
    n = 400
    sampler = WeightedBucketSampler(
        PruningDataset(list(range(n))), BucketPolicy.uniform(), num_epochs=6, budget=0.25
    )
    subsets = []
    for epoch in range(6):
        sampler.set_epoch(epoch)
        plan = report_plan(sampler, lambda idx: np.full(len(idx), 1e-4))  # perfectly learned
        assert len(plan) == 100 and len(set(plan.tolist())) == 100
        subsets.append(frozenset(plan.tolist()))
    assert not (sampler.store.bucket == Bucket.FREEZE).any()
    assert len(set(subsets)) == 6
    # fresh subsets: the union grows well past any fixed stripe pattern
    assert len(frozenset().union(*subsets)) > 0.7 * n


def infobatch(n=300, r=0.5, num_epochs=8, seed=0):
    ds = PruningDataset([{"x": i} for i in range(n)])
    store = GEKOStateStore(n, ema_alpha=1.0)
    return ds, WeightedBucketSampler(
        ds, InfoBatchPolicy(prune_ratio=r), num_epochs=num_epochs, seed=seed, store=store
    )


def test_infobatch_keeps_hard_samples_and_drops_well_learned_at_rate_r():
    n = 300
    loss = np.where(np.arange(n) < 200, 0.1, 2.0)  # mean 0.733: the first 200 are well-learned
    kept = np.zeros(n)
    for seed in range(40):
        ds, sampler = infobatch(n, r=0.5, seed=seed)
        report_plan(sampler, lambda idx: loss[idx])
        sampler.set_epoch(1)
        plan = sampler.plan
        assert sampler.phase.name == "PRUNE"
        assert len(plan) == 100 + 100 and len(set(plan.tolist())) == len(plan)
        assert set(range(200, 300)) <= set(plan.tolist())
        weights = sampler.loss_weights(plan)
        np.testing.assert_allclose(weights.numpy(), np.where(plan < 200, 2.0, 1.0))
        assert ds[int(plan[0])]["weight"] == pytest.approx(2.0 if plan[0] < 200 else 1.0)
        kept[plan] += 1
    rate = kept[:200] / 40
    assert abs(rate.mean() - 0.5) < 0.02 and rate.min() > 0.15  # each sample ~ Bernoulli(0.5)
    codes = sampler.store.bucket
    assert (codes[:200] == Bucket.LIGHT).all() and (codes[200:] == Bucket.FOCUS).all()


def test_infobatch_weighted_loss_is_unbiased_and_anneal_trains_everything():
    n = 200
    loss = np.random.default_rng(0).exponential(size=n)
    sums = []
    for seed in range(60):
        _, sampler = infobatch(n, r=0.7, num_epochs=8, seed=seed)
        report_plan(sampler, lambda idx: loss[idx])
        sampler.set_epoch(1)
        plan = sampler.plan
        sums.append(float((sampler.loss_weights(plan).numpy() * loss[plan]).sum()))
    assert abs(np.mean(sums) - loss.sum()) < 0.03 * loss.sum()
    sampler.set_epoch(7)  # the last 12.5% of 8 epochs: full data, weight 1
    assert sampler.phase.name == "ANNEAL"
    assert sorted(sampler.plan.tolist()) == list(range(n))
    np.testing.assert_array_equal(sampler.loss_weights(sampler.plan).numpy(), 1.0)


def test_infobatch_config_errors_and_save_load(tmp_path):
    policy = InfoBatchPolicy(prune_ratio=0.3, anneal_fraction=0.2)
    assert policy_from_config(policy.config()) == policy
    assert policy_from_config(BucketPolicy().config()).config() == BucketPolicy().config()
    for bad, message in (
        (dict(prune_ratio=1.0), "prune_ratio must be in [0, 1), got 1.0"),
        (dict(prune_ratio=-0.1), "prune_ratio must be in [0, 1), got -0.1"),
        (dict(anneal_fraction=1.0), "anneal_fraction must be in [0, 1), got 1.0"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            InfoBatchPolicy(**bad)
    ds = PruningDataset(list(range(50)))
    with pytest.raises(ValueError, match="own loss weights"):
        WeightedBucketSampler(ds, policy, num_epochs=3, unbiased=True)
    with pytest.raises(TypeError, match="SelectionPolicy"):
        WeightedBucketSampler(ds, "geko", num_epochs=3)
    _, sampler = infobatch(50, r=0.5)
    report_plan(sampler, lambda idx: idx / 50.0)
    sampler.set_epoch(1)
    sampler.save(tmp_path / "s.safetensors")
    _, other = infobatch(50, r=0.5)
    other.load(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(other.plan, sampler.plan)
    np.testing.assert_array_equal(
        other.loss_weights(np.arange(50)), sampler.loss_weights(np.arange(50))
    )
