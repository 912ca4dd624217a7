"""WeightPolicy: the user's weights planned exactly, with and without replacement, across epochs,
ranks, files and past 2^24 samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gekodata import PruningDataset, WeightedBucketSampler, WeightPolicy
from gekodata.policy import policy_from_config
from gekodata.policy.user_weights import capped_probabilities


def _counts(sampler: WeightedBucketSampler, n: int) -> np.ndarray:
    return np.bincount(np.asarray(sampler.global_plan, dtype=np.int64), minlength=n)


def _weights(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.gamma(0.7, size=n)
    w[rng.random(n) < 0.1] = 0.0
    return w


@pytest.mark.parametrize("budget", [None, 777, 0.25])
def test_counts_within_one_of_expectation(budget):
    n = 1000
    w = _weights(n)
    sampler = WeightedBucketSampler(range(n), WeightPolicy(w), num_epochs=3, seed=1, budget=budget)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        counts = _counts(sampler, n)
        total = {None: n, 777: 777, 0.25: 250}[budget]
        assert counts.sum() == total == len(sampler)
        assert np.abs(counts - total * w / w.sum()).max() < 1.0
        assert counts[w == 0].sum() == 0


def test_policy_budget_and_epochs_differ():
    n = 500
    w = _weights(n, 3)
    sampler = WeightedBucketSampler(range(n), WeightPolicy(w, budget=123), num_epochs=2, seed=0)
    first = sampler.global_plan.copy()
    sampler.set_epoch(1)
    assert len(first) == len(sampler.global_plan) == 123
    assert not np.array_equal(first, sampler.global_plan)


def test_without_replacement_inclusion_capped_at_one():
    n = 2000
    w = _weights(n, 5)
    w[:50] = 100.0  # far above the cap: always drawn
    budget = 600
    probs = capped_probabilities(w, budget)
    assert probs.max() == 1.0 and probs[:50].min() == 1.0
    assert abs(probs.sum() - budget) < 1e-6
    free = (probs > 0) & (probs < 1)
    ratio = probs[free] / w[free]
    assert np.allclose(ratio, ratio[0])  # proportional to weight below the cap
    policy = WeightPolicy(w, replacement=False, budget=budget)
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=200, seed=0)
    hits = np.zeros(n)
    for epoch in range(200):
        sampler.set_epoch(epoch)
        counts = _counts(sampler, n)
        assert counts.max() <= 1 and counts.sum() == budget
        assert counts[:50].min() == 1 and counts[w == 0].sum() == 0
        hits += counts
    # inclusion frequency tracks min(1, c w): 200 epochs, binomial error well inside 0.15
    assert np.abs(hits / 200 - probs).max() < 0.15


def test_without_replacement_default_budget_uses_weights_as_probabilities():
    w = np.array([1.0, 0.5, 0.5, 3.0, 0.0, 0.25, 0.75])  # sum(min(1, w)) = 4
    sampler = WeightedBucketSampler(range(7), WeightPolicy(w, replacement=False), num_epochs=1)
    counts = _counts(sampler, 7)
    assert counts.sum() == 4 and counts.max() <= 1 and counts[0] == counts[3] == 1


def test_without_replacement_budget_over_positive_samples_refused():
    policy = WeightPolicy([1.0, 0.0, 2.0], replacement=False, budget=3)
    with pytest.raises(ValueError, match="needs 3 samples of weight > 0, there are 2"):
        WeightedBucketSampler(range(3), policy, num_epochs=1)


def test_set_weights_takes_effect_at_next_epoch():
    n = 100
    policy = WeightPolicy(np.ones(n))
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=3, seed=0)
    before = sampler.global_plan.copy()
    new = np.zeros(n)
    new[:10] = 1.0
    policy.set_weights(torch.tensor(new))
    sampler.set_epoch(0)  # same epoch: the plan is kept
    assert np.array_equal(before, sampler.global_plan)
    sampler.set_epoch(1)
    counts = _counts(sampler, n)
    assert counts[:10].tolist() == [10] * 10 and counts[10:].sum() == 0


def test_reports_are_ignored_by_the_plan():
    n = 64
    w = _weights(n, 2) + 0.1
    a = WeightedBucketSampler(range(n), WeightPolicy(w), num_epochs=2, seed=4)
    b = WeightedBucketSampler(range(n), WeightPolicy(w), num_epochs=2, seed=4)
    idx = torch.as_tensor(a.plan[:32], dtype=torch.long)
    a.report(torch.rand(32), None, None, idx)
    a.set_epoch(1)
    b.set_epoch(1)
    assert np.array_equal(a.global_plan, b.global_plan)


def test_two_ranks_share_one_plan():
    n = 301
    w = _weights(n, 7)
    plans = []
    for rank in range(2):
        sampler = WeightedBucketSampler(
            PruningDataset(list(range(n))),
            WeightPolicy(w),
            num_epochs=2,
            seed=3,
            rank=rank,
            world_size=2,
            standalone=True,
        )
        sampler.set_epoch(1)
        plans.append((sampler.global_plan.copy(), np.asarray(list(sampler))))
    assert np.array_equal(plans[0][0], plans[1][0])
    assert len(plans[0][1]) == len(plans[1][1]) == 151  # equal shards, padded cyclically
    merged = np.empty(302, dtype=np.int64)
    merged[0::2], merged[1::2] = plans[0][1], plans[1][1]
    assert np.array_equal(merged[:n], plans[0][0])


def test_save_load_round_trip(tmp_path):
    n = 200
    w = _weights(n, 9)
    policy = WeightPolicy(w, replacement=False, budget=60)
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=4, seed=2)
    sampler.set_epoch(1)
    policy.set_weights(w[::-1].copy())  # pending for epoch 2
    sampler.save(tmp_path / "sampler.safetensors")
    policy.save(tmp_path / "weights.safetensors")
    sampler.set_epoch(2)
    expected = sampler.global_plan.copy()

    # the placeholder a sampler file's config rebuilds carries only the digest
    fresh = policy_from_config(policy.config())
    assert fresh.config() == policy.config()
    with pytest.raises(RuntimeError, match="no weights yet"):
        fresh.weights  # noqa: B018

    restored = WeightPolicy(w, replacement=False, budget=60)  # the run's initial weights
    again = WeightedBucketSampler(range(n), restored, num_epochs=4, seed=2)
    again.load(tmp_path / "sampler.safetensors")  # the sampler file carries the weights
    assert np.array_equal(restored.weights, w[::-1])
    again.set_epoch(2)
    assert np.array_equal(again.global_plan, expected)
    # the separate weights file restores them too (for a policy used without a sampler file)
    other = WeightPolicy(w, replacement=False, budget=60)
    other.load(tmp_path / "weights.safetensors")
    assert np.array_equal(other.weights, w[::-1])
    # a file whose weights do not fit this policy is refused and changes nothing
    small = WeightedBucketSampler(range(n), WeightPolicy(np.ones(n), budget=5), num_epochs=4, seed=2)
    with pytest.raises(ValueError, match="saved policy differs"):
        small.load(tmp_path / "sampler.safetensors")
    assert np.array_equal(small.policy.weights, np.ones(n))


def test_load_refuses_other_files(tmp_path):
    WeightPolicy(np.ones(5)).save(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="has 5 entries but the policy has 4"):
        WeightPolicy(np.ones(4)).load(tmp_path / "w.safetensors")
    (tmp_path / "junk").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a readable weights file"):
        WeightPolicy(np.ones(4)).load(tmp_path / "junk")


@pytest.mark.parametrize(
    ("weights", "error", "match"),
    [
        (np.ones((2, 3)), ValueError, r"must be 1-D \[N\], got shape \(2, 3\)"),
        (np.array([1.0, -0.5]), ValueError, r"weights\[1\] = -0.5 is negative"),
        (np.array([1.0, np.nan, 2.0]), ValueError, r"weights\[1\] = nan .* must be finite"),
        (np.array([1.0, np.inf]), ValueError, r"weights\[1\] = inf"),
        (np.zeros(4), ValueError, "every weight is 0"),
        (np.array([]), ValueError, "weights is empty"),
        (["a", "b"], TypeError, "must be a float array or tensor"),
    ],
)
def test_bad_weights_named(weights, error, match):
    with pytest.raises(error, match=match):
        WeightPolicy(weights)


def test_bad_weights_leave_policy_unchanged():
    policy = WeightPolicy(np.ones(3))
    with pytest.raises(ValueError, match="has 4 entries but the policy has 3"):
        policy.set_weights(np.ones(4))
    with pytest.raises(ValueError, match="negative"):
        policy.set_weights([1.0, -1.0, 1.0])
    assert np.array_equal(policy.weights, np.ones(3))
    sampler_n = 5
    with pytest.raises(ValueError, match="3 weights but the sampler has 5 samples"):
        WeightedBucketSampler(range(sampler_n), policy, num_epochs=1)


def test_large_n_past_2_24():
    n = 2**25
    w = np.ones(n, dtype=np.float64)
    w[::4] = 3.0  # every 4th sample weighs 3: expectation 2 draws vs 2/3 per epoch at S = N
    sampler = WeightedBucketSampler(range(n), WeightPolicy(w), num_epochs=1, seed=0, shard=False)
    assert len(sampler) == n
    counts = _counts(sampler, n)
    assert counts.sum() == n
    assert counts[::4].min() == counts[::4].max() == 2
    rest = counts.reshape(-1, 4)[:, 1:]
    assert rest.min() == 0 and rest.max() == 1
    assert rest.sum() == n - 2 * (n // 4)


def test_hf_trainer_callback_changes_weights_between_epochs(tmp_path):
    """docs/weighted_sampler.md's Trainer recipe: a callback's set_weights plans the next epoch,
    and the checkpoint's sampler file keeps the weights."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from support.hf_toy import ToyText, tiny_bert
    from transformers import TrainerCallback, TrainingArguments

    from gekodata.hf import SAMPLER_FILE, GekoTrainer

    n = 24

    class Reweight(TrainerCallback):
        def __init__(self, policy):
            self.policy, self.plans = policy, []

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.plans.append(None)

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            self.plans[-1] = sampler.global_plan.copy()
            w = np.zeros(n)
            w[:8] = 1.0
            self.policy.set_weights(w)

    ds = PruningDataset(ToyText(n))
    policy = WeightPolicy(np.ones(n))
    sampler = WeightedBucketSampler(ds, policy, num_epochs=2, seed=0, shard=False)
    callback = Reweight(policy)
    args = TrainingArguments(
        str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        save_strategy="epoch",
    )
    trainer = GekoTrainer(
        model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler, callbacks=[callback]
    )
    trainer.train()
    first, second = callback.plans
    assert sorted(first.tolist()) == list(range(n))
    assert np.bincount(second, minlength=n).tolist() == [3] * 8 + [0] * 16
    saved = WeightPolicy(np.ones(n))  # the run's initial weights, as a resumed script builds it
    resumed = WeightedBucketSampler(ds, saved, num_epochs=2, seed=0, shard=False)
    resumed.load(tmp_path / f"checkpoint-{trainer.state.global_step}" / SAMPLER_FILE)
    assert np.array_equal(saved.weights, policy.weights)
