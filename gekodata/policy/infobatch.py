"""InfoBatch: random pruning of well-learned samples with loss rescaling (Qin et al., ICLR 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..arguments import check_unit_interval
from ..store.state_store import GEKOStateStore
from .base import SelectionPolicy
from .buckets import Bucket, _check_max_times_seen
from .curriculum import Curriculum, Phase


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
    constant); the drawn subset is a uniform random subset of exact size (the floor or ceiling
    of its expectation) rather than independent coin flips (same inclusion probabilities, less
    variance in epoch length).
    With an explicit sampler ``budget`` the draw rates are rescaled to it while the loss weights
    stay ``1 / (1 - r)``. The loss weights reach the loop as the dataset item's ``"weight"`` (see
    :class:`~gekodata.dataset.PruningDataset`) or :meth:`WeightedBucketSampler.loss_weights`.

    Args:
        prune_ratio: probability r of dropping a well-learned sample, in [0, 1) (paper: 0.5).
        anneal_fraction: fraction of the run trained on full data at the end, in [0, 1)
            (paper: 0.125).
        max_times_seen: as in :class:`~gekodata.policy.BucketPolicy`.
    """

    prune_ratio: float = 0.5
    anneal_fraction: float = 0.125
    max_times_seen: int | None = None
    provides_loss_weights: ClassVar[bool] = True
    per_class_plan: ClassVar[bool] = True  # weights are per bucket; budget and loss weights too

    def __post_init__(self) -> None:
        self.prune_ratio = check_unit_interval("prune_ratio", self.prune_ratio, exclude_one=True)
        self.anneal_fraction = check_unit_interval(
            "anneal_fraction", self.anneal_fraction, exclude_one=True
        )
        self.max_times_seen = _check_max_times_seen(self.max_times_seen)
        keep = 1.0 - self.prune_ratio
        phases = [
            Phase("PRUNE", 0.0, 1.0 - self.anneal_fraction, hard=1, focus=1, light=keep, unseen=1)
        ]
        if self.anneal_fraction > 0:
            phases.append(
                Phase("ANNEAL", 1.0 - self.anneal_fraction, 1.0, hard=1, focus=1, light=1, unseen=1)
            )
        self.curriculum = Curriculum(phases)

    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """UNSEEN (no report), LIGHT (loss EMA below the mean over seen samples), else FOCUS."""
        seen = store.visits > 0
        loss = store.loss  # decoded float32 [N]
        codes = np.full(len(store), np.uint8(Bucket.UNSEEN))
        if seen.any():
            seen_loss = loss[seen].astype(np.float64)
            codes[seen] = np.where(
                seen_loss < seen_loss.mean(), np.uint8(Bucket.LIGHT), np.uint8(Bucket.FOCUS)
            )
        return codes

    def default_budget(
        self, weights: np.ndarray, codes: np.ndarray, counts: np.ndarray | None = None
    ) -> float:
        """The expected number of kept samples: every weight is <= 1 and is the keep probability.
        ``counts``: as in :meth:`SelectionPolicy.default_budget`."""
        return float(weights.sum() if counts is None else np.dot(counts, weights))

    def loss_weight_table(self, weights: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
        """``1 / keep probability`` for drawable samples (1 / (1 - r) for kept well-learned ones)."""
        table = np.zeros(len(weights), dtype=np.float32)
        positive = weights > 0
        table[positive] = 1.0 / weights[positive]
        return table

    def config(self) -> dict[str, Any]:
        return {
            "kind": "infobatch",
            "prune_ratio": self.prune_ratio,
            "anneal_fraction": self.anneal_fraction,
            "max_times_seen": self.max_times_seen,
        }
