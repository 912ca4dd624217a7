"""The selection policies on hand-made stores: ForgettingPolicy, ReducibleLossPolicy and the
class-aware noise guard (a rare class is not noise)."""

import re

import numpy as np
import pytest
import torch

from gekodata import (
    Bucket,
    BucketPolicy,
    ForgettingPolicy,
    GEKOStateStore,
    PruningDataset,
    ReducibleLossPolicy,
    WeightedBucketSampler,
)
from gekodata.planning.epoch_plan import classify_epoch, plan_epoch
from gekodata.policy import policy_from_config
from gekodata.policy.guard import others_accuracy


def window(store, idx, correct, loss=None, conf=None, pred=None):
    idx = np.asarray(idx)
    correct = np.asarray(correct, dtype=float)
    loss = np.where(correct > 0, 0.05, 3.0) if loss is None else np.asarray(loss, dtype=float)
    conf = np.exp(-loss) if conf is None else np.asarray(conf, dtype=float)
    store.update(idx, loss, conf, correct, None if pred is None else np.asarray(pred))


def plans(store, policy, seeds=range(200), epoch=1, num_epochs=4):
    classify_epoch(store, policy, None)
    return [plan_epoch(store, policy, epoch=epoch, num_epochs=num_epochs, seed=s) for s in seeds]


def draw_rates(store, policy, **kw):
    got = plans(store, policy, **kw)
    counts = np.zeros(len(store))
    for p in got:
        np.add.at(counts, p.indices, 1)
        assert len(np.unique(p.indices)) == len(p.indices)  # at most one draw per sample
    return counts / len(got), got


# ------------------------------------------------------------------------------ forgetting
def forgetting_store(policy):
    """0-3 learned twice, never forgotten; 4 learned, forgotten, learned again; 5 learned once;
    6 wrong (near miss); 7 never reported."""
    store = GEKOStateStore(8)
    policy.prepare(store)
    window(
        store,
        [0, 1, 2, 3, 4, 5, 6],
        [1, 1, 1, 1, 1, 0, 0],
        conf=[0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5],
    )
    window(
        store,
        [0, 1, 2, 3, 4, 5, 6],
        [1, 1, 1, 1, 0, 1, 0],
        conf=[0.9, 0.9, 0.9, 0.9, 0.3, 0.9, 0.5],
    )
    window(store, [4], [1])
    window(store, [4], [1])
    return store


def test_forgetting_policy_skips_learned_never_forgotten_and_trains_the_rest_once():
    policy = ForgettingPolicy(noise_guard=False, audit_weight=0.25, min_visits=2, min_learned=2)
    store = forgetting_store(policy)
    assert store.tracked == ("forgetting",) and "loss_slow_code" not in store.columns
    codes = policy.classify(store)
    assert [Bucket(c).name for c in codes] == ["FREEZE"] * 4 + ["LIGHT", "LIGHT", "FOCUS", "UNSEEN"]
    rates, got = draw_rates(store, policy)
    np.testing.assert_array_equal(rates[4:], 1.0)  # every other sample exactly once per epoch
    assert abs(rates[:4].mean() - 0.25) < 0.04  # skipped ones re-checked at audit_weight
    assert {len(p.indices) for p in got} == {5}  # budget 4 x 0.25 + 4, exactly
    assert all(p.loss_weights is None for p in got)
    # a skipped sample that comes back wrong has forgotten: never skipped again
    window(store, [0], [0])
    window(store, [0], [1])
    window(store, [0], [1])
    assert policy.classify(store)[0] == Bucket.LIGHT and store.forget_count[0] == 1
    lenient = ForgettingPolicy(noise_guard=False, max_forgetting=1, min_visits=2, min_learned=2)
    assert lenient.classify(store)[0] == Bucket.FREEZE
    assert (
        ForgettingPolicy(noise_guard=False, min_visits=2, min_learned=3).classify(store)[1]
        == Bucket.LIGHT
    )
    assert (
        ForgettingPolicy(noise_guard=False, min_visits=3, min_learned=2).classify(store)[1]
        == Bucket.LIGHT
    )


def test_forgetting_policy_rescale_and_anneal():
    policy = ForgettingPolicy(
        noise_guard=False,
        audit_weight=0.25,
        min_visits=2,
        min_learned=2,
        rescale=True,
        anneal_fraction=0.25,
    )
    assert policy.provides_loss_weights and not ForgettingPolicy().provides_loss_weights
    store = forgetting_store(policy)
    (p,) = plans(store, policy, seeds=[0], epoch=1)
    np.testing.assert_allclose(p.loss_weights, [4, 4, 4, 4, 1, 1, 1, 1])
    (last,) = plans(store, policy, seeds=[0], epoch=3)  # the last quarter of 4 epochs: full data
    assert last.record.phase == "ANNEAL" and sorted(last.indices.tolist()) == list(range(8))
    np.testing.assert_array_equal(last.loss_weights, 1.0)


