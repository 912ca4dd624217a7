"""`RankPlan`: one epoch's index stream as one rank holds it.

The planner hands the sampler the global stream, usually computed on demand
(:class:`~gekodata.planning.stream.EpochStream`: a keyed permutation of the epoch's draws), or an array
(loaded from a checkpoint). A rank iterates its own shard of it; either is materialised as an
array only when someone asks for one (``plan``, ``global_plan``, a checkpoint).
"""

from __future__ import annotations

import numpy as np

from ..planning.stream import EpochStream
from . import collective as gdist
from .position import Plan


class RankPlan:
    """Epoch ``epoch``'s global stream and rank ``rank``'s part of it: its strided shard of
    ``world_size`` (:func:`gekodata.sampler.collective.rank_shard`'s layout) when ``shard``, else the
    whole stream."""

    def __init__(
        self, stream: Plan, epoch: int, *, rank: int, world_size: int, shard: bool
    ) -> None:
        self.epoch = int(epoch)
        self._global = stream
        self._local: Plan | None = None
        self._rank, self._world_size, self._shard = rank, world_size, shard
        self._in_plan: np.ndarray | None = None

    def local(self) -> Plan:
        """This rank's stream (made on first use; not materialised)."""
        if self._local is None:
            plan = self._global
            if not self._shard:
                self._local = plan
            elif isinstance(plan, EpochStream):
                self._local = plan.shard(self._rank, self._world_size)
            else:
                self._local = gdist.rank_shard(plan, self._rank, self._world_size)
        return self._local

    def local_array(self) -> np.ndarray:
        """This rank's stream as an array, int [len], materialised once (O(len))."""
        local = self.local()
        if isinstance(local, EpochStream):
            self._local = local = local.materialize()
        return local

    def global_array(self) -> np.ndarray:
        """The whole stream as an array, int [S], materialised once (O(S)); a one-rank shard of
        a stream computed on demand then shares it."""
        if isinstance(self._global, EpochStream):
            self._global = self._global.materialize()
            if isinstance(self._local, EpochStream) and self._local.world_size == 1:
                self._local = self._global
        return self._global

    def count_unplanned(self, idx: np.ndarray, num_samples: int) -> int:
        """How many of ``idx`` (int [k], each in ``[0, num_samples)``) are not in the global
        stream: O(k) per call after a first call that builds a bool [num_samples] membership mask
        from the stream's draws (O(N + S), kept with the plan). A stream that draws every sample
        once (no pool) answers 0 without one."""
        if len(idx) == 0:
            return 0
        plan = self._global
        pool = plan.pool if isinstance(plan, EpochStream) else plan
        if pool is None:  # arange(N): every sample is drawn once
            return 0
        if self._in_plan is None:
            mask = np.zeros(num_samples, dtype=bool)
            mask[pool] = True
            self._in_plan = mask
        return len(idx) - int(np.count_nonzero(self._in_plan[idx]))

    def draws_of(self, idx: np.ndarray, num_samples: int) -> np.ndarray:
        """Draws of each of ``idx`` (int [k]) in the global stream, int64 [k]: O(N + S), one
        count over the stream's draws (not kept)."""
        plan = self._global
        pool = plan.pool if isinstance(plan, EpochStream) else plan
        if pool is None:  # arange(N): every sample is drawn once
            return np.ones(len(idx), dtype=np.int64)
        return np.bincount(pool, minlength=num_samples)[idx].astype(np.int64)
