"""The noise guard's test, shared by the policies: which wrong samples look mislabeled.

A sample whose given label is wrong looks, to online signals, like a sample that is hard: it is
wrong, the model puts little probability on its label, and it stays so. The guard
(:func:`suspect_mask`) calls such a *candidate* (the caller's choice, e.g. HARD: wrong with most
mass on other answers) SUSPECT only when three more things hold:

1. **It stays wrong**: the store's wrong streak (consecutive wrong observations, agreeing on the
   predicted label when the loop reports ``pred``) is at least ``streak``.
2. **Its own class is learned**: the share of the *other* seen samples of its class that were
   correct at their last report is at least ``min_accuracy``. A sample of a rare class that the
   model keeps calling the majority class is wrong, confident and stable exactly like a
   mislabeled one; what tells them apart is its class: there the other samples are wrong too (the
   class is not learned yet), while a flipped label sits in a class whose other samples are right.
   Without labels in the store (:meth:`GEKOStateStore.set_labels`) the share is taken over all
   seen samples, as :class:`~gekodata.policy.BucketPolicy`'s guard always did, and a rare class
   can then be mistaken for noise; samples whose label is unknown (-1) use that global share too.
   A class with no other seen sample gives no evidence: its samples are never suspect.
3. **Its loss is not falling** (optional, ``max_progress`` given and the store tracking
   ``"progress"``): learning progress (slow loss EMA minus loss EMA) at most ``max_progress``
   times the loss EMA. A hard but learnable sample's loss falls as its class is learned; a
   mislabeled sample's loss stays flat or rises as the model grows surer of the true class.

All vectorized, O(N) (plus a sort of the labels when they are spread wider than 2^24 values).
"""

from __future__ import annotations

import numpy as np

from ..store.state_store import MAX_WRONG_STREAK, GEKOStateStore

_BINCOUNT_MAX_LABEL = 1 << 24  # labels below this are counted with bincount, others via np.unique


def check_streak(value: int) -> int:
    """A ``suspect_streak`` as an int in [1, 7] (the store's wrong streak saturates at 7)."""
    if not 1 <= int(value) <= MAX_WRONG_STREAK:
        raise ValueError(f"suspect_streak must be in [1, {MAX_WRONG_STREAK}], got {value}")
    return int(value)


def others_accuracy(store: GEKOStateStore) -> np.ndarray:
    """float64 [N]: per sample, the share of the other seen samples of its class (its label in the
    store) whose last report was correct; without labels, or for label -1, the share over all
    seen samples. NaN where there is no other seen sample to judge by."""
    seen = store.seen
    right = store.last_correct & seen
    num_seen = int(np.count_nonzero(seen))
    overall = np.count_nonzero(right) / num_seen if num_seen else np.nan
    share = np.full(store.num_samples, overall, dtype=np.float64)
    if not store.has_labels:
        return share
    labels = store.labels.astype(np.int64)
    known = labels >= 0
    if not known.any():
        return share
    if labels.max() < _BINCOUNT_MAX_LABEL:
        cls = np.where(known, labels, 0)
        num_classes = int(cls.max()) + 1
    else:
        _, cls = np.unique(np.where(known, labels, -1), return_inverse=True)
        num_classes = int(cls.max()) + 1
    counted = known & seen
    n_class = np.bincount(cls[counted], minlength=num_classes)
    right_class = np.bincount(cls[counted & right], minlength=num_classes)
    others = n_class[cls] - counted  # the sample itself does not count
    right_others = right_class[cls] - (counted & right)
    with np.errstate(invalid="ignore", divide="ignore"):
        share[known] = np.where(
            others[known] > 0, right_others[known] / np.maximum(others[known], 1), np.nan
        )
    return share


def suspect_mask(
    store: GEKOStateStore,
    candidates: np.ndarray,
    *,
    streak: int,
    min_accuracy: float,
    max_progress: float | None = None,
) -> np.ndarray:
    """bool [N]: ``candidates`` (bool [N]) that the guard holds for mislabeled (module docstring)."""
    if not candidates.any():
        return np.zeros(store.num_samples, dtype=bool)
    share = others_accuracy(store)
    with np.errstate(invalid="ignore"):
        mask = candidates & (store.wrong_streak >= streak) & (share >= min_accuracy)  # NaN fails
    if max_progress is not None and "progress" in store.tracked:
        mask &= store.learning_progress <= np.float32(max_progress) * store.loss
    return mask
