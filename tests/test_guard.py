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
        store.update(np.arange(len(labels)), loss, np.exp(-loss), correct, np.where(correct > 0, labels, 0))
    guard = BucketPolicy(noise_guard=True)
    assert np.flatnonzero(guard.classify(store) == Bucket.SUSPECT).tolist() == [39, 40, 41, 42]  # unchanged
    np.testing.assert_allclose(others_accuracy(store), 39 / 43)
    store.set_labels(labels)
    share = others_accuracy(store)
    assert share[39] == pytest.approx(1.0) and share[40] == pytest.approx(0.0) and share[0] == pytest.approx(1.0)
    assert np.flatnonzero(guard.classify(store) == Bucket.SUSPECT).tolist() == [39]