def test_forgetting_policy_in_the_sampler_allocates_its_signals_and_round_trips(tmp_path):
    ds = PruningDataset(list(range(40)))
    policy = ForgettingPolicy(audit_weight=0.0, min_visits=2, min_learned=2)
    sampler = WeightedBucketSampler(ds, policy, num_epochs=5, seed=1)
    assert set(sampler.store.tracked) == {"forgetting", "progress"}
    for epoch in range(3):
        sampler.set_epoch(epoch)
        plan = np.array(list(sampler))
        correct = (plan < 30).astype(float)  # 30 learned at once, 10 never
        sampler.report(
            torch.tensor(np.where(correct > 0, 0.01, 2.0)),
            None,
            torch.tensor(correct),
            torch.tensor(plan),
        )
    sampler.set_epoch(3)
    codes = sampler.store.bucket
    assert (codes[:30] == Bucket.FREEZE).all()  # learned twice, never forgotten: skipped
    assert (codes[30:] == Bucket.SUSPECT).all()  # wrong with 75% right elsewhere: the guard
    assert len(sampler.plan) == 1 and 30 <= sampler.plan[0] < 40  # 10 x suspect_weight 0.1
    sampler.save(tmp_path / "s.safetensors")
    other = WeightedBucketSampler(
        PruningDataset(list(range(40))), policy_from_config(policy.config()), num_epochs=5, seed=1
    )
    other.load(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(other.store.forget_count, sampler.store.forget_count)
    np.testing.assert_array_equal(other.plan, sampler.plan)
    with pytest.raises(
        ValueError, match="policy"
    ):  # another policy configuration: refused when strict
        WeightedBucketSampler(
            PruningDataset(list(range(40))), ForgettingPolicy(), num_epochs=5, seed=1
        ).load(tmp_path / "s.safetensors")


# ------------------------------------------------------------------------------ reducible loss
def test_reducible_loss_policy_keeps_the_top_share_and_explores_the_rest():
    policy = ReducibleLossPolicy(keep_fraction=0.5, explore_weight=0.2)
    store = GEKOStateStore(10)
    with pytest.raises(ValueError, match="reference losses"):
        policy.classify(store)
    #            learnable, not learnt | learnt        | wrong label (high reference) | no reference
    loss = np.array([2.0, 1.5, 1.2, 0.1, 0.05, 0.2, 3.0, 2.5, 0.9])
    ref = np.array([0.2, 0.2, 0.3, 0.1, 0.05, 0.1, 3.2, 2.6])
    store.set_reference_loss(np.arange(8), ref)
    window(store, np.arange(9), (loss < 1).astype(float), loss=loss)  # 9 never reported
    codes = policy.classify(store)
    # keep round(0.5 x 9 seen) = 4 by reducible loss; the wrong labels (6, 7) rank low despite the
    # highest losses; 8 (no reference) ranks by its loss
    assert np.flatnonzero(codes == Bucket.FOCUS).tolist() == [0, 1, 2, 8]
    assert (
        np.flatnonzero(codes == Bucket.LIGHT).tolist() == [3, 4, 5, 6, 7]
        and codes[9] == Bucket.UNSEEN
    )
    rates, _ = draw_rates(store, policy)
    np.testing.assert_array_equal(rates[[0, 1, 2, 8, 9]], 1.0)  # kept and unseen: once each
    assert abs(rates[[3, 4, 5, 6, 7]].mean() - 0.2) < 0.04  # the rest explored at explore_weight
    store.set_pruned([0])  # pruned samples are not ranked: the next one moves up
    assert np.flatnonzero(policy.classify(store) == Bucket.FOCUS).tolist() == [1, 2, 5, 8]


def test_reducible_loss_rescale_weighs_explore_draws():
    policy = ReducibleLossPolicy(keep_fraction=0.5, explore_weight=0.25, rescale=True)
    store = GEKOStateStore(4)
    store.set_reference_loss(None, np.zeros(4))
    window(store, np.arange(4), [0, 0, 1, 1], loss=[2.0, 1.0, 0.1, 0.2])
    (p,) = plans(store, policy, seeds=[0])
    np.testing.assert_allclose(p.loss_weights, [1, 1, 4, 4])


# ------------------------------------------------------------------------------ the guard
def rare_class_store(pred=True):
    """Class 0: 20 samples, learned. Class 1: 20 samples, 19 learned, one (19 + 20 = 39) mislabeled:
    the model calls it 0, confidently and stably. Class 2, rare: 3 samples the model keeps calling 0."""
    labels = np.array([0] * 20 + [1] * 20 + [2] * 3)
    store = GEKOStateStore(len(labels))
    correct = np.ones(len(labels))
    correct[[39, 40, 41, 42]] = 0
    predicted = np.where(correct > 0, labels, 0)
    loss = np.where(correct > 0, 0.05, 3.0)
    for _ in range(3):
        window(store, np.arange(len(labels)), correct, loss=loss, pred=predicted if pred else None)
    return store, labels


def test_noise_guard_does_not_mistake_a_rare_class_for_noise():
    store, labels = rare_class_store()
    policy = ForgettingPolicy(suspect_progress=None)
    policy.prepare(store)
    # without labels: overall accuracy 39/43 -> the rare class looks exactly like the mislabeled sample
    without = np.flatnonzero(policy.classify(store) == Bucket.SUSPECT)
    assert without.tolist() == [39, 40, 41, 42]
    store.set_labels(labels)
    share = others_accuracy(store)
    assert share[39] == pytest.approx(19 / 19) and share[40] == pytest.approx(0.0)
    assert np.flatnonzero(policy.classify(store) == Bucket.SUSPECT).tolist() == [39]
    # BucketPolicy's guard reads the labels too (without them it is unchanged: test_robust)
    guard = BucketPolicy(noise_guard=True)
    assert np.flatnonzero(guard.classify(store) == Bucket.SUSPECT).tolist() == [39]
    # unknown labels (-1) fall back to the overall share; a class with no other seen sample never is suspect
    store.set_labels([-1, 5], idx=[40, 41])
    assert set(np.flatnonzero(policy.classify(store) == Bucket.SUSPECT).tolist()) == {39, 40}


def test_noise_guard_spares_wrong_samples_whose_loss_is_falling():
    """Class 0: 20 samples, 18 learned; 18 and 19 are wrong and confident in another answer for
    five windows, but 18's loss falls (being learned) while 19's rises (a flipped label)."""
    policy = ForgettingPolicy(suspect_progress=0.1)
    store = GEKOStateStore(20)
    policy.prepare(store)
    store.set_labels(np.zeros(20, dtype=np.int64))
    for loss18, loss19 in [(3.0, 3.0), (3.0, 3.1), (3.0, 3.3), (2.0, 3.4), (1.2, 3.6)]:
        loss = np.full(20, 0.05)
        loss[18:] = loss18, loss19
        conf = np.exp(-loss)
        conf[18] = 0.35  # still under 1 - hard_confidence: a guard candidate
        window(store, np.arange(20), (loss < 1).astype(float), loss=loss, conf=conf)
    assert store.learning_progress[18] > 0.1 * store.loss[18] and store.learning_progress[19] < 0
    assert np.flatnonzero(policy.classify(store) == Bucket.SUSPECT).tolist() == [19]
    without_progress = ForgettingPolicy(suspect_progress=None)
    assert np.flatnonzero(without_progress.classify(store) == Bucket.SUSPECT).tolist() == [18, 19]
    rate = np.mean([19 in p.indices for p in plans(store, policy, seeds=range(100))])
    assert abs(rate - policy.suspect_weight) < 0.07


def test_policy_configs_round_trip_and_bad_settings_are_refused():
    for policy in (
        ForgettingPolicy(min_visits=3, audit_weight=0.05, rescale=True, anneal_fraction=0.2),
        ReducibleLossPolicy(keep_fraction=0.3, noise_guard=True, suspect_progress=None),
    ):
        again = policy_from_config(policy.config())
        assert type(again) is type(policy) and again.config() == policy.config()
    for bad, message in (
        (
            dict(min_visits=0),
            "min_visits must be in [1, 65535] (the store's column saturates above), got 0",
        ),
        (
            dict(min_learned=256),
            "min_learned must be in [1, 255] (the store's column saturates above), got 256",
        ),
        (
            dict(max_forgetting=-1),
            "max_forgetting must be in [0, 254] (the store's column saturates above), got -1",
        ),
        (dict(audit_weight=1.5), "audit_weight must be a draw rate in [0, 1], got 1.5"),
        (dict(suspect_weight=-0.1), "suspect_weight must be a draw rate in [0, 1], got -0.1"),
        (dict(suspect_streak=8), "suspect_streak must be in [1, 7], got 8"),
        (dict(anneal_fraction=1.0), "anneal_fraction must be in [0, 1), got 1.0"),
        (dict(suspect_progress=float("nan")), "suspect_progress must be finite or None, got nan"),
        (dict(hard_confidence=2.0), "hard_confidence must be in [0, 1], got 2.0"),
        (dict(max_times_seen=0), "max_times_seen must be >= 1 or None, got 0"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            ForgettingPolicy(**bad)
    for bad, message in (
        (dict(keep_fraction=0.0), "keep_fraction must be in (0, 1], got 0.0"),
        (dict(keep_fraction=1.2), "keep_fraction must be in (0, 1], got 1.2"),
        (dict(explore_weight=-1.0), "explore_weight must be a draw rate in [0, 1], got -1.0"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            ReducibleLossPolicy(**bad)
    ds = PruningDataset(list(range(10)))
    with pytest.raises(ValueError, match="own loss weights"):
        WeightedBucketSampler(ds, ForgettingPolicy(rescale=True), num_epochs=2, unbiased=True)
    WeightedBucketSampler(ds, ForgettingPolicy(rescale=False), num_epochs=2, unbiased=True)
