"""Buckets, curricula and the policy that turns per-sample state into sampling weights.

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

**Curriculum.** Bucket weights follow phases over the run's progress. Progress of epoch ``e`` in a
run of ``num_epochs`` is its midpoint, ``(e + 0.5) / num_epochs``, so every epoch lands in the
phase that covers most of it and short runs still visit the middle phases: 3 epochs map to
ASCENT, PEAK, DESCENT; 5 epochs to one epoch per phase. Epochs past ``num_epochs`` stay in the
last phase. (GEKO advanced progress per optimizer step and never reached PEAK's weights in the
sampler of a short run.)

**Noise guard.** GEKO boosts confident-wrong samples 3-5x, but on real data many of them are
label errors (Dataset Cartography's "hard-to-learn" region; RHO-LOSS: a high loss is not the
same as learnable), so the boost amplifies wrong labels. The guard separates "hard but
learnable" from "probably mislabeled" with online signals only, all from reports the loop makes
anyway: a sample is SUSPECT when

1. it is HARD: wrong, and the model puts little probability on the given label;
2. its last ``suspect_streak`` (default 2) observations were all wrong (the store's wrong
   streak, one observation per sync window: see the end of this docstring) and, when the loop reports predicted labels, agreed on the *same* wrong label: the model keeps
   answering one other class, stably, instead of drifting towards the given label as it does for
   hard but learnable samples (whose wrong predictions wander and whose target probability
   rises). On the noise benchmark a streak of 2 found more of the flipped labels than 3 at a
   precision still above 0.75, and the runs trained on fewer passes at no loss of accuracy;
3. the model is right elsewhere: the share of seen samples whose last report was correct is at
   least ``suspect_min_accuracy``. Early in training, when most answers are wrong, a wrong
   streak says nothing about the label, so nothing is suspect.

SUSPECT samples are drawn at ``suspect_weight`` (default 0.1, in every phase) instead of
HARD's weight: rarely enough not to fit the suspicious label, often enough that a sample the
model comes to answer correctly leaves SUSPECT (its streak resets on a correct report). Each
counts ``suspect_weight`` of a draw in the default epoch budget. The sampler's ``unbiased=True``
weighs every live sample's loss back to its data share, suspects included, so it undoes this
down-weighting: use the guard without unbiased mode.

The streak counts sync windows (by default epochs): all reports of a sample in one window are one
observation (see :class:`~gekodata.state.GEKOStateStore`), and predictions that disagree within a
window restart the streak.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..state import MAX_VISITS, MAX_WRONG_STREAK, GEKOStateStore


class Bucket(IntEnum):
    """Bucket codes as stored in :class:`~gekodata.state.GEKOStateStore` (3 bits)."""

    UNSEEN = 0
    FREEZE = 1
    LIGHT = 2
    FOCUS = 3
    HARD = 4
    SUSPECT = 5


NUM_BUCKETS = len(Bucket)


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight {name} must be finite and >= 0, got {value}")
    return value


@dataclass(frozen=True)
class Phase:
    """One curriculum phase: bucket weights used while progress is in ``[start, end)``.

    Weights are relative draw rates (a sample of weight 2 is drawn twice as often as one of
    weight 1). ``unseen`` defaults to the largest other weight, so samples never reported are
    visited with top priority.
    """

    name: str
    start: float
    end: float
    hard: float
    focus: float
    light: float
    freeze: float = 0.0
    unseen: Optional[float] = None

    def __post_init__(self) -> None:
        for key in ("hard", "focus", "light", "freeze"):
            _check_weight(f"{self.name}.{key}", getattr(self, key))
        if self.unseen is not None:
            _check_weight(f"{self.name}.unseen", self.unseen)
        if not (0.0 <= self.start < self.end <= 1.0):
            raise ValueError(f"phase {self.name!r}: need 0 <= start < end <= 1, got [{self.start}, {self.end})")
        if max(self.hard, self.focus, self.light, self.freeze) == 0:
            raise ValueError(f"phase {self.name!r} gives every bucket weight 0 and would train nothing")

    def weight_table(self) -> np.ndarray:
        """float64 [NUM_BUCKETS]: weight indexed by bucket code."""
        table = np.zeros(NUM_BUCKETS, dtype=np.float64)
        table[Bucket.FREEZE] = self.freeze
        table[Bucket.LIGHT] = self.light
        table[Bucket.FOCUS] = self.focus
        table[Bucket.HARD] = self.hard
        table[Bucket.UNSEEN] = (
            max(self.hard, self.focus, self.light, self.freeze) if self.unseen is None else self.unseen
        )
        return table


class Curriculum:
    """Phases covering progress ``[0, 1]`` without gaps or overlaps.

    Args:
        phases: phases in any order; sorted by ``start``. Their intervals must tile [0, 1].
    """

    def __init__(self, phases: Sequence[Phase]) -> None:
        if not phases:
            raise ValueError("a curriculum needs at least one phase")
        ordered = sorted(phases, key=lambda p: p.start)
        if ordered[0].start != 0.0 or ordered[-1].end != 1.0:
            raise ValueError(
                f"phases must cover [0, 1]; they cover [{ordered[0].start}, {ordered[-1].end}]"
            )
        for prev, nxt in zip(ordered, ordered[1:]):
            if not math.isclose(prev.end, nxt.start, abs_tol=1e-9):
                kind = "gap" if prev.end < nxt.start else "overlap"
                raise ValueError(
                    f"phases must tile [0, 1]: {kind} between {prev.name!r} (ends {prev.end}) "
                    f"and {nxt.name!r} (starts {nxt.start})"
                )
        names = [p.name for p in ordered]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        self.phases: Tuple[Phase, ...] = tuple(ordered)
        self._ends = np.array([p.end for p in ordered[:-1]])

    @classmethod
    def mountain(cls) -> "Curriculum":
        """GEKO's five-phase curriculum, weights (HARD, FOCUS, LIGHT); FREEZE always 0."""
        table = [
            ("WARMUP", 0.00, 0.15, 1, 2, 3),
            ("ASCENT", 0.15, 0.35, 2, 3, 1),
            ("PEAK", 0.35, 0.65, 5, 2, 0),
            ("DESCENT", 0.65, 0.85, 2, 3, 1),
            ("CONSOLIDATE", 0.85, 1.00, 1, 2, 3),
        ]
        return cls([Phase(n, s, e, hard=h, focus=f, light=l) for n, s, e, h, f, l in table])

    @classmethod
    def constant(cls, hard: float = 3.0, focus: float = 1.0, light: float = 0.0, freeze: float = 0.0,
                 unseen: Optional[float] = None) -> "Curriculum":
        """One phase for the whole run (no curriculum). Defaults are GEKO's (3, 1, 0)."""
        return cls([Phase("CONSTANT", 0.0, 1.0, hard=hard, focus=focus, light=light,
                          freeze=freeze, unseen=unseen)])

    def phase_at(self, progress: float) -> Phase:
        """The phase covering ``progress`` (clipped to [0, 1]; 1.0 belongs to the last phase)."""
        progress = min(max(float(progress), 0.0), 1.0)
        return self.phases[int(np.searchsorted(self._ends, progress, side="right"))]

    def phase_for_epoch(self, epoch: int, num_epochs: int) -> Phase:
        """Phase of epoch ``epoch`` (0-based) in a run of ``num_epochs``: its midpoint's phase."""
        if num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
        return self.phase_at((epoch + 0.5) / num_epochs)

    def config(self) -> List[Dict[str, Any]]:
        return [asdict(p) for p in self.phases]

    @classmethod
    def from_config(cls, config: Sequence[Dict[str, Any]]) -> "Curriculum":
        return cls([Phase(**p) for p in config])

    def __repr__(self) -> str:
        return f"Curriculum({[p.name for p in self.phases]})"


