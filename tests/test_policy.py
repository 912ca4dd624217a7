import re

import numpy as np
import pytest

from gekodata import PruningDataset, WeightedBucketSampler
from gekodata.policy import Bucket, BucketPolicy, Curriculum, InfoBatchPolicy, Phase
from gekodata.store.codec import LOSS_TABLE
from gekodata.store.layout import MAX_VISITS
from gekodata.store.state_store import GEKOStateStore


def store_with(loss, conf, correct, visits_each=1):
    n = len(loss)
    store = GEKOStateStore(n, loss_scale_quantile=1.0)
    for _ in range(visits_each):
        store.update(
            np.arange(n),
            np.asarray(loss, float),
            np.asarray(conf, float),
            np.asarray(correct, float),
        )
    return store


def test_geko_buckets_with_target_probability_confidence():
    # loss scale comes from the data (max 3.0 here), so tiny losses give Q near 1
    store = store_with(
        loss=[0.01, 0.6, 0.5, 3.0, 0.05],
        conf=[0.99, 0.55, 0.45, 0.05, 0.95],
        correct=[1, 1, 0, 0, 1],
    )
    codes = BucketPolicy().classify(store)
    assert [Bucket(c) for c in codes] == [
        Bucket.FREEZE,
        Bucket.LIGHT,
        Bucket.FOCUS,
        Bucket.HARD,
        Bucket.FREEZE,
    ]


def test_freeze_needs_every_condition():
    # sample 1 sets the observed loss scale (Q's lmax) to 2.0
    base = dict(loss=[0.01, 2.0], conf=[0.99, 0.1], correct=[1, 0])
    assert BucketPolicy().classify(store_with(**base))[0] == Bucket.FREEZE
    assert BucketPolicy(freeze_confidence=0.995).classify(store_with(**base))[0] == Bucket.LIGHT
    assert BucketPolicy(min_visits_to_freeze=2).classify(store_with(**base))[0] == Bucket.LIGHT
    assert (
        BucketPolicy(min_visits_to_freeze=2).classify(store_with(**base, visits_each=2))[0]
        == Bucket.FREEZE
    )
    # an unstable loss history (2.0 then 0.01) blocks FREEZE through stability
    store = GEKOStateStore(1, loss_scale_quantile=1.0)
    store.update(np.array([0]), np.array([4.0]), np.array([0.2]), np.array([0.0]))
    store.update(np.array([0]), np.array([0.01]), np.array([0.99]), np.array([1.0]))
    assert store.stability[0] < 0.8
    assert BucketPolicy(freeze_confidence=0.5, freeze_q=0.0).classify(store)[0] == Bucket.LIGHT


def test_unseen_samples_are_unseen():
    store = GEKOStateStore(3)
    store.update(np.array([1]), np.array([0.1]), np.array([0.9]), np.array([1.0]))
    codes = BucketPolicy().classify(store)
    assert codes[0] == Bucket.UNSEEN and codes[2] == Bucket.UNSEEN


def test_mountain_table_and_epoch_midpoints():
    cur = Curriculum.mountain()
    names = [p.name for p in cur.phases]
    assert names == ["WARMUP", "ASCENT", "PEAK", "DESCENT", "CONSOLIDATE"]
    peak = cur.phases[2]
    assert (peak.hard, peak.focus, peak.light, peak.freeze) == (5, 2, 0, 0)
    assert [cur.phase_for_epoch(e, 5).name for e in range(5)] == names
    assert [cur.phase_for_epoch(e, 3).name for e in range(3)] == ["ASCENT", "PEAK", "DESCENT"]
    assert cur.phase_for_epoch(99, 3).name == "CONSOLIDATE"
    assert cur.phase_at(1.0).name == "CONSOLIDATE" and cur.phase_at(0.0).name == "WARMUP"
    assert cur.phase_at(0.35).name == "PEAK"  # boundaries belong to the later phase


def test_every_phase_reached_in_a_ten_epoch_run():
    cur = Curriculum.mountain()
    assert {cur.phase_for_epoch(e, 10).name for e in range(10)} == {p.name for p in cur.phases}


