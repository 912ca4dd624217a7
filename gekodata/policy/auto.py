"""`AutoPolicy`: the default. Skip what is learned, keep rare classes, guard against noisy labels
only where the run's own diagnosis finds them.

A user cannot see whether their labels are noisy, their classes imbalanced or their samples
redundant, and each older policy was right on some of those and wrong on others (the mountain
trains mostly flipped labels at PEAK; a noise guard without labels starves rare classes; a guard
with a loose test starves the hard samples of confusable classes). This policy reads the evidence
each epoch (:mod:`gekodata.policy.diagnosis`) and acts only on it:

* **skip what is learned and never forgotten** (:class:`~gekodata.policy.ForgettingPolicy`'s
  rule: ``min_visits`` reports, the last ``min_learned`` right, never forgotten), drawn again at
  ``audit_weight`` so a skipped sample the model forgets comes back; every other sample trains
  once per epoch: no starving epochs, no boost.
* **rare classes are never skipped** (labels known): a class with fewer than a quarter of the
  median class's samples trains in full; it costs few passes and is where accuracy is fragile.
* **noise guard only where there is noise**: with labels, the samples that look mislabeled (wrong
  twice running, at most ``suspect_confidence`` of the probability on their label, in a class whose
  other samples are mostly right) are drawn at ``suspect_weight`` (a re-check, not a ban), and
  only while they are at least ``noise_min_share`` of the seen samples. Clean data has a few such
  samples (hard ones in confusable classes); demoting them cost accuracy there.

Without labels (causal LM, regression, a loop that reports ``loss, conf, correct`` only) this is
the forgetting rule alone: no guard, no class protection. How each setting was chosen, and the
results against random subsets and same-budget runs on every task and variant: docs, "Which
policy for which data".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arguments import check_unit_interval
from ..store.state_store import GEKOStateStore
from .buckets import Bucket
from .diagnosis import RARE_SHARE, class_index
from .forgetting import ForgettingPolicy
from .guard import NoiseGuard


@dataclass
class AutoPolicy(ForgettingPolicy):
    """The default policy (module docstring). ``min_visits``, ``min_learned``,
    ``max_forgetting``, ``audit_weight``, ``suspect_weight``, ``rescale``, ``anneal_fraction``
    and ``max_times_seen``: as :class:`~gekodata.policy.ForgettingPolicy`.

    Args:
        noise_guard: demote samples that look mislabeled while they are at least
            ``noise_min_share`` of the seen samples (needs labels in the store).
        noise_min_share: the share of seen samples that must look mislabeled for the guard to
            act, in [0, 1].
        suspect_confidence: a sample looks mislabeled only with at most this much of the
            probability on its label (confidence EMA), in [0, 1].
        suspect_streak: wrong reports in a row it needs (1 to 7).
        suspect_min_accuracy: the share of the other seen samples of its class that must be right.
        protect_rare: never skip samples of rare classes (labels known).
    """

    audit_weight: float = 0.4
    suspect_progress: float | None = None
    noise_min_share: float = 0.05
    suspect_confidence: float = 0.1
    protect_rare: bool = True

    KIND = "auto"

    def _check_own(self) -> None:
        super()._check_own()
        self.noise_min_share = check_unit_interval("noise_min_share", self.noise_min_share)
        self.suspect_confidence = check_unit_interval("suspect_confidence", self.suspect_confidence)
        self.protect_rare = bool(self.protect_rare)

    @property
    def guard(self) -> NoiseGuard:
        """The mislabeled test: labels needed, confidence at most ``suspect_confidence``."""
        return NoiseGuard(
            streak=self.suspect_streak,
            min_accuracy=self.suspect_min_accuracy,
            max_confidence=self.suspect_confidence,
            needs_labels=True,
            max_progress=self.suspect_progress,
        )

    def _codes(self, store: GEKOStateStore, wrong_confident: np.ndarray) -> np.ndarray:
        """The forgetting rule's codes, with rare classes (labels known) kept out of FREEZE."""
        codes = super()._codes(store, wrong_confident)
        if self.protect_rare and store.has_labels:
            codes[rare_class_members(store.labels) & (codes == Bucket.FREEZE)] = Bucket.LIGHT
        return codes

    def mark_suspects(
        self, store: GEKOStateStore, codes: np.ndarray, candidates: np.ndarray
    ) -> None:
        """SUSPECT for every wrong seen sample the guard holds mislabeled (not only the
        confident-wrong ``candidates``: the guard's own confidence test decides), and only while
        they are at least ``noise_min_share`` of the seen samples; needs labels."""
        if not (self.noise_guard and store.has_labels):
            return
        seen = store.seen
        suspect = self.guard.suspects(store, seen & ~store.last_correct)
        num_seen = int(np.count_nonzero(seen))
        if num_seen and np.count_nonzero(suspect) >= self.noise_min_share * num_seen:
            codes[suspect] = Bucket.SUSPECT


def rare_class_members(labels: np.ndarray) -> np.ndarray:
    """bool [N]: samples whose label (int [N], -1 unknown) is a rare class, one with fewer samples
    than :data:`~gekodata.policy.diagnosis.RARE_SHARE` of the median class's."""
    known = labels >= 0
    out = np.zeros(len(labels), dtype=bool)
    if not known.any():
        return out
    _, inverse = class_index(labels[known])
    counts = np.bincount(inverse)
    rare = counts < RARE_SHARE * float(np.median(counts))
    out[known] = rare[inverse]
    return out
