"""`RatePolicy`: the common frame of the selection policies whose weights are draw rates.

GEKO's mountain starves whole epochs (PEAK trains only the wrong samples) and boosts HARD
samples several times over, which on noisy data trains mostly wrong labels. The policies built on
this frame (:class:`~gekodata.policy.ForgettingPolicy`, :class:`~gekodata.policy.ReducibleLossPolicy`)
do neither: every sample has a draw *rate* in [0, 1] and each epoch draws every sample at most
once (the default budget is the sum of the rates and the planner's systematic sampling gives each
sample one draw with probability equal to its rate). What a policy decides is only which samples
get a reduced rate:

* the samples it has reason to skip (its own rule) get a small rate, not 0, so that they are
  re-checked now and then (a sample the model has forgotten shows up in its next report);
* with ``noise_guard`` (:mod:`gekodata.policy.guard`), wrong samples that look mislabeled
  (SUSPECT) get ``suspect_weight``: judged against their own class when the store has labels,
  and only while their loss is not falling when ``suspect_progress`` is set;
* everything else trains uniformly, at rate 1: no starving epochs, no boost.

``rescale=True`` adds InfoBatch's correction (Qin et al., ICLR 2024): a reduced-rate sample that
is drawn carries loss weight ``1 / rate`` (the item's ``"weight"``), so the epoch's summed
weighted loss estimates the full epoch's over the samples the policy skips; SUSPECT samples keep
loss weight 1 (their lower rate is on purpose). ``anneal_fraction`` trains the last share of
epochs on full data (every rate 1 except SUSPECT), as InfoBatch does.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..arguments import check_unit_interval
from ..store.state_store import GEKOStateStore
from .buckets import Bucket, _check_max_times_seen
from .curriculum import Curriculum, Phase
from .guard import GuardedPolicy, NoiseGuard


def check_rate(name: str, value: float) -> float:
    """``value`` as a draw rate, a float in [0, 1]; ``ValueError`` naming ``name`` otherwise."""
    return check_unit_interval(name, value, what="a draw rate ")


@dataclass
class RatePolicy(GuardedPolicy):
    """Common settings of the rate policies (module docstring); not used directly.

    Args:
        noise_guard: demote wrong samples that look mislabeled to SUSPECT.
        suspect_streak: consecutive wrong observations (sync windows) before a sample may be
            SUSPECT; 1 to 7.
        suspect_min_accuracy: the share of the other seen samples of its class (of all seen
            samples without labels in the store) that must be right for a sample to be SUSPECT.
        suspect_weight: draw rate of SUSPECT samples, in [0, 1].
        suspect_progress: a SUSPECT sample's learning progress (slow minus fast loss EMA) must be
            at most this share of its loss EMA (a falling loss means learnable, not noise);
            None: no such test (the store then needs no ``"progress"`` signal).
        hard_confidence: guard candidates are wrong samples with ``1 - confidence >
            hard_confidence`` (most of the mass on other answers), as BucketPolicy's HARD.
        rescale: InfoBatch-style loss weight ``1 / rate`` for drawn reduced-rate samples.
        anneal_fraction: share of the run (by epoch midpoints) at the end trained on full data.
        max_times_seen: samples with this many reported passes get rate 0 (None: no limit).
    """

    noise_guard: bool = True
    suspect_streak: int = 2
    suspect_min_accuracy: float = 0.5
    suspect_weight: float = 0.1
    suspect_progress: float | None = 0.1
    hard_confidence: float = 0.6
    rescale: bool = False
    anneal_fraction: float = 0.0
    max_times_seen: int | None = None

    # Planned per sample. Its rates are per bucket, so the per-class path would work, but it
    # picks each class's extra draws with another use of the epoch's generator: same counts in
    # expectation, other samples. Moving would change every rate policy's plans and break the
    # resume of saved runs mid-epoch, so these policies stay on the path they were planned on.
    per_class_plan: ClassVar[bool] = False
    # skipped samples are drawn at a reduced rate to re-check them: pruning would end that
    rechecks_skipped: ClassVar[bool] = True

    KIND = ""  # the registry's name of the policy (policy_from_config)
    REDUCED = Bucket.FREEZE  # the bucket of the samples the policy's rule skips

    def __post_init__(self) -> None:
        self._check_guard_settings()
        self.rescale = bool(self.rescale)
        self.hard_confidence = check_unit_interval("hard_confidence", self.hard_confidence)
        self.suspect_weight = check_rate("suspect_weight", self.suspect_weight)
        if self.suspect_progress is not None:
            self.suspect_progress = float(self.suspect_progress)
            if not math.isfinite(self.suspect_progress):
                raise ValueError(
                    f"suspect_progress must be finite or None, got {self.suspect_progress}"
                )
        self.anneal_fraction = check_unit_interval(
            "anneal_fraction", self.anneal_fraction, exclude_one=True
        )
        self.max_times_seen = _check_max_times_seen(self.max_times_seen)
        self._check_own()
        rates = {"hard": 1.0, "focus": 1.0, "light": 1.0, "freeze": 0.0, "unseen": 1.0}
        rates[self.REDUCED.name.lower()] = self.reduced_rate
        phases = [Phase("SELECT", 0.0, 1.0 - self.anneal_fraction, **rates)]
        if self.anneal_fraction > 0:
            phases.append(
                Phase(
                    "ANNEAL",
                    1.0 - self.anneal_fraction,
                    1.0,
                    hard=1,
                    focus=1,
                    light=1,
                    freeze=1,
                    unseen=1,
                )
            )
        self.curriculum = Curriculum(phases)

    # ------------------------------------------------------------ subclass hooks
    @property
    def reduced_rate(self) -> float:
        """Draw rate of the samples in the ``REDUCED`` bucket."""
        raise NotImplementedError

    def _check_own(self) -> None:
        """Validate the subclass's own settings (``ValueError``)."""

    def _codes(self, store: GEKOStateStore, wrong_confident: np.ndarray) -> np.ndarray:
        """Bucket codes before the guard: uint8 [N]."""
        raise NotImplementedError

    def _own_signals(self) -> tuple[str, ...]:
        return ()

    # ------------------------------------------------------------ the policy
    @property
    def provides_loss_weights(self) -> bool:  # type: ignore[override]
        return self.rescale

    def required_signals(self) -> tuple[str, ...]:
        guard = ("progress",) if self.noise_guard and self.suspect_progress is not None else ()
        return self._own_signals() + guard

    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """Bucket code per sample, uint8 [N]: the policy's rule, then the guard (SUSPECT)."""
        seen = store.seen
        wrong_confident = (
            seen & ~store.last_correct & store.confidence_below(1.0 - self.hard_confidence)
        )
        codes = self._codes(store, wrong_confident)
        codes[~seen] = Bucket.UNSEEN
        self.mark_suspects(store, codes, wrong_confident)
        return codes

    @property
    def guard(self) -> NoiseGuard:
        """The guard's test: wrong samples with most mass on other answers, judged with
        ``suspect_progress``."""
        return NoiseGuard(
            streak=self.suspect_streak,
            min_accuracy=self.suspect_min_accuracy,
            max_progress=self.suspect_progress,
        )

    def default_budget(
        self, weights: np.ndarray, codes: np.ndarray, counts: np.ndarray | None = None
    ) -> float:
        """The expected number of draws: every rate is <= 1 and is the sample's draw probability.
        ``counts``: as in :meth:`SelectionPolicy.default_budget`."""
        return float(weights.sum() if counts is None else np.dot(counts, weights))

    def loss_weight_table(
        self, weights: np.ndarray, codes: np.ndarray | None = None
    ) -> np.ndarray | None:
        """With ``rescale``: ``1 / rate`` for drawable reduced-rate samples, 1 for other drawable
        ones, 0 for the rest; else None."""
        if not self.rescale:
            return None
        table = (weights > 0).astype(np.float32)
        if codes is not None:
            reduced = (codes == self.REDUCED) & (weights > 0) & (weights < 1)
            table[reduced] = (1.0 / weights[reduced]).astype(np.float32)
        return table

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings with the policy's ``kind``; :func:`policy_from_config`
        rebuilds it."""
        return {"kind": self.KIND, **dataclasses.asdict(self)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RatePolicy:
        return cls(**config)
