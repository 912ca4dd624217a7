"""The sampler's facade does no hidden work: reads never plan, fold or communicate; planning
happens in the constructor and at ``set_epoch``; folding only at sync points. The dataset knows
nothing of the sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gekodata.sampler.collective as collective
import gekodata.sampler.weighted_bucket as weighted_bucket
from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler


@pytest.fixture
def counted(monkeypatch):
    """Counts of plan_epoch, classify_epoch and collective gathers made through the sampler."""
    counts = {"plan": 0, "classify": 0, "gather": 0}

    def wrap(module, name, key):
        real = getattr(module, name)

        def counting(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)

    wrap(weighted_bucket, "plan_epoch", "plan")
    wrap(weighted_bucket, "classify_epoch", "classify")
    wrap(collective, "all_gather_rows", "gather")
    return counts


def _reads(sampler: WeightedBucketSampler) -> None:
    len(sampler)
    sampler.state_dict()
    sampler.epoch_record
    sampler.efficiency_report()
    sampler.suspects()
    sampler.plan
    sampler.global_plan
    sampler.num_live
    sampler.phase
    repr(sampler)


def test_the_constructor_plans_epoch_0_and_reads_never_plan(counted):
    ds = PruningDataset(list(range(40)))
    sampler = WeightedBucketSampler(ds, BucketPolicy(), num_epochs=3, seed=1)
    assert counted == {"plan": 1, "classify": 1, "gather": 0}
    before = sampler.store.state_dict()
    _reads(sampler)
    list(sampler)
    assert counted == {"plan": 1, "classify": 1, "gather": 0}
    after = sampler.store.state_dict()
    for name, column in before["columns"].items():
        np.testing.assert_array_equal(column, after["columns"][name])


def test_report_buffers_and_folds_only_at_sync_points(counted):
    ds = PruningDataset(list(range(40)))
    sampler = WeightedBucketSampler(ds, BucketPolicy(), num_epochs=3, seed=1)
    sampler.report(np.full(10, 0.5), None, None, np.arange(10))
    _reads(sampler)
    assert sampler.pending_reports == 10 and int(sampler.store.visits.sum()) == 0
    assert counted["plan"] == 1
    sampler.set_epoch(0)  # the same epoch: no new plan, no fold
    assert sampler.pending_reports == 10 and counted["plan"] == 1
    sampler.set_epoch(1)  # a new epoch: a sync point, then one plan
    assert sampler.pending_reports == 0 and int(sampler.store.visits.sum()) == 10
    assert counted["plan"] == 2 and counted["classify"] == 2


def test_sync_every_is_the_one_fold_inside_report(counted):
    ds = PruningDataset(list(range(40)))
    sampler = WeightedBucketSampler(ds, num_epochs=3, sync_every=2)
    sampler.report(np.full(4, 0.5), None, None, np.arange(4))
    assert sampler.pending_reports == 4
    sampler.report(np.full(4, 0.5), None, None, np.arange(4, 8))
    assert sampler.pending_reports == 0 and int(sampler.store.visits.sum()) == 8
    assert counted["plan"] == 1


def test_the_dataset_holds_no_sampler_state():
    ds = PruningDataset(torch.utils.data.TensorDataset(torch.arange(8.0)), prune_frozen_after=2)
    sampler = WeightedBucketSampler(ds, num_epochs=2, unbiased=True)
    assert sampler.prune_frozen_after == 2
    assert not any(isinstance(v, WeightedBucketSampler) for v in vars(ds).values())
    assert "_store" not in vars(ds)
    x, idx, w = ds[3]  # the sampler handed its loss weights over
    assert idx == 3 and w == pytest.approx(1.0)
    ds.set_loss_weights(None)
    assert len(ds[3]) == 2


def test_join_process_group_is_for_unsharded_samplers_only():
    ds = PruningDataset(list(range(8)))
    with pytest.raises(ValueError, match="shard=False"):
        WeightedBucketSampler(ds, num_epochs=1).join_process_group()
    with pytest.raises(ValueError, match="standalone"):
        WeightedBucketSampler(
            ds, num_epochs=1, shard=False, rank=1, world_size=2, standalone=True
        ).join_process_group()
    sampler = WeightedBucketSampler(ds, num_epochs=1, shard=False)
    sampler.join_process_group()  # no process group: rank 0 of 1
    assert (sampler.rank, sampler.world_size) == (0, 1)


def test_epochs_are_checked():
    """0-based epochs: a fresh sampler told to start past 0 warns, epochs past num_epochs warn,
    and epochs never go backwards."""
    ds = PruningDataset(list(range(8)))
    with pytest.warns(UserWarning, match="0-based"):
        WeightedBucketSampler(ds, num_epochs=3).set_epoch(1)
    sampler = WeightedBucketSampler(ds, num_epochs=3)
    sampler.set_epoch(0)
    sampler.report(np.full(8, 0.5), None, None, np.arange(8))
    sampler.set_epoch(2)
    with pytest.raises(ValueError, match=r"set_epoch\(1\) after epoch 2: epochs only move forward"):
        sampler.set_epoch(1)
    with pytest.warns(UserWarning, match="past the run's num_epochs=3"):
        sampler.set_epoch(3)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        sampler.set_epoch(-1)


def test_an_epoch_without_reports_warns_and_the_report_says_so():
    """A loop (or a Trainer subclass with its own loss) that never reports: the next set_epoch
    warns, and the efficiency report says nothing was reported instead of "100% saved"."""
    ds = PruningDataset(list(range(12)))
    sampler = WeightedBucketSampler(ds, num_epochs=3)
    sampler.set_epoch(0)
    list(sampler)
    with pytest.warns(UserWarning, match="none was reported"):
        sampler.set_epoch(1)
    text = str(sampler.efficiency_report())
    assert "nothing was reported" in text and "saved" not in text.splitlines()[-1]


def test_what_is_pending_is_said_where_users_read_state():
    ds = PruningDataset(list(range(6)))
    sampler = WeightedBucketSampler(ds, num_epochs=2)
    sampler.report(np.full(4, 0.5), None, None, np.arange(4))
    report = sampler.efficiency_report()
    assert report.pending == 4 and report.to_dict()["pending"] == 4
    assert "4 reported sample passes are not yet in the store" in str(report)
    assert "pending_reports=4" in repr(sampler) and f"({sampler.phase.name})" in repr(sampler)
    sampler.flush()
    assert sampler.efficiency_report().pending == 0
    assert "not yet in the store" not in str(sampler.efficiency_report())


def test_policies_that_do_not_learn_expect_no_reports():
    """Uniform training (the random-subset control) and the user's own weights plan without
    reports: an epoch without reports is no mistake there."""
    import warnings

    from gekodata import WeightPolicy

    for policy in (BucketPolicy.uniform(), WeightPolicy(np.ones(12))):
        assert not policy.learns_from_reports
        sampler = WeightedBucketSampler(PruningDataset(list(range(12))), policy, num_epochs=3)
        list(sampler)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sampler.set_epoch(1)
    assert BucketPolicy().learns_from_reports and BucketPolicy(noise_guard=True).learns_from_reports
