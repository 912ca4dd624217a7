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
