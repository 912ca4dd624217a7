"""GEKO's bucket rules and weights: :class:`BucketPolicy`, its presets and the noise guard.

GEKO sorts samples into four buckets by correctness, confidence and learning quality:

* FREEZE: correct, confident, stable and high Q-value: mastered, weight 0 (skipped).
* LIGHT: correct but not mastered.
* FOCUS: wrong, near miss.
* HARD: wrong and far off ("confident-wrong").
* SUSPECT (only with ``BucketPolicy(noise_guard=True)``): HARD samples that look mislabeled;
  they lose HARD's boost (see "Noise guard" below).

**Confidence convention.** gekodata's confidence is the probability the model gives the *target*
(Dataset Cartography's convention; for a correct sample it equals GEKO's max-softmax). GEKO tested
wrong samples with its max-softmax ("confident in a wrong answer" = conf > 0.60). With target
probabilities that test reads ``1 - conf > hard_confidence``: the model puts more than 60% of its
mass on wrong answers. Samples with no report yet are UNSEEN.

**Weights.** Bucket weights follow a :class:`~gekodata.policy.Curriculum` over the run's
progress, by default GEKO's five-phase mountain (:meth:`Curriculum.mountain`); the
:meth:`BucketPolicy.preset` configurations and :meth:`BucketPolicy.uniform` use one constant
phase.

**Noise guard.** GEKO boosts confident-wrong samples 3-5x, but on real data many of them are
label errors (Dataset Cartography's "hard-to-learn" region; RHO-LOSS: a high loss is not the
same as learnable), so the boost amplifies wrong labels. The guard separates "hard but
learnable" from "probably mislabeled" with online signals only, all from reports the loop makes
anyway: a sample is SUSPECT when

1. it is HARD: wrong, and the model puts little probability on the given label;
2. its last ``suspect_streak`` (default 2) observations were all wrong (the store's wrong
   streak, one observation per sync window: see the end of this docstring) and, when the loop
   reports predicted labels, agreed on the *same* wrong label: the model keeps
   answering one other class, stably, instead of drifting towards the given label as it does for
   hard but learnable samples (whose wrong predictions wander and whose target probability
   rises). On the noise benchmark a streak of 2 found more of the flipped labels than 3 at a
   precision still above 0.75, and the runs trained on fewer passes at no loss of accuracy;
3. the model is right elsewhere: the share of seen samples whose last report was correct is at
   least ``suspect_min_accuracy``. Early in training, when most answers are wrong, a wrong
   streak says nothing about the label, so nothing is suspect. When the store holds the samples'
   labels (:meth:`GEKOStateStore.set_labels`) the share is that of the other samples of the
   sample's own class, so a rare class the model keeps calling the majority class is not taken
   for noise (:mod:`gekodata.policy.guard`); without labels the guard works as it always did.

SUSPECT samples are drawn at ``suspect_weight`` (default 0.1, in every phase) instead of
HARD's weight: rarely enough not to fit the suspicious label, often enough that a sample the
model comes to answer correctly leaves SUSPECT (its streak resets on a correct report). Each
counts ``suspect_weight`` of a draw in the default epoch budget. The sampler's ``unbiased=True``
weighs every live sample's loss back to its data share, suspects included, so it undoes this
down-weighting: use the guard without unbiased mode.

The streak counts sync windows (by default epochs): all reports of a sample in one window are one
observation (see :class:`~gekodata.store.state_store.GEKOStateStore`), and predictions that disagree within a
window restart the streak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..arguments import check_unit_interval
from ..store.blocks import blocks
from ..store.state_store import GEKOStateStore
from .buckets import Bucket, _check_max_times_seen, _check_weight
from .curriculum import Curriculum
from .guard import GuardedPolicy, NoiseGuard


@dataclass
class BucketPolicy(GuardedPolicy):
    """GEKO's bucket rules and per-bucket weights.

    Args:
        curriculum: bucket weights per phase; default GEKO's mountain (:meth:`Curriculum.mountain`).
        freeze_confidence: FREEZE needs confidence EMA > this (GEKO 0.85).
        freeze_stability: FREEZE needs stability = 1 - std(loss) > this (GEKO's "quality", 0.80).
        freeze_q: FREEZE needs Q-value >= this (GEKO 0.8).
        hard_confidence: a wrong sample is HARD when ``1 - confidence > hard_confidence`` (GEKO
            0.60 on max-softmax; see the module docstring), else FOCUS.
        min_visits_to_freeze: reported passes a sample needs before it may freeze (GEKO: 1).
        max_times_seen: samples with this many reported passes get weight 0 (None = no limit);
            at most ``MAX_VISITS`` (65535), where the store's visit count saturates.
        noise_guard: classify probably-mislabeled HARD samples as SUSPECT (module docstring).
            Off by default.
        suspect_streak: consecutive wrong sync windows (agreeing on the predicted label when the
            loop reports ``pred``) before a HARD sample is SUSPECT; 1 to 7 (the store's streak
            saturates at 7).
        suspect_min_accuracy: the guard acts only while at least this share of seen samples was
            correct at its last report.
        suspect_weight: draw weight of SUSPECT samples, in every phase (>= 0; 0 drops them).
        suspect_confidence: a HARD sample may be SUSPECT only while its confidence EMA (the
            probability on its label) is at most this; 1.0 (default): no such test. A flipped
            label is soon called its true class with near certainty, while a hard but correctly
            labeled sample keeps some probability on its label.
        suspect_needs_labels: the guard judges only samples whose label the store knows
            (:meth:`GEKOStateStore.set_labels`), each against its own class; without labels it
            does nothing. Default False: without labels the guard judges by the share of all seen
            samples that are right, and can then take a rare class for noise.

    Examples:
        >>> import numpy as np
        >>> from gekodata import Bucket, BucketPolicy, GEKOStateStore
        >>> policy = BucketPolicy()
        >>> [policy.curriculum.phase_for_epoch(e, 4).name for e in range(4)]
        ['WARMUP', 'PEAK', 'PEAK', 'CONSOLIDATE']
        >>> store = GEKOStateStore(3)
        >>> loss, conf, correct = np.array([0.01, 3.0]), np.array([0.99, 0.02]), np.array([1.0, 0.0])
        >>> store.update(np.array([0, 1]), loss, conf, correct)
        >>> [Bucket(code).name for code in policy.classify(store)]
        ['FREEZE', 'HARD', 'UNSEEN']
    """

    curriculum: Curriculum = field(default_factory=Curriculum.mountain)
    freeze_confidence: float = 0.85
    freeze_stability: float = 0.80
    freeze_q: float = 0.80
    hard_confidence: float = 0.60
    min_visits_to_freeze: int = 1
    max_times_seen: int | None = None
    noise_guard: bool = False
    suspect_streak: int = 2
    suspect_min_accuracy: float = 0.5
    suspect_weight: float = 0.1
    suspect_confidence: float = 1.0
    suspect_needs_labels: bool = False

    per_class_plan: ClassVar[bool] = True  # weights are per bucket; default_budget takes counts

    def __post_init__(self) -> None:
        self.suspect_needs_labels = bool(self.suspect_needs_labels)
        self._check_guard_settings()
        self.suspect_weight = _check_weight("suspect_weight", self.suspect_weight)
        if not isinstance(self.curriculum, Curriculum):
            raise ValueError(
                f"curriculum must be a Curriculum, got {type(self.curriculum).__name__}"
            )
        for name in (
            "freeze_confidence",
            "freeze_stability",
            "freeze_q",
            "hard_confidence",
            "suspect_confidence",
        ):
            setattr(self, name, check_unit_interval(name, getattr(self, name)))
        if int(self.min_visits_to_freeze) < 1:
            raise ValueError(f"min_visits_to_freeze must be >= 1, got {self.min_visits_to_freeze}")
        self.min_visits_to_freeze = int(self.min_visits_to_freeze)
        self.max_times_seen = _check_max_times_seen(self.max_times_seen)

    # ---------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BucketPolicy:
        """Named configurations with constant weights (HARD, FOCUS, LIGHT):

        * ``"aggressive"``: freeze at confidence > 0.90 after 1 visit, weights (5, 2, 0).
        * ``"balanced"``: freeze at > 0.85 after 2 visits, weights (3, 2, 1).
        * ``"conservative"``: freeze at > 0.95 after 3 visits, weights (2, 2, 1).

        Thresholds and weights are GEKO's presets, except that GEKO's CONSERVATIVE froze at 0.80,
        which freezes *more* samples; ours raises the bar instead. ``overrides`` replace fields.
        """
        table = {
            "aggressive": (0.90, 1, (5, 2, 0)),
            "balanced": (0.85, 2, (3, 2, 1)),
            "conservative": (0.95, 3, (2, 2, 1)),
        }
        key = name.lower()
        if key not in table:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(table)}")
        conf, visits, (hard, focus, light) = table[key]
        kwargs: dict[str, Any] = dict(
            curriculum=Curriculum.constant(hard=hard, focus=focus, light=light),
            freeze_confidence=conf,
            min_visits_to_freeze=visits,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def uniform(cls) -> BucketPolicy:
        """Every sample weight 1, nothing ever freezes: plain uniform training. With a sampler
        ``budget`` below the dataset size, each epoch is a fresh uniform random subset of that
        size (the random-subset control). Buckets are still classified and reported."""
        return cls(
            curriculum=Curriculum.constant(hard=1, focus=1, light=1, freeze=1, unseen=1),
            freeze_confidence=1.0,
        )

    # ---------------------------------------------------------------- classify
    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """Bucket code per sample, uint8 [N]; samples without reports are UNSEEN.

        Thresholds are compared with the stored values (confidence quantised to 1/255), through
        the store's exact threshold views (:meth:`GEKOStateStore.confidence_above` and the
        like), a block at a time with integer arithmetic: O(N) over the columns' bytes.
        """
        visits = store.visits
        codes = np.empty(len(store), dtype=np.uint8)
        for lo, hi in blocks(len(store)):
            seen = visits[lo:hi] > 0
            correct = store.last_correct_rows(lo, hi)
            frozen = store.confidence_above(self.freeze_confidence, lo, hi)
            frozen &= correct
            frozen &= store.loss_std_below(1.0 - self.freeze_stability, lo, hi)
            frozen &= store.q_value_at_least(self.freeze_q, lo, hi)
            if self.min_visits_to_freeze > 1:
                frozen &= visits[lo:hi] >= self.min_visits_to_freeze
            # correct: LIGHT (2), FREEZE (1) if frozen; wrong: FOCUS (3), HARD (4) if
            # 1 - conf > hard_confidence; never seen: UNSEEN (0)
            hard = store.confidence_below(1.0 - self.hard_confidence, lo, hi).view(np.uint8)
            out = codes[lo:hi]
            np.add(hard, np.uint8(Bucket.FOCUS), out=out)
            step = frozen.view(np.uint8) + hard
            step += np.uint8(Bucket.FOCUS - Bucket.LIGHT)
            step *= correct.view(np.uint8)
            out -= step
            out *= seen.view(np.uint8)
        self.mark_suspects(store, codes, codes == Bucket.HARD)
        return codes

    @property
    def guard(self) -> NoiseGuard:
        """The guard's test: HARD samples, judged with ``suspect_confidence`` and
        ``suspect_needs_labels`` (module docstring)."""
        return NoiseGuard(
            streak=self.suspect_streak,
            min_accuracy=self.suspect_min_accuracy,
            max_confidence=self.suspect_confidence,
            needs_labels=self.suspect_needs_labels,
        )

    def default_budget(
        self, weights: np.ndarray, codes: np.ndarray, counts: np.ndarray | None = None
    ) -> float:
        """One draw per sample of weight > 0, except that a SUSPECT sample counts
        ``min(suspect_weight, 1)`` of a draw: a rarely drawn suspect must not add a whole pass
        that would go to the other samples (which would multiply the HARD draws instead).
        ``counts``: as in :meth:`SelectionPolicy.default_budget`."""
        budget = super().default_budget(weights, codes, counts)
        if self.noise_guard and self.suspect_weight < 1.0:
            suspect = (codes == Bucket.SUSPECT) & (weights > 0)
            num = int(np.count_nonzero(suspect)) if counts is None else int(counts[suspect].sum())
            budget -= (1.0 - self.suspect_weight) * num
        return budget

    # ---------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; :meth:`from_config` rebuilds the policy."""
        return {
            "curriculum": self.curriculum.config(),
            "freeze_confidence": self.freeze_confidence,
            "freeze_stability": self.freeze_stability,
            "freeze_q": self.freeze_q,
            "hard_confidence": self.hard_confidence,
            "min_visits_to_freeze": self.min_visits_to_freeze,
            "max_times_seen": self.max_times_seen,
            "noise_guard": self.noise_guard,
            "suspect_streak": self.suspect_streak,
            "suspect_min_accuracy": self.suspect_min_accuracy,
            "suspect_weight": self.suspect_weight,
            "suspect_confidence": self.suspect_confidence,
            "suspect_needs_labels": self.suspect_needs_labels,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BucketPolicy:
        kwargs = dict(config)
        kwargs["curriculum"] = Curriculum.from_config(kwargs["curriculum"])
        return cls(**kwargs)


# names of the :meth:`BucketPolicy.preset` configurations: strings, not policies (a sampler given
# one raises TypeError); the policy is ``BucketPolicy.preset(AGGRESSIVE)``
AGGRESSIVE = "aggressive"
BALANCED = "balanced"
CONSERVATIVE = "conservative"
