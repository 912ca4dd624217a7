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
