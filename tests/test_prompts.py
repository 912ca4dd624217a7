"""RL prompt selection on hand-made group outcomes: the store's zero-variance run, report_groups,
the reward-function wrapper and PromptPolicy's buckets, draws, freezing, audit and exploration."""

import asyncio
import json
import re

import numpy as np
import pytest
import torch

from gekodata import Bucket, GEKOStateStore, PromptPolicy, WeightedBucketSampler
from gekodata.policy import policy_from_config
from gekodata.prompts import group_rows, prompt_summary, report_groups, reward_reporter
from gekodata.store.layout import MAX_GROUP_STREAK

G = 4


def sampler_for(n, policy=None, **kw):
    kw.setdefault("num_epochs", 50)
    return WeightedBucketSampler(range(n), policy or PromptPolicy(group_size=G), seed=0, **kw)


def window(sampler, outcomes, epoch):
    """Report one window: outcomes[i] = rewards of prompt i's group (None = not rolled out), then
    plan ``epoch``."""
    idx = [i for i, r in enumerate(outcomes) if r is not None]
    if idx:
        report_groups(sampler, idx, [outcomes[i] for i in idx])
    sampler.set_epoch(epoch)


# ---------------------------------------------------------------------------------- the store
def test_group_streak_counts_unanimous_windows_by_direction():
    store = GEKOStateStore(4)
    store.ensure_column("group_streak")
    idx = np.repeat(np.arange(4), G)
    sequence = [  # per window: the group of each of the 4 prompts
        ([1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 1], [0, 0, 0, 0]),
        ([1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]),
        ([1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]),
    ]
    expected = [[1, -1, 0, -1], [2, -2, 1, 1], [0, -3, 2, 2]]
    for groups, want in zip(sequence, expected):
        c = np.array(groups, dtype=np.float32).reshape(-1)
        store.update(idx, 1 - c, c, c)
        assert store.group_streak.tolist() == want
    assert store.visits.tolist() == [3 * G] * 4  # visits count completions
    np.testing.assert_allclose(store.correctness[1], 0.0)
    store.reset(np.array([1]))
    assert store.group_streak.tolist() == [0, 0, 2, 2]


def test_group_streak_is_order_independent_saturates_and_needs_exact_equality():
    rng = np.random.default_rng(0)
    idx = np.repeat(np.arange(50), G)
    c = rng.integers(0, 2, len(idx)).astype(np.float32)
    c[:G] = 0.7  # continuous rewards, all equal: zero variance, "right" (>= 0.5)
    c[G : 2 * G] = [
        0.7,
        0.7,
        0.7,
        np.nextafter(np.float32(0.7), np.float32(1)),
    ]  # not exactly equal
    a, b = GEKOStateStore(50), GEKOStateStore(50)
    for s in (a, b):
        s.ensure_column("group_streak")
    order = rng.permutation(len(idx))
    a.update(idx, 1 - c, c, c)
    b.update(idx[order], 1 - c[order], c[order], c[order])
    np.testing.assert_array_equal(a.group_streak, b.group_streak)
    assert a.group_streak[0] == 1 and a.group_streak[1] == 0
    pair = GEKOStateStore(1)
    pair.ensure_column("group_streak")
    for _ in range(MAX_GROUP_STREAK + 5):  # two equal completions: unanimous, saturating
        pair.update(np.array([0, 0]), np.ones(2), np.zeros(2), np.zeros(2))
    assert pair.group_streak[0] == -MAX_GROUP_STREAK
    # one scored completion (the rest unscored) says nothing of its group: the streak stays
    pair.update(np.array([0]), np.array([0.0]), np.array([1.0]), np.array([1.0]))
    assert pair.group_streak[0] == -MAX_GROUP_STREAK