def _check_max_times_seen(value: Optional[int]) -> Optional[int]:
    """``max_times_seen`` as an int in [1, MAX_VISITS], or None; ``ValueError`` otherwise."""
    if value is None:
        return None
    value = int(value)
    if value < 1:
        raise ValueError(f"max_times_seen must be >= 1 or None, got {value}")
    if value > MAX_VISITS:
        raise ValueError(
            f"max_times_seen must be <= {MAX_VISITS} (gekodata.state.MAX_VISITS), got {value}: the store "
            f"counts visits in uint16 and saturates at {MAX_VISITS}, so a larger limit could never be reached"
        )
    return value


def _check_threshold(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


class SelectionPolicy:
    """What :class:`~gekodata.sampler.WeightedBucketSampler` asks of a policy once per epoch.

    Data flows one way: the sampler hands the store to :meth:`classify` (bucket code per sample),
    then to :meth:`sample_weights` for the epoch's phase (relative draw rates), asks
    :meth:`default_budget` how many draws an epoch has when the user set no budget, and, when
    :attr:`provides_loss_weights` is set, :meth:`loss_weight_table` for the per-sample loss
    weights the dataset attaches to each item. Subclasses set ``curriculum`` and
    ``max_times_seen`` and implement :meth:`classify` and :meth:`config`.
    """

    curriculum: Curriculum
    max_times_seen: Optional[int]
    provides_loss_weights: ClassVar[bool] = False

    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """Bucket code per sample, uint8 [N]."""
        raise NotImplementedError

    def weight_table(self, phase: Phase) -> np.ndarray:
        """float64 [NUM_BUCKETS]: draw weight per bucket code in ``phase``."""
        return phase.weight_table()

    def sample_weights(self, store: GEKOStateStore, codes: np.ndarray, phase: Phase) -> np.ndarray:
        """float64 [N] draw weights: the bucket's weight (:meth:`weight_table`), 0 if pruned or
        over ``max_times_seen``."""
        weights = self.weight_table(phase)[codes]
        weights[store.pruned] = 0.0
        if self.max_times_seen is not None:
            weights[store.visits >= self.max_times_seen] = 0.0
        return weights

    def default_budget(self, weights: np.ndarray, codes: np.ndarray) -> float:
        """Draws per epoch without an explicit budget: one per sample of weight > 0, so frozen
        and pruned samples shorten the epoch. ``codes``: the bucket codes the weights came from."""
        return float(np.count_nonzero(weights))

    def loss_weight_table(self, weights: np.ndarray) -> Optional[np.ndarray]:
        """float32 [N] loss weight per sample for this epoch, or None (no loss weights)."""
        return None

    def config(self) -> Dict[str, Any]:
        raise NotImplementedError


@dataclass
class BucketPolicy(SelectionPolicy):
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
    """

    curriculum: Curriculum = field(default_factory=Curriculum.mountain)
    freeze_confidence: float = 0.85
    freeze_stability: float = 0.80
    freeze_q: float = 0.80
    hard_confidence: float = 0.60
    min_visits_to_freeze: int = 1
    max_times_seen: Optional[int] = None
    noise_guard: bool = False
    suspect_streak: int = 2
    suspect_min_accuracy: float = 0.5
    suspect_weight: float = 0.1

    def __post_init__(self) -> None:
        self.noise_guard = bool(self.noise_guard)
        if not 1 <= int(self.suspect_streak) <= MAX_WRONG_STREAK:
            raise ValueError(f"suspect_streak must be in [1, {MAX_WRONG_STREAK}], got {self.suspect_streak}")
        self.suspect_streak = int(self.suspect_streak)
        self.suspect_min_accuracy = _check_threshold("suspect_min_accuracy", self.suspect_min_accuracy)
        self.suspect_weight = _check_weight("suspect_weight", self.suspect_weight)
        if not isinstance(self.curriculum, Curriculum):
            raise ValueError(f"curriculum must be a Curriculum, got {type(self.curriculum).__name__}")
        for name in ("freeze_confidence", "freeze_stability", "freeze_q", "hard_confidence"):
            setattr(self, name, _check_threshold(name, getattr(self, name)))
        if int(self.min_visits_to_freeze) < 1:
            raise ValueError(f"min_visits_to_freeze must be >= 1, got {self.min_visits_to_freeze}")
        self.min_visits_to_freeze = int(self.min_visits_to_freeze)
        self.max_times_seen = _check_max_times_seen(self.max_times_seen)

    # ---------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "BucketPolicy":
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
        kwargs: Dict[str, Any] = dict(
            curriculum=Curriculum.constant(hard=hard, focus=focus, light=light),
            freeze_confidence=conf,
            min_visits_to_freeze=visits,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def uniform(cls) -> "BucketPolicy":
        """Every sample weight 1, nothing ever freezes: plain uniform training. With a sampler
        ``budget`` below the dataset size, each epoch is a fresh uniform random subset of that
        size (the random-subset control). Buckets are still classified and reported."""
        return cls(curriculum=Curriculum.constant(hard=1, focus=1, light=1, freeze=1, unseen=1),
                   freeze_confidence=1.0)

    # ---------------------------------------------------------------- classify
    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """Bucket code per sample, uint8 [N]; samples without reports are UNSEEN.

        Thresholds are compared with the stored values (confidence quantised to 1/255).
        """
        cols = store.columns
        visits = cols["visits"]
        correct = store.last_correct
        conf_255 = cols["conf_ema"]  # uint8, confidence * 255
        # stability > s  <=>  std < 1 - s
        frozen = conf_255 > self.freeze_confidence * 255.0
        frozen &= correct
        frozen &= store.loss_std < np.float32(1.0 - self.freeze_stability)
        frozen &= cols["q_value"].astype(np.float32) >= np.float32(self.freeze_q)
        if self.min_visits_to_freeze > 1:
            frozen &= visits >= self.min_visits_to_freeze
        # wrong and 1 - conf > hard_confidence  <=>  conf < 1 - hard_confidence
        codes = np.where(conf_255 < (1.0 - self.hard_confidence) * 255.0,
                         np.uint8(Bucket.HARD), np.uint8(Bucket.FOCUS))
        codes[correct] = Bucket.LIGHT
        codes[frozen] = Bucket.FREEZE
        seen = visits > 0
        codes[~seen] = Bucket.UNSEEN
        if self.noise_guard:
            codes[self.suspects(store, codes, seen)] = Bucket.SUSPECT
        return codes

    def suspects(self, store: GEKOStateStore, codes: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """bool [N]: HARD samples the noise guard holds for mislabeled (module docstring)."""
        num_seen = int(np.count_nonzero(seen))
        if num_seen == 0:
            return np.zeros(len(codes), dtype=bool)
        accuracy = np.count_nonzero(store.last_correct & seen) / num_seen
        if accuracy < self.suspect_min_accuracy:
            return np.zeros(len(codes), dtype=bool)
        return (codes == Bucket.HARD) & (store.wrong_streak >= self.suspect_streak)

    def default_budget(self, weights: np.ndarray, codes: np.ndarray) -> float:
        """One draw per sample of weight > 0, except that a SUSPECT sample counts
        ``min(suspect_weight, 1)`` of a draw: a rarely drawn suspect must not add a whole pass
        that would go to the other samples (which would multiply the HARD draws instead)."""
        budget = float(np.count_nonzero(weights))
        if self.noise_guard and self.suspect_weight < 1.0:
            suspect = (codes == Bucket.SUSPECT) & (weights > 0)
            budget -= (1.0 - self.suspect_weight) * int(np.count_nonzero(suspect))
        return budget

    def weight_table(self, phase: Phase) -> np.ndarray:
        """The phase's weights, with ``suspect_weight`` for SUSPECT."""
        table = phase.weight_table()
        table[Bucket.SUSPECT] = self.suspect_weight
        return table

    # ---------------------------------------------------------------- config
    def config(self) -> Dict[str, Any]:
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
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "BucketPolicy":
        kwargs = dict(config)
        kwargs["curriculum"] = Curriculum.from_config(kwargs["curriculum"])
        return cls(**kwargs)


@dataclass
class InfoBatchPolicy(SelectionPolicy):
    """InfoBatch (Qin et al., ICLR 2024): prune well-learned samples at random, rescale the rest.

    Each epoch, a seen sample whose loss EMA is below the mean loss EMA of all seen samples is
    "well-learned" (bucket LIGHT; the others are FOCUS, never-reported ones UNSEEN). A
    well-learned sample is drawn with probability ``1 - prune_ratio`` and, when drawn, carries
    loss weight ``1 / (1 - prune_ratio)``; every other sample is drawn exactly once with loss
    weight 1, so the epoch's summed weighted loss is unbiased for the full epoch's. Epochs whose
    midpoint lies in the last ``anneal_fraction`` of the run (phase ANNEAL) train on every sample
    with weight 1. Nothing freezes, so nothing is pruned for good.

    Differences from the published code, on purpose: the score is the store's loss EMA (the
    paper keeps each sample's latest loss: use ``GEKOStateStore(n, ema_alpha=1.0)`` for exactly
    that); the mean is taken over samples seen so far (the paper starts unseen scores at a
    constant); the drawn subset is an exact-size systematic sample in random order rather than
    independent coin flips (same inclusion probabilities, less variance in epoch length).
    With an explicit sampler ``budget`` the draw rates are rescaled to it while the loss weights
    stay ``1 / (1 - r)``. The loss weights reach the loop as the dataset item's ``"weight"`` (see
    :class:`~gekodata.dataset.PruningDataset`) or :meth:`WeightedBucketSampler.loss_weights`.

    Args:
        prune_ratio: probability r of dropping a well-learned sample, in [0, 1) (paper: 0.5).
        anneal_fraction: fraction of the run trained on full data at the end, in [0, 1)
            (paper: 0.125).
        max_times_seen: as in :class:`BucketPolicy`.
    """

    prune_ratio: float = 0.5
    anneal_fraction: float = 0.125
    max_times_seen: Optional[int] = None
    provides_loss_weights: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.prune_ratio = float(self.prune_ratio)
        self.anneal_fraction = float(self.anneal_fraction)
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")
        if not 0.0 <= self.anneal_fraction < 1.0:
            raise ValueError(f"anneal_fraction must be in [0, 1), got {self.anneal_fraction}")
        self.max_times_seen = _check_max_times_seen(self.max_times_seen)
        keep = 1.0 - self.prune_ratio
        phases = [Phase("PRUNE", 0.0, 1.0 - self.anneal_fraction, hard=1, focus=1, light=keep, unseen=1)]
        if self.anneal_fraction > 0:
            phases.append(Phase("ANNEAL", 1.0 - self.anneal_fraction, 1.0, hard=1, focus=1, light=1, unseen=1))
        self.curriculum = Curriculum(phases)

    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """UNSEEN (no report), LIGHT (loss EMA below the mean over seen samples), else FOCUS."""
        seen = store.visits > 0
        loss = store.loss  # decoded float32 [N]
        codes = np.full(len(store), np.uint8(Bucket.UNSEEN))
        if seen.any():
            seen_loss = loss[seen].astype(np.float64)
            codes[seen] = np.where(seen_loss < seen_loss.mean(), np.uint8(Bucket.LIGHT), np.uint8(Bucket.FOCUS))
        return codes

    def default_budget(self, weights: np.ndarray, codes: np.ndarray) -> float:
        """The expected number of kept samples: every weight is <= 1 and is the keep probability."""
        return float(weights.sum())

    def loss_weight_table(self, weights: np.ndarray) -> np.ndarray:
        """``1 / keep probability`` for drawable samples (1 / (1 - r) for kept well-learned ones)."""
        table = np.zeros(len(weights), dtype=np.float32)
        positive = weights > 0
        table[positive] = 1.0 / weights[positive]
        return table

    def config(self) -> Dict[str, Any]:
        return {"kind": "infobatch", "prune_ratio": self.prune_ratio,
                "anneal_fraction": self.anneal_fraction, "max_times_seen": self.max_times_seen}


def policy_from_config(config: Dict[str, Any]) -> SelectionPolicy:
    """Rebuild a policy from its :meth:`~SelectionPolicy.config`."""
    kwargs = dict(config)
    kind = kwargs.pop("kind", "bucket")
    if kind == "infobatch":
        return InfoBatchPolicy(**kwargs)
    if kind == "bucket":
        return BucketPolicy.from_config(kwargs)
    raise ValueError(f"unknown policy kind {kind!r}")


AGGRESSIVE = "aggressive"
BALANCED = "balanced"
CONSERVATIVE = "conservative"
