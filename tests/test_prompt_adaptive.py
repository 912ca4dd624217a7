"""PromptPolicy's run state (issue 23): adaptive keep rates, re-checks of out-of-reach prompts by
the thaw rate and the time since their last rollout, tag recall; exact resume at every save
point; group accounting (unscored completions, pieces that do not add up to a group)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from support.save_points import run_with_save_point

from gekodata import PromptPolicy, WeightedBucketSampler
from gekodata.policy import Bucket, policy_from_config
from gekodata.policy.prompt_state import KEEP_BOUNDS
from gekodata.prompts import check_groups, report_groups, reward_reporter

G = 8


def epoch_of(sampler, outcome, epoch):
    """Roll out the plan with ``outcome(prompts) -> bool [P, G]``, report, then plan ``epoch``."""
    plan = np.asarray(sampler.global_plan)
    report_groups(sampler, plan, outcome(plan).astype(np.float32))
    sampler.set_epoch(epoch)


def test_keep_rates_steer_toward_the_target_share_per_direction():
    """Half the prompts always right, half always wrong: far more zero-variance groups than the
    target, so both keep rates fall (by at most KEEP_STEP per epoch, never below the floor); with
    every group mixed they rise back."""
    n = 400
    policy = PromptPolicy(group_size=G, zero_target=0.2, hard_share=0.5, freeze_after=None)
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=20, seed=0)
    right = np.arange(n) < n // 2
    rates = [policy.keep_rates]
    for epoch in range(1, 6):
        epoch_of(sampler, lambda p: np.repeat(right[p, None], G, 1), epoch)
        rates.append(policy.keep_rates)
    rates_a = np.array(rates)
    assert (np.diff(rates_a, axis=0) <= 0).all() and (rates_a[1:] < rates_a[:-1]).any()
    assert (rates_a[1:] >= rates_a[:-1] / 2 - 1e-12).all() and rates_a.min() >= KEEP_BOUNDS[0]
    assert rates_a[-1].tolist() == [KEEP_BOUNDS[0]] * 2
    mixed = np.tile(np.arange(G) % 2 == 0, (1, 1))
    for epoch in range(6, 9):
        epoch_of(sampler, lambda p: np.repeat(mixed, len(p), 0), epoch)
    assert policy.keep_rates[0] > KEEP_BOUNDS[0] and policy.keep_rates[1] > KEEP_BOUNDS[0]
    fixed = PromptPolicy(group_size=G, zero_target=None)
    other = WeightedBucketSampler(range(n), fixed, num_epochs=20, seed=0)
    for epoch in range(1, 4):
        epoch_of(other, lambda p: np.repeat(right[p, None], G, 1), epoch)
    assert fixed.keep_rates == (0.5, 0.5)  # zero_target=None: GRESO's fixed rates


def out_of_reach_run(policy, n=200, thaw_from=3, epochs=8):
    """Every prompt all wrong until epoch ``thaw_from``; from then the even prompts are mixed."""
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=epochs + 1, seed=1)
    for epoch in range(1, epochs + 1):
        live = epoch - 1 >= thaw_from

        def outcome(p, live=live):
            mixed = live & (p % 2 == 0)
            return mixed[:, None] & (np.arange(G) % 2 == 0)[None, :]

        epoch_of(sampler, outcome, epoch)
    return sampler


def test_out_of_reach_prompts_are_rechecked_as_others_thaw():
    """The thaw rate (out-of-reach prompts rolled out whose group was mixed) is 0 while nothing
    thaws, so hopeless prompts cost only GRESO's rate and the floor; once prompts thaw, the ones
    not tried for longer get the larger re-check weight."""
    quiet = PromptPolicy(group_size=G, zero_target=None)
    s = out_of_reach_run(quiet, thaw_from=99, epochs=6)
    assert quiet.thaw_rate == 0.0
    hard = s.store.bucket == Bucket.HARD
    w = quiet.sample_weights(s.store, s.store.bucket, s.phase)
    z = s.store.group_streak.astype(np.float64)
    assert hard.all()
    np.testing.assert_allclose(w, np.maximum(0.5**-z, quiet.explore))  # GRESO's rate, the floor
    busy = PromptPolicy(group_size=G, zero_target=None, recheck=1.0)
    s = out_of_reach_run(busy, thaw_from=3, epochs=6)
    assert busy.thaw_rate > 0.1
    state = busy._state
    codes = s.store.bucket
    rows = np.flatnonzero(codes == Bucket.HARD)
    gap = state.epochs_since_tried(rows)
    w = busy.sample_weights(s.store, codes, s.phase)[rows]
    expected = np.minimum(1.0, 1.0 * (1.0 - (1.0 - busy.thaw_rate) ** gap))
    assert (w >= expected - 1e-12).all() and len(np.unique(gap)) > 1
    longer = gap == gap.max()
    assert w[longer].min() >= w[~longer].min()


def test_a_hard_prompt_with_a_recent_success_is_not_out_of_reach():
    """Out of reach = last group all wrong and no right completion left in the pass-rate EMA. A
    prompt at a low pass rate (a right completion now and then) that failed its last group is
    hard, not out of reach: its next mixed group is no thaw and raises no re-checks."""
    from gekodata.policy.prompt_state import out_of_reach

    n = 20
    policy = PromptPolicy(group_size=G, zero_target=None, recheck=4.0)
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=10, seed=0)
    one_right = np.zeros((n, G))
    one_right[:, 0] = 1.0
    for epoch, groups in enumerate((one_right, np.zeros((n, G)), one_right), start=1):
        report_groups(sampler, np.arange(n), groups)  # mixed, all wrong, mixed again
        sampler.set_epoch(epoch)
    assert policy.thaw_rate == 0.0  # the all-wrong window had a success in memory
    report_groups(sampler, np.arange(n), np.zeros((n, G)))
    assert not out_of_reach(sampler.store).any()
    never = WeightedBucketSampler(range(n), PromptPolicy(group_size=G), num_epochs=3, seed=0)
    report_groups(never, np.arange(n), np.zeros((n, G)))
    never.set_epoch(1)
    assert out_of_reach(never.store).all()  # all wrong and never right: out of reach


def test_tags_recall_the_neighbours_of_a_prompt_that_thawed():
    n = 40
    tags = np.arange(n) // 10  # 4 topics
    policy = PromptPolicy(group_size=G, zero_target=None, recheck=0.0, tags=tags)
    sampler = WeightedBucketSampler(range(n), policy, num_epochs=10, seed=0)
    for epoch in (1, 2):  # every prompt out of reach in two windows running
        report_groups(sampler, np.arange(n), np.zeros((n, G)))
        sampler.set_epoch(epoch)
    report_groups(sampler, np.array([0]), np.array([[1, 0] * (G // 2)]))  # prompt 0 thaws
    sampler.set_epoch(3)
    w = policy.sample_weights(sampler.store, sampler.store.bucket, sampler.phase)
    topic0 = (tags == 0) & (sampler.store.group_streak < 0)
    assert topic0.any() and (w[topic0] == 1.0).all()
    assert (w[(tags != 0)] < 1.0).all()  # the other topics stay skipped
    with pytest.raises(ValueError, match="tags must be 1-D integers"):
        PromptPolicy(group_size=G, tags=np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="tags has 3 entries"):
        WeightedBucketSampler(range(5), PromptPolicy(group_size=G, tags=[0, 1, 2]), num_epochs=2)


def test_config_round_trip_carries_the_new_settings_and_the_tags_digest(tmp_path):
    tags = np.arange(30) // 3
    policy = PromptPolicy(group_size=G, zero_target=0.3, hard_share=0.7, recheck=3.0, tags=tags)
    again = policy_from_config(json.loads(json.dumps(policy.config())))
    assert again.config() == policy.config() and policy.config()["tags_digest"]
    sampler = WeightedBucketSampler(range(30), policy, num_epochs=3, seed=0)
    epoch_of(sampler, lambda p: np.zeros((len(p), G), dtype=bool), 1)
    sampler.save(tmp_path / "s.safetensors")
    other = WeightedBucketSampler(
        range(30), PromptPolicy(group_size=G, zero_target=0.3, hard_share=0.7, recheck=3.0,
                                tags=tags[::-1].copy()), num_epochs=3, seed=0
    )
    with pytest.raises(ValueError, match="tags_digest"):
        other.load(tmp_path / "s.safetensors")
    for bad in ({"zero_target": 1.5}, {"hard_share": -0.1}, {"recheck": -1.0}):
        with pytest.raises(ValueError):
            PromptPolicy(group_size=G, **bad)
    state = policy.state_arrays()
    broken = dict(state, keep=np.array([2.0, 0.5]))
    with pytest.raises(ValueError, match="keep rates"):
        policy.load_state_arrays(broken)
    np.testing.assert_array_equal(policy.state_arrays()["keep"], state["keep"])  # unchanged


def test_one_policy_object_serves_one_run():
    policy = PromptPolicy(group_size=G)
    first = WeightedBucketSampler(range(20), policy, num_epochs=4, seed=0)
    epoch_of(first, lambda p: np.ones((len(p), G), dtype=bool), 1)
    assert policy.keep_rates != (0.5, 0.5)
    fresh = WeightedBucketSampler(range(20), policy, num_epochs=4, seed=0)  # a new run: restarts
    assert policy.keep_rates == (0.5, 0.5)
    report_groups(fresh, np.arange(3), np.ones((3, G)))
    with pytest.raises(ValueError, match="one PromptPolicy per sampler"):
        first.set_epoch(2)


# ------------------------------------------------------------------------- exact resume
N, EPOCHS, BATCH = 60, 4, 7


def outcome_of(idx, epoch, step):
    """Deterministic groups: a third right, a third wrong, a third mixed, shifting with the
    epoch, so that keep rates, thaws and streaks all move."""
    kind = (idx * 7 + epoch * 3 + (idx // 20) * epoch) % 3
    lanes = np.arange(G)[None, :]
    return np.where(kind[:, None] == 0, True, np.where(kind[:, None] == 1, False, lanes % 2 == 0))


def new_sampler(sync_every):
    policy = PromptPolicy(group_size=G, recheck=2.0, tags=np.arange(N) // 10)
    return WeightedBucketSampler(
        range(N), policy, num_epochs=EPOCHS, seed=5, sync_every=sync_every, audit_fraction=0.2
    )


def run(sync_every, save_at=None, tmp_path=None):
    def report(sampler, idx, epoch, step):
        report_groups(sampler, idx, outcome_of(idx, epoch, step).astype(np.float32))

    plans, sampler = run_with_save_point(
        lambda: new_sampler(sync_every), report, EPOCHS, BATCH, save_at, tmp_path
    )
    return plans, sampler.store.state_dict(), sampler.policy.state_arrays()


@pytest.mark.parametrize("sync_every", [None, 2])
def test_every_save_point_leaves_selection_unchanged(tmp_path, sync_every):
    plans, store, state = run(sync_every)
    assert len({len(p) for p in plans}) > 1  # epochs shrink: selection is at work
    points = [(e, s) for e, p in enumerate(plans) for s in range(-(-len(p) // BATCH) + 1)]
    for point in points:
        plans_b, store_b, state_b = run(sync_every, point, tmp_path)
        for a, b in zip(plans, plans_b):
            np.testing.assert_array_equal(a, b, err_msg=str(point))
        for name, column in store["columns"].items():
            np.testing.assert_array_equal(column, store_b["columns"][name], err_msg=name)
        assert state.keys() == state_b.keys()
        for name, array in state.items():
            np.testing.assert_array_equal(array, state_b[name], err_msg=f"{name} at {point}")


# ------------------------------------------------------------------------- group accounting
def test_unscored_completions_through_the_reward_reporter_start_no_streak():
    """TRL passes None for completions a reward function does not score; a prompt left with one
    scored completion in the window is not judged, one with two alike is."""
    sampler = WeightedBucketSampler(range(3), PromptPolicy(group_size=4), num_epochs=2)

    def reward(completions, idx, **kw):
        table = {0: [1.0, None, None, None], 1: [0.0, float("nan"), 0.0, None], 2: [1.0, 0.0, 1.0, 1.0]}
        return [table[i][k % 4] for k, i in enumerate(idx)]

    wrapped = reward_reporter(sampler, reward)
    wrapped(completions=[""] * 12, idx=[0] * 4 + [1] * 4 + [2] * 4)
    sampler.flush()
    assert sampler.store.group_streak.tolist() == [0, -1, 0]
    assert sampler.store.visits.tolist() == [1, 2, 4]


def test_pieces_that_do_not_add_up_to_a_group_warn():
    sampler = WeightedBucketSampler(range(6), PromptPolicy(group_size=8), num_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report_groups(sampler, np.arange(3), np.ones((3, 4)))  # half groups ...
        report_groups(sampler, np.arange(3), np.zeros((3, 4)))  # ... completed in the window
        report_groups(sampler, np.array([4]), np.full((1, 4), np.nan))  # unscored still count
        report_groups(sampler, np.array([4]), np.ones((1, 4)))
        sampler.set_epoch(1)
        report_groups(sampler, np.arange(2), np.ones((2, 8)))  # closes epoch 0's window: whole
        assert check_groups(sampler) == 0
    report_groups(sampler, np.arange(3), np.ones((3, 4)))
    sampler.flush()
    with pytest.warns(UserWarning, match=r"3 prompts got a number of completions .* group_size=8"):
        report_groups(sampler, np.arange(2), np.ones((2, 8)))  # the next window: the last one was half
    report_groups(sampler, np.array([5]), np.ones((1, 3)))
    with pytest.warns(UserWarning, match="prompt 5: 3"):
        assert check_groups(sampler) == 1  # prompts 0 and 1 whole (8 each), prompt 5 not


def test_importing_the_grpo_sampler_does_not_import_trl():
    code = "import sys, gekodata.hf; from gekodata.hf import GroupedPlanSampler; print('trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
