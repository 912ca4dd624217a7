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

    A policy that reads an optional store column names it in :attr:`store_columns` (the sampler
    allocates it before the first report). :attr:`rows_per_pass` is how many reported rows make
    one planned draw: 1 for per-sample reports; an RL prompt policy's group size, where every
    completion of a prompt's group is one row (:class:`~gekodata.policy.PromptPolicy`).
    """

    curriculum: Curriculum
    max_times_seen: Optional[int]
    provides_loss_weights: ClassVar[bool] = False
    store_columns: ClassVar[Tuple[str, ...]] = ()

    @property
    def rows_per_pass(self) -> int:
        """Reported rows per planned draw; the efficiency report counts passes in draws."""
        return 1

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
