"""The noise guard's class-aware test (gekodata.policy.guard) in BucketPolicy: a rare class is not noise."""

import numpy as np
import pytest

from gekodata import Bucket, BucketPolicy, GEKOStateStore
from gekodata.policy.guard import others_accuracy


def test_bucket_policy_guard_judges_a_sample_against_its_own_class_when_the_store_has_labels():
    # class 0: 20 learned; class 1: 19 learned + one (39) the model calls 0 (a flipped label);
    # class 2, rare: 3 samples the model keeps calling 0
    labels = np.array([0] * 20 + [1] * 20 + [2] * 3)
    store = GEKOStateStore(len(labels))
    correct = np.ones(len(labels))
    correct[39:] = 0
    loss = np.where(correct > 0, 0.05, 3.0)
    for _ in range(3):
        store.update(
            np.arange(len(labels)), loss, np.exp(-loss), correct, np.where(correct > 0, labels, 0)
        )
    guard = BucketPolicy(noise_guard=True)
    assert np.flatnonzero(guard.classify(store) == Bucket.SUSPECT).tolist() == [
        39,
        40,
        41,
        42,
    ]  # unchanged
    np.testing.assert_allclose(others_accuracy(store), 39 / 43)
    store.set_labels(labels)
    share = others_accuracy(store)
    assert (
        share[39] == pytest.approx(1.0)
        and share[40] == pytest.approx(0.0)
        and share[0] == pytest.approx(1.0)
    )
    assert np.flatnonzero(guard.classify(store) == Bucket.SUSPECT).tolist() == [39]


@pytest.mark.parametrize("with_labels", [False, True])
def test_suspect_confidence_spares_hard_samples_that_keep_probability_on_their_label(with_labels):
    # 20 learned samples; 40 and 41 wrong three windows running with the same prediction: 40 puts
    # 0.02 on its label (a flipped label called its true class), 41 puts 0.3 there (hard, ambiguous)
    n = 42
    store = GEKOStateStore(n)
    correct = np.ones(n)
    correct[40:] = 0
    conf = np.full(n, 0.95)
    conf[40], conf[41] = 0.02, 0.3
    loss = -np.log(conf)
    for _ in range(3):
        store.update(np.arange(n), loss, conf, correct, np.where(correct > 0, 0, 1))
    if with_labels:
        store.set_labels(np.zeros(n, dtype=np.int64))
    plain = BucketPolicy(noise_guard=True).classify(store)
    assert np.flatnonzero(plain == Bucket.SUSPECT).tolist() == [40, 41]
    strict = BucketPolicy(noise_guard=True, suspect_confidence=0.1)
    codes = strict.classify(store)
    assert np.flatnonzero(codes == Bucket.SUSPECT).tolist() == [40] and codes[41] == Bucket.HARD
    # the threshold is on the stored confidence (1/255 steps): conf <= c  <=>  code <= floor(255 c)
    at = BucketPolicy(
        noise_guard=True, suspect_confidence=round(float(store.confidence[41]) * 255) / 255.0
    )
    assert np.flatnonzero(at.classify(store) == Bucket.SUSPECT).tolist() == [40, 41]
    assert BucketPolicy.from_config(strict.config()).suspect_confidence == 0.1
    with pytest.raises(ValueError, match="suspect_confidence"):
        BucketPolicy(noise_guard=True, suspect_confidence=1.5)


def test_suspect_needs_labels_guards_only_samples_of_known_label():
    # as above: 40 (flipped, conf 0.02) and 41 (conf 0.02 too) wrong three windows running
    n = 42
    store = GEKOStateStore(n)
    correct = np.ones(n)
    correct[40:] = 0
    conf = np.where(correct > 0, 0.95, 0.02)
    for _ in range(3):
        store.update(np.arange(n), -np.log(conf), conf, correct, np.where(correct > 0, 0, 1))
    policy = BucketPolicy(noise_guard=True, suspect_confidence=0.1, suspect_needs_labels=True)
    codes = policy.classify(store)
    assert (
        not (codes == Bucket.SUSPECT).any() and (codes[40:] == Bucket.HARD).all()
    )  # no labels: no guard
    labels = np.zeros(n, dtype=np.int64)
    labels[41] = -1  # unknown
    store.set_labels(labels)
    assert np.flatnonzero(policy.classify(store) == Bucket.SUSPECT).tolist() == [40]
    plain = BucketPolicy(
        noise_guard=True, suspect_confidence=0.1
    )  # label -1 judged by the global share
    assert np.flatnonzero(plain.classify(store) == Bucket.SUSPECT).tolist() == [40, 41]
    assert BucketPolicy.from_config(policy.config()).suspect_needs_labels is True


def _old_suspects(store, candidates, streak, min_accuracy, max_confidence=1.0, needs_labels=False,
                  max_progress=None):
    """The two guards before issue 20, kept as the reference: the label-free one BucketPolicy ran
    on its flag bits, and the class-aware ``suspect_mask`` it ran with labels (and the rate
    policies ran always)."""
    flags, conf = store.columns["flags"], store.columns["conf_ema"]
    conf_ok = conf <= min(int(np.floor(max_confidence * 255.0)), 255) if max_confidence < 1.0 else True
    if "label" not in store.columns and max_progress is None:
        seen = store.visits > 0
        right = ((flags & 16) != 0) & seen
        if needs_labels or not seen.any() or right.sum() / seen.sum() < min_accuracy:
            return np.zeros(len(store), dtype=bool)
        return candidates & ((flags & 0b1110_0000) >= (streak << 5)) & conf_ok
    if needs_labels:
        candidates = candidates & (store.labels >= 0)
    candidates = candidates & conf_ok
    with np.errstate(invalid="ignore"):
        mask = candidates & (store.wrong_streak >= streak) & (others_accuracy(store) >= min_accuracy)
    if max_progress is not None and "loss_slow_code" in store.columns:
        mask &= store.learning_progress <= np.float32(max_progress) * store.loss
    return mask


@pytest.mark.parametrize("seed", range(6))
def test_one_guard_gives_what_both_old_guards_gave(seed):
    from gekodata.policy.guard import NoiseGuard

    rng = np.random.default_rng(seed)
    n = int(rng.choice([7, 300, 70_000]))
    store = GEKOStateStore(n)
    store.columns["flags"][:] = rng.integers(0, 256, n)
    store.columns["conf_ema"][:] = rng.integers(0, 256, n)
    store.columns["visits"][:] = rng.integers(0, 3, n)
    if seed % 2:
        store.set_labels(rng.integers(-1, 4, n))
    if seed % 3 == 0:
        store.track("progress")
        store.columns["loss_slow_code"][:] = rng.integers(0, 40_000, n)
        store.columns["loss_ema_code"][:] = rng.integers(0, 40_000, n)
    candidates = rng.random(n) < 0.5
    for streak in (1, 3, 7):
        for accuracy in (0.0, 0.4, 0.6):
            for confidence in (1.0, 0.3):
                for needs in (False, True):
                    for progress in (None, 0.1):
                        if progress is not None and (confidence < 1.0 or needs):
                            continue  # no policy combines them
                        guard = NoiseGuard(streak, accuracy, confidence, needs, progress)
                        np.testing.assert_array_equal(
                            guard.suspects(store, candidates),
                            _old_suspects(store, candidates, streak, accuracy, confidence, needs, progress),
                        )
