"""The interface every selection policy offers the sampler."""
from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from ..state import GEKOStateStore
from .curriculum import Curriculum, Phase


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

    def loss_weight_table(self, weights: np.ndarray, codes: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """float32 [N] loss weight per sample for this epoch, or None (no loss weights).
        ``codes``: the bucket codes the weights came from."""
        return None

    def required_signals(self) -> Tuple[str, ...]:
        """Optional store signals (:meth:`GEKOStateStore.track` names) this policy reads."""
        return ()

    def prepare(self, store: GEKOStateStore) -> None:
        """Make ``store`` keep what this policy reads: the sampler calls it when it is built and
        after it loads a file, before any report is folded."""
        store.track(*self.required_signals())

    def config(self) -> Dict[str, Any]:
        raise NotImplementedError
