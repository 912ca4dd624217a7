"""`ForgettingPolicy`: skip what was learned and never forgotten; train the rest uniformly.

**Source.** Toneva et al., "An Empirical Study of Example Forgetting during Deep Neural Network
Learning" (ICLR 2019): a *forgetting event* is a sample going from correct to wrong between two
consecutive presentations. Many samples are learned once and never forgotten ("unforgettable"),
consistently across seeds and architectures, and removing them costs little: about 30% of
CIFAR-10 and over 90% of MNIST could be dropped with no loss of test accuracy. Forgettable
samples are the atypical, ambiguous and mislabeled ones.

**Online rule.** The paper ranks after a whole training run; here the decision is made each
epoch from the store's ``"forgetting"`` signal (:meth:`GEKOStateStore.track`): a sample is
skipped (bucket FREEZE, draw rate ``audit_weight``) when it

* has at least ``min_visits`` reported passes,
* was correct in its last ``min_learned`` observations (the learned streak), and
* has at most ``max_forgetting`` forgetting events (0: never forgotten, the paper's
  "unforgettable").

Everything else trains at rate 1: each non-skipped sample exactly once per epoch (no starving
epochs, no boost of hard samples), so the epoch shrinks by what is learned. A decision made early
can be wrong (the model may later forget): skipped samples keep a small draw rate, and a skipped
sample that comes back wrong records a forgetting event and is never skipped again (with
``max_forgetting`` 0). With ``audit_weight=0`` they are never drawn by the policy: the sampler's
forgetting audit (``audit_fraction``, :mod:`gekodata.planning.audit`) can re-check them instead.

**Where it helps and where it cannot.** Redundant data (near-duplicates are learned at once and
never forgotten) and imbalanced data (the rare classes stay unlearned longer, so the shortened
epochs are richer in them) are its cases. On noisy data, mislabeled samples are never learned and
would keep rate 1 while the clean majority is skipped, so the share of wrong labels in each epoch
*grows*: the noise guard (on by default, :mod:`gekodata.policy.guard`) demotes them to SUSPECT,
judged against their own class when the store has labels and only while their loss is not
falling. ``rescale=True`` weighs the rare drawn skipped samples' loss by ``1 / audit_weight``
(InfoBatch's correction, :mod:`gekodata.policy.rates`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.layout import MAX_VISITS
from ..store.state_store import GEKOStateStore
from .buckets import Bucket
from .rates import RatePolicy, check_rate


@dataclass
class ForgettingPolicy(RatePolicy):
    """Skip samples learned and never forgotten (module docstring); train the rest uniformly.

    Args:
        min_visits: reported passes before a sample may be skipped (>= 1).
        min_learned: consecutive correct observations (sync windows) needed (1 to 255).
        max_forgetting: forgetting events a skipped sample may have had (0 to 254; 0 = never).
        audit_weight: draw rate of skipped samples, in [0, 1] (the re-check).
        The rest: :class:`~gekodata.policy.rates.RatePolicy` (noise guard on by default).

    The defaults were chosen on ``benchmarks/time_to_quality.py``'s T2 variants (clean, noisy,
    redundant, imbalanced) with held-out seeds 100 and 101 only, among (visits, learned,
    audit) = (2, 2, 0.1), (3, 3, 0.2), (3, 3, 0.3), with and without rescaling and a 12.5% full-data
    anneal: (3, 3, 0.2) was ahead of its random-subset and same-budget controls on all four at
    37-40% of full's passes; (2, 2, 0.1) saved more (26%) and lost more accuracy; a higher audit
    rate, rescaling or the anneal bought accuracy only as fast as the controls did.
    """

    min_visits: int = 3
    min_learned: int = 3
    max_forgetting: int = 0
    audit_weight: float = 0.2

    KIND = "forgetting"
    REDUCED = Bucket.FREEZE

    def _check_own(self) -> None:
        for name, low, high in (
            ("min_visits", 1, MAX_VISITS),
            ("min_learned", 1, 255),
            ("max_forgetting", 0, 254),
        ):
            value = int(getattr(self, name))
            if not low <= value <= high:
                raise ValueError(
                    f"{name} must be in [{low}, {high}] (the store's column saturates above), "
                    f"got {getattr(self, name)}"
                )
            setattr(self, name, value)
        self.audit_weight = check_rate("audit_weight", self.audit_weight)

    @property
    def reduced_rate(self) -> float:
        return self.audit_weight

    def _own_signals(self) -> tuple[str, ...]:
        return ("forgetting",)

    def _codes(self, store: GEKOStateStore, wrong_confident: np.ndarray) -> np.ndarray:
        """LIGHT (last correct), HARD (wrong and confident in another answer), FOCUS (other
        wrong), FREEZE (skipped: the rule above)."""
        codes = np.where(wrong_confident, np.uint8(Bucket.HARD), np.uint8(Bucket.FOCUS))
        codes[store.last_correct] = Bucket.LIGHT
        skip = store.learned_streak >= self.min_learned
        skip &= store.forget_count <= self.max_forgetting
        skip &= store.visits >= self.min_visits
        codes[skip] = Bucket.FREEZE
        return codes