@pytest.mark.parametrize(
    "phases, match",
    [
        ([Phase("a", 0.0, 0.5, 1, 1, 1)], "cover"),
        ([Phase("a", 0.1, 1.0, 1, 1, 1)], "cover"),
        ([Phase("a", 0.0, 0.4, 1, 1, 1), Phase("b", 0.5, 1.0, 1, 1, 1)], "gap"),
        ([Phase("a", 0.0, 0.6, 1, 1, 1), Phase("b", 0.5, 1.0, 1, 1, 1)], "overlap"),
        ([Phase("a", 0.0, 0.5, 1, 1, 1), Phase("a", 0.5, 1.0, 1, 1, 1)], "unique"),
        ([], "at least one"),
    ],
)
def test_bad_curricula_raise(phases, match):
    with pytest.raises(ValueError, match=match):
        Curriculum(phases)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(hard=-1, focus=1, light=1), "weight x.hard must be finite and >= 0, got -1.0"),
        (
            dict(hard=float("nan"), focus=1, light=1),
            "weight x.hard must be finite and >= 0, got nan",
        ),
        (
            dict(hard=0, focus=0, light=0),
            "phase 'x' gives every bucket weight 0 and would train nothing",
        ),
    ],
)
def test_bad_phase_weights_raise(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Phase("x", 0.0, 1.0, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(freeze_confidence=1.2), "freeze_confidence must be in [0, 1], got 1.2"),
        (dict(freeze_stability=-0.1), "freeze_stability must be in [0, 1], got -0.1"),
        (dict(freeze_q=2), "freeze_q must be in [0, 1], got 2.0"),
        (dict(hard_confidence=-1), "hard_confidence must be in [0, 1], got -1.0"),
        (dict(min_visits_to_freeze=0), "min_visits_to_freeze must be >= 1, got 0"),
        (dict(max_times_seen=0), "max_times_seen must be >= 1 or None, got 0"),
        (dict(curriculum="mountain"), "curriculum must be a Curriculum, got str"),
    ],
)
def test_bad_policy_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BucketPolicy(**kwargs)


def test_user_phases_and_constant_schedule():
    cur = Curriculum(
        [
            Phase("early", 0.0, 0.5, hard=1, focus=1, light=1),
            Phase("late", 0.5, 1.0, hard=4, focus=1, light=0, freeze=0.5),
        ]
    )
    table = cur.phase_for_epoch(3, 4).weight_table()
    assert table[Bucket.HARD] == 4 and table[Bucket.FREEZE] == 0.5 and table[Bucket.UNSEEN] == 4
    const = Curriculum.constant()
    assert [const.phase_for_epoch(e, 4).name for e in range(4)] == ["CONSTANT"] * 4


def test_presets():
    aggressive = BucketPolicy.preset("aggressive")
    assert aggressive.freeze_confidence == 0.90
    phase = aggressive.curriculum.phases[0]
    assert (phase.hard, phase.focus, phase.light) == (5, 2, 0)
    assert BucketPolicy.preset("BALANCED").min_visits_to_freeze == 2
    conservative = BucketPolicy.preset("conservative", max_times_seen=7)
    assert conservative.freeze_confidence > 0.9 and conservative.max_times_seen == 7
    with pytest.raises(ValueError, match="unknown preset"):
        BucketPolicy.preset("reckless")


def test_sample_weights_zero_for_pruned_and_overseen():
    store = store_with(loss=[2.0, 2.0, 2.0], conf=[0.1, 0.1, 0.1], correct=[0, 0, 0], visits_each=3)
    store.set_pruned(np.array([0]))
    store.visits[1] = 1  # the public view writes through
    policy = BucketPolicy(max_times_seen=3)
    codes = policy.classify(store)
    weights = policy.sample_weights(store, codes, policy.curriculum.phases[2])
    assert weights.tolist() == [0.0, 5.0, 0.0]


def test_config_roundtrip():
    policy = BucketPolicy.preset("balanced", max_times_seen=9)
    clone = BucketPolicy.from_config(policy.config())
    assert clone.config() == policy.config()


@pytest.mark.parametrize(
    "make", [lambda m: BucketPolicy(max_times_seen=m), lambda m: InfoBatchPolicy(max_times_seen=m)]
)
def test_max_times_seen_above_the_visits_cap_is_refused(make):
    # visits are uint16 and saturate at MAX_VISITS: 70000 could never fire (it was accepted before)
    with pytest.raises(ValueError, match="saturates at 65535"):
        make(MAX_VISITS + 1)
    with pytest.raises(ValueError, match=">= 1"):
        make(0)
    assert make(MAX_VISITS).max_times_seen == MAX_VISITS
    # the cap is reachable: a saturated count is at the limit
    store = GEKOStateStore(2)
    store.visits[:] = [MAX_VISITS - 1, 0]
    store.update(np.array([0, 0, 1]), np.ones(3), np.full(3, 0.5), np.zeros(3))
    policy = make(MAX_VISITS)
    weights = policy.sample_weights(store, policy.classify(store), policy.curriculum.phases[0])
    assert weights[0] == 0.0 and weights[1] > 0.0


