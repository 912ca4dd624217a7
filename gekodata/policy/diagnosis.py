"""What the run's own signals say about its data: mislabeled share, class balance, redundancy.

Computed from the store alone (no extra forward, O(N) vectorized), so a run can say at every epoch
what kind of data it is training on, and a policy can act on it (:class:`AutoPolicy
<gekodata.policy.AutoPolicy>` turns its noise guard on only where this finds noise):

* **mislabeled**: samples that look mislabeled: wrong at their last ``streak`` reports, the model
  putting at most ``max_confidence`` of its probability on the given label, and either in a class
  whose *other* seen samples are mostly right (``min_accuracy``) or answered, stably, as a class
  whose samples are mostly right. A flipped label sits in a class the model has learned, and the
  model keeps answering the sample's true class; a sample of a rare class that is still being
  learned is wrong too, but so are the other samples of its class. The second clause counts the
  flips *into* a class that noise dominates (a rare class receiving flipped labels), which the
  first cannot judge. Needs labels (``report(signals, idx)`` or ``report(..., label=)``): without
  them a rare class and noise look the same, and the estimate is None.
* **classes**: samples per label and the share of each class's seen samples right at their last
  report; the imbalance ratio (largest class over smallest) and the rare classes (fewer than a
  quarter of the median class's samples).
* **learned at once**: samples right at every report (two or more) and never forgotten, the share
  a selection can skip at no cost (near-duplicates, easy data). Needs the store's
  ``"forgetting"`` signal (tracked by :class:`~gekodata.policy.ForgettingPolicy` and the default).
* **still learning**: seen samples wrong at their last report and not counted as mislabeled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..store.state_store import GEKOStateStore
from .guard import NoiseGuard

RARE_SHARE = 0.25  # a class with fewer samples than this share of the median class's is rare
NOISE_TEST = NoiseGuard(streak=2, min_accuracy=0.5, max_confidence=0.2, needs_labels=True)
"""The mislabeled test: the noise guard with labels, two wrong reports in a row, at most 20% of
the probability on the given label (chosen on T3/T4 tuning seeds, docs: which policy)."""


@dataclass(frozen=True)
class DataDiagnosis:
    """The store's evidence about its data (module docstring); counts are samples.

    ``class_counts`` and ``class_accuracy`` map a label to its samples (every sample whose label
    is known) and to the share of its seen samples right at their last report; both None without
    labels, as is ``mislabeled``; ``learned_at_once`` is None when forgetting is not tracked."""

    num_samples: int
    seen: int
    labelled: int
    mislabeled: int | None
    still_learning: int
    learned_at_once: int | None
    class_counts: dict[int, int] | None
    class_accuracy: dict[int, float] | None

    @property
    def mislabeled_share(self) -> float | None:
        """Mislabeled samples over seen samples (None without labels or reports)."""
        if self.mislabeled is None or not self.seen:
            return None
        return self.mislabeled / self.seen

    @property
    def learned_at_once_share(self) -> float | None:
        return (
            None
            if self.learned_at_once is None or not self.seen
            else self.learned_at_once / self.seen
        )

    @property
    def still_learning_share(self) -> float | None:
        return self.still_learning / self.seen if self.seen else None

    @property
    def rare_classes(self) -> list[int]:
        """Labels with fewer samples than a quarter of the median class's."""
        if not self.class_counts:
            return []
        median = float(np.median(list(self.class_counts.values())))
        return [c for c, n in self.class_counts.items() if n < RARE_SHARE * median]

    @property
    def imbalance(self) -> float | None:
        """Largest class's samples over the smallest's (None without labels)."""
        if not self.class_counts:
            return None
        counts = list(self.class_counts.values())
        return max(counts) / max(min(counts), 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the counts, the shares, and the class tables with string keys."""
        out = asdict(self)
        for key in ("class_counts", "class_accuracy"):
            if out[key] is not None:
                out[key] = {str(k): v for k, v in out[key].items()}
        out.update(
            mislabeled_share=self.mislabeled_share,
            learned_at_once_share=self.learned_at_once_share,
            still_learning_share=self.still_learning_share,
            imbalance=self.imbalance,
            rare_classes=self.rare_classes,
        )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataDiagnosis:
        """What :meth:`to_dict` wrote."""
        fields = {k: data[k] for k in cls.__dataclass_fields__}
        for key in ("class_counts", "class_accuracy"):
            if fields[key] is not None:
                fields[key] = {int(k): v for k, v in fields[key].items()}
        return cls(**fields)

    def lines(self) -> list[str]:
        """The diagnosis in words, one finding a line."""
        if not self.seen:
            return ["data: nothing reported yet"]
        share = self.mislabeled_share
        out = [
            f"data: {self.seen} of {self.num_samples} samples seen"
            + (f", {self.labelled} with labels" if self.labelled else ", no labels reported")
        ]
        if share is None:
            out.append(
                "  mislabeled: unknown (report labels: report(signals, idx) or label=; without them a "
                "rare class and noise look the same)"
            )
        else:
            out.append(
                f"  mislabeled: {share:.1%} look mislabeled ({self.mislabeled} "
                f"sample{'' if self.mislabeled == 1 else 's'}: wrong, "
                "confident in another class, in a class otherwise learned)"
            )
        if self.class_counts:
            rare = self.rare_classes
            worst = (
                min(self.class_accuracy.items(), key=lambda kv: kv[1])
                if self.class_accuracy
                else None
            )
            out.append(
                f"  classes: {len(self.class_counts)}, imbalance {self.imbalance:.1f}x"
                + (f", rare: {rare}" if rare else "")
                + (f"; least learned: class {worst[0]} at {worst[1]:.1%}" if worst else "")
            )
        if self.learned_at_once is not None:
            out.append(
                f"  learned at once and never forgotten: {self.learned_at_once_share:.1%} "
                "(redundant or easy samples; skipping them is cheap)"
            )
        out.append(f"  still being learned: {self.still_learning_share:.1%} of seen samples")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def class_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the classes present, int64 [K] sorted; each label's position among them, int64 [n]) for
    known labels (int [n], >= 0): a bincount for labels below 2^24 (O(n)), a sort above."""
    if len(labels) and int(labels.max()) < 1 << 24:
        present = np.bincount(labels) > 0
        return np.flatnonzero(present), (np.cumsum(present) - 1)[labels]
    classes, inverse = np.unique(labels, return_inverse=True)
    return classes, inverse.astype(np.int64)


def _answered_as_learned(
    store: GEKOStateStore,
    wrong: np.ndarray,
    test: NoiseGuard,
    classes: np.ndarray,
    learned: np.ndarray,
) -> np.ndarray:
    """bool [N]: ``wrong`` samples of known label that pass ``test``'s streak and confidence tests
    and whose stable predicted label (``pred_label``) is one of ``classes`` (int64 [K], sorted)
    marked ``learned`` (bool [K]). All False without predicted labels."""
    out = np.zeros(store.num_samples, dtype=bool)
    if "pred_label" not in store.columns or not len(classes):
        return out
    pred = store.predicted.astype(np.int64)
    candidate = wrong & (store.labels >= 0) & (pred >= 0) & store.wrong_streak_at_least(test.streak)
    if test.max_confidence < 1.0:
        candidate &= ~store.confidence_above(test.max_confidence)
    answered = pred[candidate]
    at = np.minimum(np.searchsorted(classes, answered), len(classes) - 1)
    out[candidate] = (classes[at] == answered) & learned[at]
    return out


def diagnose(store: GEKOStateStore, test: NoiseGuard = NOISE_TEST) -> DataDiagnosis:
    """The store's :class:`DataDiagnosis`; ``test`` says which wrong samples look mislabeled."""
    seen = store.seen
    num_seen = int(np.count_nonzero(seen))
    wrong = seen & ~store.last_correct
    labelled, counts, accuracy, mislabeled = 0, None, None, None
    suspect = np.zeros(store.num_samples, dtype=bool)
    if store.has_labels:
        labels = store.labels
        known = labels >= 0
        labelled = int(np.count_nonzero(known))
        if labelled:
            classes, inverse = class_index(labels[known])
            n = np.bincount(inverse, minlength=len(classes))
            seen_known = seen[known]
            n_seen = np.bincount(inverse[seen_known], minlength=len(classes))
            n_right = np.bincount(
                inverse[seen_known & store.last_correct[known]], minlength=len(classes)
            )
            learned_class = (n_seen > 0) & (n_right >= test.min_accuracy * np.maximum(n_seen, 1))
            suspect = test.suspects(store, wrong) | _answered_as_learned(
                store, wrong, test, classes, learned_class
            )
            mislabeled = int(np.count_nonzero(suspect))
            counts = {int(c): int(k) for c, k in zip(classes, n)}
            accuracy = {int(c): float(r / s) for c, r, s in zip(classes, n_right, n_seen) if s > 0}
    learned = None
    if "forgetting" in store.tracked:
        visits = store.visits.astype(np.int64)
        learned = int(
            np.count_nonzero(
                (visits >= 2)
                & (store.forget_count == 0)
                & (store.learned_streak.astype(np.int64) >= np.minimum(visits, 255))
            )
        )
    return DataDiagnosis(
        num_samples=store.num_samples,
        seen=num_seen,
        labelled=labelled,
        mislabeled=mislabeled,
        still_learning=int(np.count_nonzero(wrong & ~suspect)),
        learned_at_once=learned,
        class_counts=counts,
        class_accuracy=accuracy,
    )
