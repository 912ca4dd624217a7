"""The noise guard, once for every policy: which wrong samples look mislabeled.

A sample whose given label is wrong looks, to online signals, like a sample that is hard: it is
wrong, the model puts little probability on its label, and it stays so. The guard
(:class:`NoiseGuard`, its test :meth:`NoiseGuard.suspects`) calls such a *candidate* (the
policy's choice, e.g. HARD: wrong with most mass on other answers) SUSPECT only when these hold:

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
4. **It puts little probability on its label** (optional, ``max_confidence`` below 1): its
   stored confidence EMA is at most ``max_confidence``.
5. **Its label is known** (optional, ``needs_labels``): only samples whose label the store holds
   are judged; a store without labels then has no suspects.

The policies with a guard (:class:`~gekodata.policy.BucketPolicy`, the rate policies of
:mod:`gekodata.policy.rates`) derive from :class:`GuardedPolicy`: the settings ``noise_guard``,
``suspect_streak``, ``suspect_min_accuracy`` and ``suspect_weight`` are checked once here, SUSPECT
is drawn at ``suspect_weight`` in every phase (:meth:`GuardedPolicy.weight_table`), and each
policy names its own extra settings in its :attr:`GuardedPolicy.guard`.

All vectorized, O(N): without labels a block at a time with no N-sized temporaries but the
result; with labels over whole columns (plus a sort of the labels when they are spread wider than
2^24 values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..arguments import check_unit_interval
from ..store.blocks import blocks
from ..store.layout import MAX_WRONG_STREAK
from ..store.state_store import GEKOStateStore
from .base import SelectionPolicy
from .buckets import Bucket
from .curriculum import Phase

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


def overall_accuracy(store: GEKOStateStore) -> float:
    """The share of seen samples whose last report was correct (NaN when none is seen); a block
    at a time."""
    visits = store.visits
    seen_total = correct_total = 0
    for lo, hi in blocks(len(store)):
        seen = visits[lo:hi] > 0
        seen_total += int(np.count_nonzero(seen))
        correct_total += int(np.count_nonzero(store.last_correct_rows(lo, hi) & seen))
    return correct_total / seen_total if seen_total else math.nan


@dataclass(frozen=True)
class NoiseGuard:
    """The noise guard's settings and its test (module docstring).

    Args:
        streak: consecutive wrong observations (sync windows) a suspect needs; 1 to 7.
        min_accuracy: the share of the other seen samples of its class (of all seen samples
            without labels in the store) that must be right, in [0, 1].
        max_confidence: a suspect's stored confidence EMA is at most this; 1.0: no such test.
        needs_labels: judge only samples whose label the store knows (none without labels).
        max_progress: a suspect's learning progress is at most this share of its loss EMA
            (tested when the store tracks ``"progress"``); None: no such test.
    """

    streak: int = 2
    min_accuracy: float = 0.5
    max_confidence: float = 1.0
    needs_labels: bool = False
    max_progress: float | None = None

    def suspects(self, store: GEKOStateStore, candidates: np.ndarray) -> np.ndarray:
        """bool [N]: the ``candidates`` (bool [N]) the guard holds for mislabeled."""
        none = np.zeros(store.num_samples, dtype=bool)
        if (self.needs_labels and not store.has_labels) or not candidates.any():
            return none
        share: float | np.ndarray
        if store.has_labels:
            share = others_accuracy(store)
        else:  # one share for every sample: decide once, then a block at a time
            share = overall_accuracy(store)
            if not share >= self.min_accuracy:  # NaN fails
                return none
        mask = np.empty(store.num_samples, dtype=bool)
        for lo, hi in blocks(store.num_samples):
            part = candidates[lo:hi] & store.wrong_streak_at_least(self.streak, lo, hi)
            if self.max_confidence < 1.0:
                part &= ~store.confidence_above(self.max_confidence, lo, hi)
            mask[lo:hi] = part
        if isinstance(share, np.ndarray):
            if self.needs_labels:
                mask &= store.labels >= 0
            with np.errstate(invalid="ignore"):
                mask &= share >= self.min_accuracy  # NaN fails
        if self.max_progress is not None and "progress" in store.tracked:
            mask &= store.learning_progress <= np.float32(self.max_progress) * store.loss
        return mask


class GuardedPolicy(SelectionPolicy):
    """A policy with the noise guard (module docstring): the four settings every guarded policy
    has, checked in one place, and SUSPECT's weight in every phase. Subclasses (dataclasses)
    declare the settings as fields, call :meth:`_check_guard_settings` from ``__post_init__``
    and say in :attr:`guard` which extra tests their guard makes."""

    noise_guard: bool
    suspect_streak: int
    suspect_min_accuracy: float
    suspect_weight: float

    @property
    def guard(self) -> NoiseGuard:
        """The guard's test with this policy's settings."""
        raise NotImplementedError

    def _check_guard_settings(self) -> None:
        """Normalise and check ``noise_guard``, ``suspect_streak`` and ``suspect_min_accuracy``
        (``ValueError`` naming the first bad one); ``suspect_weight`` is the policy's to check
        (a weight for BucketPolicy, a draw rate for the rate policies)."""
        self.noise_guard = bool(self.noise_guard)
        self.suspect_streak = check_streak(self.suspect_streak)
        self.suspect_min_accuracy = check_unit_interval(
            "suspect_min_accuracy", self.suspect_min_accuracy
        )

    @property
    def learns_from_reports(self) -> bool:
        """Also True with the noise guard on (it holds samples SUSPECT from their reports)."""
        return self.noise_guard or super().learns_from_reports

    def weight_table(self, phase: Phase) -> np.ndarray:
        """The phase's weights, with ``suspect_weight`` for SUSPECT."""
        table = phase.weight_table()
        table[Bucket.SUSPECT] = self.suspect_weight
        return table

    def mark_suspects(
        self, store: GEKOStateStore, codes: np.ndarray, candidates: np.ndarray
    ) -> None:
        """With ``noise_guard``: the ``candidates`` (bool [N]) the guard holds for mislabeled get
        code SUSPECT in ``codes`` (uint8 [N]), in place."""
        if self.noise_guard:
            codes[self.guard.suspects(store, candidates)] = Bucket.SUSPECT