def test_a_group_with_one_scored_completion_starts_no_skip_streak():
    """TRL's unscored completions (None/NaN) are dropped: a group left with one scored
    completion is not judged all-equal."""
    ds = list(range(3))
    sampler = WeightedBucketSampler(ds, PromptPolicy(group_size=4), num_epochs=2)
    rewards = np.array([[1.0, np.nan, np.nan, np.nan], [1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    report_groups(sampler, np.arange(3), rewards)
    sampler.flush()
    assert sampler.store.group_streak.tolist() == [0, 1, 0]


def test_group_streak_column_is_optional_and_survives_save_load(tmp_path):
    plain = GEKOStateStore(3)
    assert "group_streak" not in plain.columns and plain.group_streak.tolist() == [0, 0, 0]
    plain.update(np.array([0, 0]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([1.0, 0.0]))
    assert "group_streak" not in plain.columns  # allocated only on request
    with pytest.raises(ValueError, match="not an optional store column"):
        plain.ensure_column("visits")
    store = GEKOStateStore(3)
    store.ensure_column("group_streak")
    store.update(np.array([0, 0, 2]), np.zeros(3), np.ones(3), np.ones(3))
    store.save(tmp_path / "s.safetensors")
    back = GEKOStateStore.from_file(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(back.group_streak, store.group_streak)
    assert back.columns["group_streak"].dtype == np.int8
    assert store.nbytes == 13 * 3


# ---------------------------------------------------------------------------------- report_groups
def test_group_rows_shapes_ranges_and_missing_rewards():
    idx, s = group_rows([3, 1], [[1, 0, None], [0.5, float("nan"), 1]])
    assert idx.tolist() == [3, 3, 1, 1] and s.tolist() == [1, 0, 0.5, 1]
    idx, s = group_rows(
        torch.tensor([2, 2, 5]), torch.tensor([-1.0, 1.0, 0.0]), reward_range=(-1, 1)
    )
    assert idx.dtype == np.int64 and s.tolist() == [0.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="outside reward_range"):
        group_rows([0], [[1.5, 1]])
    with pytest.raises(ValueError, match="outside reward_range"):
        group_rows([0, 0], [float("inf"), 1])
    with pytest.raises(ValueError, match="groups but idx has"):
        group_rows([0, 1], [[1, 1]])
    with pytest.raises(ValueError, match=r"rewards must be \[P, G\]"):
        group_rows([0, 1, 2], [1, 1])
    with pytest.raises(ValueError, match="integer prompt indices"):
        group_rows([0.0, 1.0], [1, 1])
    with pytest.raises(ValueError, match="high > low"):
        group_rows([0], [1], reward_range=(1, 1))
    with pytest.raises(ValueError, match="must hold numbers"):
        group_rows([0], ["right"])


def test_report_groups_refuses_bad_calls_whole():
    sampler = sampler_for(4)
    with pytest.raises(ValueError, match="outside reward_range"):
        report_groups(sampler, [0, 1], [[1, 1, 1, 1], [2, 0, 0, 0]])
    with pytest.raises(ValueError, match="out of range"):
        report_groups(sampler, [0, 9], [[1, 1, 1, 1], [0, 0, 0, 0]])
    assert sampler.pending_reports == 0


def test_a_group_split_across_calls_is_judged_whole():
    """TRL deals a generation batch out to processes in slices: half a group per rank."""
    sampler = sampler_for(3)
    report_groups(sampler, [0, 0, 1, 1, 2, 2], [1, 1, 1, 1, 0, 0])  # "rank 0"
    report_groups(sampler, [0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 0])  # "rank 1"
    sampler.set_epoch(1)
    assert sampler.store.group_streak.tolist() == [1, 0, -1]
    np.testing.assert_allclose(sampler.store.correctness, [1.0, 0.5, 0.0], atol=1 / 255)


def test_efficiency_report_counts_groups_as_passes():
    sampler = sampler_for(5)
    window(sampler, [[1] * G, [0] * G, [1, 0, 0, 1], [1, 1, 1, 0], [0] * G], 1)
    report = sampler.efficiency_report()
    assert report.epochs[0].reported == 5 and report.full_data_passes == 10
    assert prompt_summary(sampler.store) == {
        "prompts": 5,
        "unseen": 0,
        "informative": 2,
        "solved_streak": 1,
        "failed_streak": 2,
        "frozen": 0,
        "pruned": 0,
        "mean_pass_rate": pytest.approx((1 + 0 + 0.5 + 0.75 + 0) / 5, abs=1e-2),
        "rollouts": 5 * G,
    }


# ---------------------------------------------------------------------------------- the wrapper
def test_reward_reporter_is_transparent_and_reports():
    sampler = sampler_for(4)
    seen = {}

    def my_reward(prompts, completions, answer, **kwargs):
        """docs"""
        seen.update(kwargs, prompts=prompts, completions=completions, answer=answer)
        return [float(c == a) for c, a in zip(completions, answer)]

    wrapped = reward_reporter(sampler, my_reward)
    assert wrapped.__name__ == "my_reward" and wrapped.__doc__ == "docs"
    out = wrapped(
        prompts=["p"] * 4,
        completions=["1", "2", "1", "1"],
        answer=["1", "1", "1", "1"],
        idx=[2, 2, 3, 3],
        trainer_state=None,
    )
    assert out == [1.0, 0.0, 1.0, 1.0]  # returned unchanged
    assert seen["idx"] == [2, 2, 3, 3] and "trainer_state" in seen  # passed through unchanged
    assert wrapped.reported_rows == 4 and sampler.pending_reports == 4
    with wrapped.paused():
        wrapped(prompts=["p"], completions=["1"], answer=["1"], idx=[0])
    assert sampler.pending_reports == 4
    with pytest.raises(ValueError, match="no 'idx' keyword"):
        wrapped(prompts=["p"], completions=["1"], answer=["1"])
    sampler.set_epoch(1)
    assert sampler.store.group_streak.tolist() == [0, 0, 0, 1]
    assert sampler.store.bucket.tolist() == [
        Bucket.UNSEEN,
        Bucket.UNSEEN,
        Bucket.FOCUS,
        Bucket.LIGHT,
    ]


def test_reward_reporter_refuses_async_and_bad_arguments():
    async def scored(completions, **kw):
        await asyncio.sleep(0)
        return [1.0] * len(completions)

    sampler = sampler_for(2)
    with pytest.raises(TypeError, match="synchronous"):
        reward_reporter(sampler, scored)
    with pytest.raises(TypeError, match="WeightedBucketSampler"):
        reward_reporter(object(), len)
    with pytest.raises(ValueError, match="reward_range"):
        reward_reporter(sampler, len, reward_range=(1, 0))


# ---------------------------------------------------------------------------------- the policy
def test_buckets_and_draws_follow_the_group_outcomes():
    policy = PromptPolicy(
        group_size=G, easy_keep=0.5, hard_keep=0.5, explore=0.1, freeze_after=3, learnability=0.0,
        zero_target=None, recheck=0.0,  # GRESO's fixed rule (the adaptive rules: tests below)
    )
    sampler = sampler_for(6, policy)
    outcomes = [[1] * G, [0] * G, [1, 0, 1, 0], None, [1] * G, [0] * G]
    window(sampler, outcomes, 1)
    window(sampler, [[1] * G, [0] * G, None, None, [1, 1, 0, 1], [0] * G], 2)
    window(sampler, [[1] * G, None, None, None, None, [0] * G], 3)
    window(sampler, [None, None, None, None, None, [0] * G], 4)
    store = sampler.store
    assert store.group_streak.tolist() == [3, -2, 0, 0, 0, -4]
    codes = policy.classify(store)
    assert codes.tolist() == [
        Bucket.FREEZE,
        Bucket.HARD,
        Bucket.FOCUS,
        Bucket.UNSEEN,
        Bucket.FOCUS,
        Bucket.HARD,
    ]
    weights = policy.sample_weights(store, codes, sampler.phase)
    np.testing.assert_allclose(
        weights, [0.0, 0.25, 1.0, 1.0, 1.0, 0.1]
    )  # 0.5**4 = 0.0625 < explore
    assert policy.default_budget(weights, codes) == pytest.approx(3.35)
    assert 0 not in sampler.global_plan  # frozen
    assert len(sampler) in (3, 4)  # round(3.35) plus at most rounding: the epoch shrinks


def test_light_prompts_are_kept_with_probability_easy_keep_to_the_run():
    n = 4000
    policy = PromptPolicy(group_size=G, easy_keep=0.5, freeze_after=None, zero_target=None)
    sampler = sampler_for(n, policy)
    outcomes = [[1] * G] * n
    window(sampler, outcomes, 1)
    assert abs(len(sampler.global_plan) - n * 0.5) <= 1
    plan = sampler.global_plan
    window(sampler, [[1] * G if i in set(plan.tolist()) else None for i in range(n)], 2)
    # half the prompts now have a run of 2 (keep 0.25), half a run of 1 (keep 0.5)
    runs = sampler.store.group_streak
    expected = np.where(runs == 2, 0.25, 0.5).sum()
    assert abs(len(sampler.global_plan) - expected) <= 1
    drawn = np.bincount(sampler.global_plan, minlength=n)
    assert drawn.max() == 1
    share2 = drawn[runs == 2].mean()
    assert abs(share2 - 0.25) < 0.05  # the draws follow the keep probabilities, not a fixed stripe


def test_hopeless_prompts_keep_exploring_and_come_back():
    n = 2000
    policy = PromptPolicy(group_size=G, hard_keep=0.5, explore=0.05, zero_target=None, recheck=0.0)
    sampler = sampler_for(n, policy)
    drawn = np.zeros(n, dtype=np.int64)
    for epoch in range(1, 12):
        plan = sampler.global_plan
        drawn += np.bincount(plan, minlength=n)
        solvable = (
            set(range(100)) if epoch >= 6 else set()
        )  # the first 100 become solvable at epoch 6
        window(sampler, _groups(plan, n, solvable), epoch)
    # the runs grow only when a skipped prompt is explored again: keep 0.5 ** run, never < explore
    store = sampler.store
    late = store.group_streak[100:]
    assert (late <= -3).mean() > 0.8
    weights = policy.sample_weights(store, store.bucket, sampler.phase)
    np.testing.assert_allclose(weights[100:], np.maximum(0.5 ** -late.astype(float), 0.05))
    assert len(sampler.global_plan) == round(weights.sum())
    hopeless_drawn = np.isin(sampler.global_plan, np.arange(100, n)).sum()
    assert hopeless_drawn < 0.15 * (n - 100)
    back = sampler.store.bucket[:100]
    assert (back == Bucket.FOCUS).sum() > 30  # solvable ones found again by exploration
    assert drawn.min() >= 1  # nothing was dropped for good


def _groups(plan, n, solvable):
    out = [None] * n
    for i in plan.tolist():
        out[i] = [1, 0, 0, 0] if i in solvable else [0] * G
    return out


def test_learnability_redistributes_informative_draws():
    policy = PromptPolicy(group_size=8, learnability=1.0, max_draws=10.0)
    sampler = sampler_for(3, policy)
    window(
        sampler, [[1, 0, 1, 0, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]], 1
    )
    store = sampler.store
    w = policy.sample_weights(store, policy.classify(store), sampler.phase)
    p = store.correctness.astype(np.float64)
    learn = p * (1 - p)
    np.testing.assert_allclose(w, learn / learn.mean())
    assert w.sum() == pytest.approx(3.0) and w[0] > w[1] > 0
    half = PromptPolicy(group_size=8, learnability=0.5)
    w_half = half.sample_weights(store, half.classify(store), sampler.phase)
    np.testing.assert_allclose(w_half, 0.5 + 0.5 * learn / learn.mean())
    off = PromptPolicy(group_size=8, learnability=0.0)
    assert off.sample_weights(store, off.classify(store), sampler.phase).tolist() == [1.0, 1.0, 1.0]
    capped = PromptPolicy(group_size=8, learnability=1.0, max_draws=1.2)
    assert capped.sample_weights(
        store, capped.classify(store), sampler.phase
    ).max() == pytest.approx(1.2)


def test_frozen_prompts_are_audited_and_unfrozen_by_one_failure():
    policy = PromptPolicy(group_size=G, freeze_after=2)
    sampler = sampler_for(40, policy, audit_fraction=0.25, audit_margin=0.5)
    window(sampler, [[1] * G] * 40, 1)
    plan = set(sampler.global_plan.tolist())
    window(sampler, [[1] * G if i in plan else None for i in range(40)], 2)
    frozen = np.flatnonzero(sampler.store.bucket == Bucket.FREEZE)
    assert len(frozen) == len(plan)
    audits = sampler.audit_pending
    assert len(audits) == int(np.ceil(0.25 * len(frozen))) and set(audits.tolist()) <= set(
        frozen.tolist()
    )
    assert set(audits.tolist()) <= set(sampler.global_plan.tolist())
    forgot, kept = int(audits[0]), audits[1:]
    report_groups(sampler, [forgot], [[1, 1, 1, 0]])  # one failed completion
    report_groups(sampler, kept, [[1] * G] * len(kept))
    sampler.set_epoch(3)
    record = sampler.efficiency_report().epochs[2]
    assert record.audit_unfrozen == 1 and record.audit_reported == len(audits)
    assert sampler.store.bucket[forgot] == Bucket.FOCUS
    assert (sampler.store.bucket[kept] == Bucket.FREEZE).all()


def test_policy_config_round_trip_and_checks(tmp_path):
    policy = PromptPolicy(
        group_size=8,
        easy_keep=0.3,
        hard_keep=0.6,
        explore=0.02,
        freeze_after=None,
        learnability=0.25,
        max_draws=1.5,
        max_times_seen=100,
    )
    again = policy_from_config(json.loads(json.dumps(policy.config())))
    assert again == policy and again.rows_per_pass == 8
    sampler = sampler_for(5, policy)
    window(sampler, [[1] * 8, [0] * 8, None, [1, 0] * 4, None], 1)
    sampler.save(tmp_path / "s.safetensors")
    other = sampler_for(
        5,
        PromptPolicy(
            group_size=8,
            easy_keep=0.3,
            hard_keep=0.6,
            explore=0.02,
            freeze_after=None,
            learnability=0.25,
            max_draws=1.5,
            max_times_seen=100,
        ),
    )
    other.load(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(other.store.group_streak, sampler.store.group_streak)
    np.testing.assert_array_equal(other.global_plan, sampler.global_plan)
    with pytest.raises(ValueError, match="policy differs"):
        sampler_for(5, PromptPolicy(group_size=4)).load(tmp_path / "s.safetensors")
    for bad, message in (
        ({"group_size": 0}, "group_size must be an int >= 1 (completions per prompt), got 0"),
        ({"group_size": 2.5}, "group_size must be an int >= 1 (completions per prompt), got 2.5"),
        ({"easy_keep": 1.5}, "easy_keep must be in [0, 1], got 1.5"),
        ({"explore": -0.1}, "explore must be in [0, 1], got -0.1"),
        (
            {"freeze_after": 0},
            "freeze_after must be in [1, 127] (the store's streak saturates there) or None, got 0",
        ),
        (
            {"freeze_after": 200},
            "freeze_after must be in [1, 127] (the store's streak saturates there) or None, got 200",
        ),
        ({"learnability": 2}, "learnability must be in [0, 1], got 2.0"),
        ({"max_draws": 0.5}, "max_draws must be finite and >= 1, got 0.5"),
        ({"max_times_seen": 0}, "max_times_seen must be >= 1 or None, got 0"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            PromptPolicy(**bad)


def test_simulated_grpo_run_saves_rollouts_and_zero_variance_groups():
    """Synthetic prompts with known pass rates (a third solved, a third out of reach, a third
    learnable and improving): gekodata's plans roll out fewer groups than uniform, and a smaller
    share of its groups has zero variance."""
    n, group, epochs = 900, 8, 8
    rng_truth = np.random.default_rng(1)
    kind = rng_truth.integers(0, 3, n)  # 0 solved, 1 hopeless, 2 learnable

    def pass_rate(epoch):
        return np.select([kind == 0, kind == 1], [0.99, 0.0], 0.2 + 0.05 * epoch)

    results = {}
    for arm, policy in (("uniform", None), ("gekodata", PromptPolicy(group_size=group))):
        rng = np.random.default_rng(2)
        if policy is None:
            from gekodata import BucketPolicy

            sampler = WeightedBucketSampler(
                range(n), BucketPolicy.uniform(), num_epochs=epochs, seed=0
            )
        else:
            sampler = WeightedBucketSampler(
                range(n), policy, num_epochs=epochs, seed=0, audit_fraction=0.1
            )
        groups = zero = 0
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            plan = sampler.global_plan
            rewards = rng.random((len(plan), group)) < pass_rate(epoch)[plan, None]
            report_groups(sampler, plan, rewards.astype(np.float32))
            groups += len(plan)
            zero += int((rewards.all(1) | ~rewards.any(1)).sum())
        results[arm] = (groups, zero / groups)
    assert results["gekodata"][0] < 0.7 * results["uniform"][0]
    assert results["gekodata"][1] < results["uniform"][1] - 0.15


def test_pass_rate_history_tempers_the_skip():
    """A prompt at a middle pass rate whose group came out all wrong by chance keeps at least the
    chance that its next group has reward variance; one with a one-sided history follows GRESO."""
    g = 8
    fixed = dict(zero_target=None, recheck=0.0)  # GRESO's fixed keep rates
    informed = PromptPolicy(group_size=g, **fixed)
    plain = PromptPolicy(group_size=g, informed=False, **fixed)
    sampler = sampler_for(3, informed)
    window(sampler, [[1, 1, 1, 0, 0, 0, 0, 0], [0] * g, [1] * g], 1)
    window(sampler, [[0] * g, [0] * g, [1] * g], 2)
    store = sampler.store
    assert store.group_streak.tolist() == [-1, -2, 2]
    p = store.correctness.astype(np.float64)
    q = 1 - p**g - (1 - p) ** g
    assert q[0] > 0.5 and q[1] == 0 and q[2] == 0
    np.testing.assert_allclose(
        informed.sample_weights(store, informed.classify(store), sampler.phase), [q[0], 0.25, 0.25]
    )
    np.testing.assert_allclose(
        plain.sample_weights(store, plain.classify(store), sampler.phase), [0.5, 0.25, 0.25]
    )
    with pytest.raises(ValueError, match="informed must be a bool"):
        PromptPolicy(informed="yes")
