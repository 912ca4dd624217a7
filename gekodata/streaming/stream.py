"""`SelectedStream`: an iterable source, filtered example by example by a
:class:`~gekodata.streaming.StreamSelector`.

Each example's sample id comes from ``id_key`` (a Mapping item's column, or a function of the
item) or, with ``id_key=None``, from its position in the source as this wrapper reads it. The
example is kept when ``uniform(seed, epoch, id) < p_id`` (:mod:`gekodata.streaming.keys`), an O(1)
test that depends on nothing else, so the kept set is the same for any DataLoader worker count,
shard order or resume point. Kept items gain ``"idx"`` (the id) and ``"weight"`` (the loss
weight) as a :class:`~gekodata.dataset.PruningDataset` item does: a Mapping gets both keys (a
shallow copy of the same type), a tuple gets both appended, any other item becomes
``(item, idx, weight)``.

Sharding: with ``id_key`` the source shards itself (a HF ``datasets.IterableDataset`` splits its
shards over DataLoader workers and, through ``split_dataset_by_node``, over ranks). With
``id_key=None`` positions are only meaningful over the whole source, so the wrapper reads all of
it in every worker and rank and keeps position ``k`` only in slot ``k mod (world_size *
num_workers)`` (every worker reads every example; the skip saves compute, not reading).

Resume: :meth:`SelectedStream.state_dict` nests the source's own ``state_dict`` (HF datasets,
torchdata nodes, any Stateful source) with the position, so torchdata's ``StatefulDataLoader``
restores the stream; :meth:`~gekodata.streaming.StreamSelector.load` restores the keep table. A source without
``state_dict`` is replayed up to the position (reads it again, decides nothing twice).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Union

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..sampler import collective as gdist
from .keys import uniform_one

IdKey = Union[str, Callable[[Any], int], None]


class SelectedStream(IterableDataset):
    """The examples of ``source`` that ``selector`` keeps this epoch (module docstring).

    Args:
        source: any re-iterable source: a torch ``IterableDataset``, a HF
            ``datasets.IterableDataset``, a torchdata node wrapped as an iterable, a list.
        selector: the :class:`~gekodata.streaming.StreamSelector` whose keep table decides.
        id_key: a Mapping item's id column (int in ``[0, N)``), a function ``item -> id``, or
            None for the position in the source.
        rank, world_size: the position split of ``id_key=None`` (default: the process group's;
            ignored with an ``id_key``).
    """

    def __init__(
        self,
        source: Iterable[Any],
        selector: Any,
        *,
        id_key: IdKey = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not all(hasattr(selector, a) for a in ("_keep", "_weight", "_key", "num_samples")):
            raise TypeError(f"selector must be a StreamSelector, got {type(selector).__name__}")
        if id_key is not None and not (isinstance(id_key, str) or callable(id_key)):
            raise TypeError(f"id_key must be a column name, a function or None, got {id_key!r}")
        self.source = source
        self.selector = selector
        self.id_key = id_key
        self.rank, self.world_size = gdist.resolve_rank_world(rank, world_size, standalone=True)
        self._position = 0  # next source position this iterator reads (position mode)
        self._restored: dict[str, Any] | None = None
        self._source_resumed = False

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Any]:
        selector = self.selector
        keep = selector._keep.numpy()
        weight = selector._weight.numpy()
        key = int(np.array([int(selector._key[1])], dtype=np.int64).view(np.uint64)[0])
        n = selector.num_samples
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        slots, slot = workers * self.world_size, self.rank * workers + worker
        start = self._resume_source()
        self._position = start
        for position, item in self._items(start):
            self._position = position + 1
            if self.id_key is None:
                if position % slots != slot:
                    continue
                sample = position
            else:
                sample = self._id_of(item)
            if not 0 <= sample < n:
                raise ValueError(
                    f"sample id {sample} is outside [0, {n}) of the selector; give the "
                    "StreamSelector num_samples above the largest id"
                )
            if uniform_one(key, sample) < keep[sample]:
                yield _attach(item, sample, float(weight[sample]))

    def _items(self, start: int) -> Iterator[tuple[int, Any]]:
        """(position, item) from ``start``: the source resumed by its own state, or replayed."""
        items = iter(self.source)
        if start and not self._source_resumed:
            items = itertools.islice(items, start, None)  # a source without state: read again
        return enumerate(items, start)

    def _resume_source(self) -> int:
        state, self._restored = self._restored, None
        self._source_resumed = False
        if state is None:
            return 0
        source_state = state.get("source")
        if source_state is not None and hasattr(self.source, "load_state_dict"):
            self.source.load_state_dict(source_state)
            self._source_resumed = True
        return int(state["position"])

    def _id_of(self, item: Any) -> int:
        if callable(self.id_key):
            value = self.id_key(item)
        else:
            if not isinstance(item, Mapping):
                raise TypeError(
                    f"id_key={self.id_key!r} needs Mapping items, got {type(item).__name__}; "
                    "pass id_key=lambda item: ... or None (position in the source)"
                )
            try:
                value = item[self.id_key]
            except KeyError:
                raise KeyError(
                    f"item has no {self.id_key!r} column (columns: {sorted(item)}); add a "
                    "stable id column or pass id_key=None"
                ) from None
        if isinstance(value, torch.Tensor):
            value = value.item()
        return int(value)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """The position and the source's own state (when it has a ``state_dict()`` that takes no
        arguments; otherwise a resume replays the source up to the position)."""
        inner = None
        if hasattr(self.source, "state_dict"):
            try:
                inner = self.source.state_dict()
            except TypeError:  # a state_dict that needs arguments (Mosaic's): replay instead
                inner = None
        return {"position": self._position, "source": inner, "epoch": self.selector.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state`` at the next ``iter()``."""
        self._restored = dict(state)


def _attach(item: Any, sample: int, weight: float) -> Any:
    if isinstance(item, Mapping):
        out = dict(item) if type(item) is dict else _copy_mapping(item)
        out["idx"] = sample
        out["weight"] = weight
        return out
    if isinstance(item, tuple) and not hasattr(item, "_fields"):
        return (*item, sample, weight)
    return (item, sample, weight)


def _copy_mapping(item: Mapping[str, Any]) -> Any:
    try:
        out = type(item)(item)  # type: ignore[call-arg]
    except TypeError:
        return dict(item)
    return out