def reference_classify(policy, store):
    """BucketPolicy.classify as it was written over decoded float columns (the rules' text)."""
    visits, correct = store.visits, store.last_correct
    # the stored 1/255 steps, recovered exactly from the decoded confidence
    conf_255 = np.rint(store.confidence.astype(np.float64) * 255.0)
    frozen = conf_255 > policy.freeze_confidence * 255.0
    frozen &= correct
    frozen &= store.loss_std < np.float32(1.0 - policy.freeze_stability)
    frozen &= store.q_value >= np.float32(policy.freeze_q)
    if policy.min_visits_to_freeze > 1:
        frozen &= visits >= policy.min_visits_to_freeze
    codes = np.where(
        conf_255 < (1.0 - policy.hard_confidence) * 255.0,
        np.uint8(Bucket.HARD),
        np.uint8(Bucket.FOCUS),
    )
    codes[correct] = Bucket.LIGHT
    codes[frozen] = Bucket.FREEZE
    seen = visits > 0
    codes[~seen] = Bucket.UNSEEN
    if policy.noise_guard and seen.any():
        if np.count_nonzero(correct & seen) / np.count_nonzero(seen) >= policy.suspect_min_accuracy:
            codes[(codes == Bucket.HARD) & (store.wrong_streak >= policy.suspect_streak)] = (
                Bucket.SUSPECT
            )
    return codes


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"noise_guard": True, "suspect_min_accuracy": 0.0},
        {"min_visits_to_freeze": 3},
        {
            "freeze_confidence": 1.0,
            "freeze_stability": 1.0,
            "freeze_q": 1.0,
            "hard_confidence": 1.0,
        },
        {
            "freeze_confidence": 0.0,
            "freeze_stability": 0.0,
            "freeze_q": 0.0,
            "hard_confidence": 0.0,
        },
        {
            "freeze_confidence": 0.5,
            "freeze_stability": 0.25,
            "freeze_q": 0.5,
            "hard_confidence": 0.5,
        },
    ],
)
def test_classify_on_raw_columns_matches_the_rules_on_decoded_values(settings):
    """Integer thresholds on the raw columns (uint8 confidence, loss codes, float16 bits) give
    exactly the buckets the rules give on decoded floats, at and around every threshold."""
    rng = np.random.default_rng(11)
    n = 200_000  # several blocks
    store = GEKOStateStore(n)
    cols = store.columns
    cols["conf_ema"][:] = rng.integers(0, 256, n)
    cols["flags"][:] = rng.integers(0, 256, n)
    cols["visits"][:] = rng.integers(0, 4, n)
    near = np.searchsorted(LOSS_TABLE, np.float32([0.0, 0.2, 0.5, 0.75, 1.0]))
    cols["loss_std_code"][:] = np.where(
        rng.random(n) < 0.5,
        rng.choice(np.concatenate([near - 1, near, near + 1]), n),
        rng.integers(0, 65536, n),
    ).clip(0, 65535)
    q = rng.choice(
        np.array(
            [
                0.0,
                -0.0,
                0.5,
                0.8,
                1.0,
                np.nextafter(np.float16(0.8), np.float16(0)),
                np.nextafter(np.float16(0.8), np.float16(1)),
                np.nan,
                np.inf,
            ],
            dtype=np.float16,
        ),
        n,
    )
    cols["q_value"][:] = np.where(rng.random(n) < 0.5, q, rng.random(n).astype(np.float16))
    policy = BucketPolicy(**settings)
    np.testing.assert_array_equal(policy.classify(store), reference_classify(policy, store))


def test_default_policy_is_auto_policy():
    from gekodata import AutoPolicy, default_policy

    policy = default_policy()
    assert policy.config() == AutoPolicy().config() and policy.noise_guard
    assert default_policy() is not policy  # a fresh object each time: a sampler may not share it
    sampler = WeightedBucketSampler(PruningDataset(list(range(10))), num_epochs=2)
    assert sampler.policy.config() == policy.config()
