"""`PruningDataset`: wraps a map-style dataset so that every item carries its own index.

The index travels inside the item, so it survives any collate function, worker prefetching,
accelerate's batch sharding and gradient accumulation; nothing needs to guess which samples a
batch held.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

# Largest accepted ``prune_frozen_after`` (epochs). The store counts frozen epochs in the uint8
# ``frozen_streak`` column (gekodata.store.layout), which saturates at 255: a larger limit never
# fires.
MAX_PRUNE_FROZEN_AFTER = 255


class PruningDataset(Dataset):
    """Map-style dataset wrapper that returns each item with its original index.

    What ``ds[i]`` returns, by the wrapped item's type (``w`` is the float loss weight, present
    only when the sampler has loss weights: unbiased mode, ``InfoBatchPolicy``), and what a batch
    of them looks like after torch's ``default_collate`` (``idx``: int64 tensor [B], ``weight``:
    float64 tensor [B]):

    =========================  ==========================================  ===========================================
    item type                  ``ds[i]``                                   batch after ``default_collate``
    =========================  ==========================================  ===========================================
    ``dict``                   new ``dict``: ``{**item, "idx": i}``        ``dict`` of batched values, ``batch["idx"]``
                               (plus ``"weight": w``)                      (and ``batch["weight"]``)
    other ``MutableMapping``   shallow copy of the same type               the same type (``BatchEncoding``,
    (``BatchEncoding``,        (``copy.copy``) with ``"idx"`` (and         ``UserDict``, ...), keys as for ``dict``
    ``UserDict``, dict         ``"weight"``) set; the original item is
    subclasses)                not modified
    other ``Mapping``          plain ``dict`` as above (the type can't     ``dict``
    (read-only)                be kept: it can't take the new keys)
    named tuple                ``(item, i)`` or ``(item, i, w)``: the      ``[NamedTuple of batches, idx(, weight)]``,
                               item untouched, type kept                   so ``item, idx = batch``
    ``tuple``                  ``(*item, i)`` or ``(*item, i, w)``         ``[*batched fields, idx(, weight)]``
    ``list``                   ``[*item, i]`` or ``[*item, i, w]``         ``[*batched fields, idx(, weight)]``
    anything else (tensor,     ``(item, i)`` or ``(item, i, w)``           ``[batched items, idx(, weight)]``,
    string, number)                                                        so ``x, idx = batch``
    =========================  ==========================================  ===========================================

    ``"idx"`` and ``"weight"`` stand for ``index_key`` and ``weight_key``. A mapping item that
    already has ``index_key`` raises ValueError, and so does one that has ``weight_key`` while
    the sampler has loss weights (without them the item's own key passes through untouched). A
    ``MutableMapping`` whose ``copy.copy`` shares storage with the original (a custom class
    without ``__copy__``) raises TypeError rather than writing the index into the wrapped
    dataset's item.

    ``batch["weight"]`` (``weight_key``) exists only when the sampler has loss weights; without
    them the loss weight is 1 for every sample, so ``batch.get("weight", 1)`` works for mapping
    items. Tuple, list and other items give a list, not a mapping (no ``.get``): unpack it by
    position, ``*fields, idx = batch`` or, with loss weights, ``*fields, idx, weight = batch``.

    Args:
        dataset: any map-style dataset with ``__len__`` and ``__getitem__(int)``; an
            ``IterableDataset`` is refused (TypeError).
        prune_frozen_after: the pruning rule the sampler applies to this data: prune a sample
            once it has been in the FREEZE bucket for this many consecutive epochs, 1 ..
            :data:`MAX_PRUNE_FROZEN_AFTER` (255); pruned samples are never planned again until
            :meth:`WeightedBucketSampler.unprune`. None (default) disables pruning. The dataset
            only declares it; the sampler reads it once, when it is built.
        index_key: key added to mapping items for the index.
        weight_key: key added to mapping items for the loss weight.

    ``len()`` is the wrapped dataset's length (``num_samples``), always: it is the index range
    that torch's samplers (``RandomSampler``, ``SequentialSampler``, ``DistributedSampler``) and
    a Trainer's eval loop draw from, and indices always refer to it. Pruning only changes what
    :class:`~gekodata.WeightedBucketSampler` plans (its ``num_live`` counts the samples not
    pruned). Any index can still be read, pruned or not. The dataset knows nothing of the
    sampler or its store: the sampler hands it the loss weights to carry
    (:meth:`set_loss_weights`), in shared memory, so persistent workers see every epoch's values;
    the wrapper pickles for ``num_workers > 0`` (fork or spawn).

    Examples:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from gekodata import PruningDataset
        >>> ds = PruningDataset(TensorDataset(torch.arange(4.0), torch.tensor([0, 1, 0, 1])))
        >>> ds[2]
        (tensor(2.), tensor(0), 2)
        >>> PruningDataset([{"x": 1.0}, {"x": 2.0}])[1]
        {'x': 2.0, 'idx': 1}
    """

    def __init__(
        self,
        dataset: Any,
        *,
        prune_frozen_after: int | None = None,
        index_key: str = "idx",
        weight_key: str = "weight",
    ) -> None:
        if isinstance(dataset, IterableDataset):
            raise TypeError(
                f"PruningDataset wraps map-style datasets; {type(dataset).__name__} is an "
                "IterableDataset (items are streamed, not read by index, so they cannot carry one)"
            )
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"PruningDataset wraps map-style datasets (with __len__ and __getitem__), "
                f"got {type(dataset).__name__}"
            )
        if prune_frozen_after is not None:
            if int(prune_frozen_after) < 1:
                raise ValueError(
                    f"prune_frozen_after must be >= 1 or None, got {prune_frozen_after}"
                )
            if int(prune_frozen_after) > MAX_PRUNE_FROZEN_AFTER:
                raise ValueError(
                    f"prune_frozen_after must be <= {MAX_PRUNE_FROZEN_AFTER}, got {prune_frozen_after}: "
                    f"the frozen streak counts up to {MAX_PRUNE_FROZEN_AFTER} epochs (a uint8 column), "
                    "so a larger limit would never prune"
                )
        if index_key == weight_key:
            raise ValueError("index_key and weight_key must differ")
        self.dataset = dataset
        self.num_samples = len(dataset)
        self.prune_frozen_after = None if prune_frozen_after is None else int(prune_frozen_after)
        self.index_key = index_key
        self.weight_key = weight_key
        self._loss_weights: torch.Tensor | None = None
        self._weight_view: np.ndarray | None = None  # numpy view of _loss_weights, made on use

    def set_loss_weights(self, weights: torch.Tensor | None) -> None:
        """Carry ``weights[i]`` with item ``i`` from now on (under ``weight_key``, or as the last
        tuple member); None stops. ``weights``: float32 [num_samples], on the CPU; put it in
        shared memory (``share_memory_()``) so that worker processes see later updates in place.
        The sampler calls this when it has loss weights (unbiased mode, ``InfoBatchPolicy``)."""
        if weights is not None:
            if not isinstance(weights, torch.Tensor):
                raise TypeError(
                    f"weights must be a torch.Tensor or None, got {type(weights).__name__}"
                )
            if weights.dtype != torch.float32 or weights.shape != (self.num_samples,):
                raise ValueError(
                    f"weights must be float32 [{self.num_samples}], got {weights.dtype} "
                    f"{list(weights.shape)}"
                )
            if weights.device.type != "cpu":
                raise ValueError(f"weights must be on the CPU, got {weights.device}")
        self._loss_weights = weights
        self._weight_view = None

    def __len__(self) -> int:
        """The wrapped dataset's length (``num_samples``), pruned samples included."""
        return self.num_samples

    def __getitem__(self, index: int) -> Any:
        index = int(index)
        weights = self._weight_array()
        return self._with_index(
            self.dataset[index], index, None if weights is None else float(weights[index])
        )

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Items ``indices`` (a batch), as :meth:`__getitem__` returns them, in one call: torch's
        DataLoader uses it for batched fetching. A wrapped dataset's own ``__getitems__`` (e.g. a
        Hugging Face ``datasets.Dataset``: one batched Arrow read) is used when it has one, and
        the loss weights are read for the whole batch at once."""
        indices = [int(i) for i in indices]
        fetch = getattr(self.dataset, "__getitems__", None)
        items = fetch(indices) if fetch else [self.dataset[i] for i in indices]
        if len(items) != len(indices):
            raise ValueError(
                f"{type(self.dataset).__name__}.__getitems__ returned {len(items)} items "
                f"for {len(indices)} indices"
            )
        weights = self._weight_array()
        if weights is None:
            if all(
                type(item) is tuple for item in items
            ):  # TensorDataset and the like: the common case
                return [(*item, i) for item, i in zip(items, indices)]
            return [self._with_index(item, i, None) for item, i in zip(items, indices)]
        return [
            self._with_index(item, i, w)
            for item, i, w in zip(items, indices, weights[indices].tolist())
        ]

    def _weight_array(self) -> np.ndarray | None:
        """The sampler's loss weights (shared memory) as a numpy view, float32 [N]; None without."""
        if self._loss_weights is None:
            return None
        if self._weight_view is None:
            self._weight_view = self._loss_weights.numpy()
        return self._weight_view

    def _with_index(self, item: Any, index: int, weight: float | None) -> Any:
        """``item`` with its index (and loss weight) attached, by the item's type (class docstring)."""
        kind = type(item)
        # checks ordered by how common the type is: dict, tuple (TensorDataset), then the rest
        if kind is dict:
            if self.index_key in item or (weight is not None and self.weight_key in item):
                self._key_taken(weight is not None and self.weight_key in item)
            out = dict(item)
            out[self.index_key] = index
            if weight is not None:
                out[self.weight_key] = weight
            return out
        if kind is tuple:
            return (*item, index) if weight is None else (*item, index, weight)
        if isinstance(item, Mapping):
            return self._mapping_item(item, index, weight)
        extras = (index,) if weight is None else (index, weight)
        if isinstance(item, tuple):
            return (
                (item, *extras) if hasattr(item, "_fields") else (*item, *extras)
            )  # named tuple: kept whole
        if isinstance(item, list):
            return [*item, *extras]
        return (item, *extras)

    def _key_taken(self, weight: bool = False) -> None:
        if weight:  # only with loss weights: the sampler's weight would overwrite the item's
            raise ValueError(
                f"dataset item already has a key {self.weight_key!r}, where the sampler's loss "
                "weight goes (unbiased mode, InfoBatchPolicy); pass weight_key=... to "
                "PruningDataset"
            )
        raise ValueError(
            f"dataset item already has a key {self.index_key!r}; pass index_key=... to PruningDataset"
        )

    def _mapping_item(self, item: Mapping, index: int, weight: float | None) -> Mapping:
        """A non-``dict`` mapping item with the index (and weight) keys: a shallow copy of the same
        type when it is mutable, else a plain ``dict``."""
        if self.index_key in item or (weight is not None and self.weight_key in item):
            self._key_taken(weight is not None and self.weight_key in item)
        if not isinstance(item, MutableMapping):
            out: MutableMapping = dict(item)
        else:
            out = copy.copy(item)
        out[self.index_key] = index
        if self.index_key in item:  # the copy shares the original's storage: undo and refuse
            del item[self.index_key]  # type: ignore[attr-defined]
            raise TypeError(
                f"copy.copy() of a {type(item).__name__} item shares its storage, so adding the index "
                "would modify the wrapped dataset's item; give the class a __copy__ that copies its "
                "storage, or return dict items"
            )
        if weight is not None:
            out[self.weight_key] = weight
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_weight_view"] = None  # rebuilt from the shared-memory tensor where it is unpickled
        return state

    def __repr__(self) -> str:
        return (
            f"PruningDataset({type(self.dataset).__name__}, num_samples={self.num_samples}, "
            f"prune_frozen_after={self.prune_frozen_after})"
        )
