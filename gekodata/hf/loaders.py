"""Find the gekodata sampler behind a (possibly accelerate-prepared) DataLoader and report to it.

For loops that do not use :class:`~gekodata.hf.GekoTrainer` (which uses these helpers itself).
accelerate without Trainer: give the sampler (``shard=False``) to the DataLoader you ``prepare``,
call ``loader.set_epoch(epoch)`` on the prepared loader (it forwards to the sampler; accelerate
calls ``set_epoch(iteration)`` on it at every ``iter()``, so calling only the sampler's would be
overridden) and report with :func:`report_batch`, which checks that the loader really draws from a
gekodata sampler, sharded once.

Needs neither transformers nor accelerate (without accelerate no loader counts as sharded by it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..dataset import PruningDataset
from ..sampler import collective as gdist
from ..sampler.weighted_bucket import WeightedBucketSampler
from ..signals import Signals


def _find_sampler(loader: Any) -> tuple[WeightedBucketSampler | None, str]:
    """(the WeightedBucketSampler behind ``loader`` or None, name of the sampler it really draws from)."""
    stack, seen = [(loader, 0)], set()
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, WeightedBucketSampler):
            return obj, type(obj).__name__
        if id(obj) in seen or depth > 6:
            continue
        seen.add(id(obj))
        for attr in ("sampler", "batch_sampler"):  # batch_sampler popped first
            child = getattr(obj, attr, None)
            if child is not None and child is not obj:
                stack.append((child, depth + 1))
    # the innermost sampler along the chain the loader iterates (batch_sampler before sampler: a
    # DataLoader built with batch_sampler= also holds a dummy SequentialSampler)
    obj, leaf = loader, type(loader).__name__
    for _ in range(6):
        child = getattr(obj, "batch_sampler", None)
        child = child if child is not None else getattr(obj, "sampler", None)
        if child is None or child is obj:
            break
        obj, leaf = child, type(child).__name__
    return None, leaf


def _accelerate_shards(loader: Any) -> bool:
    """True if accelerate splits this loader's batches across more than one process."""
    try:
        from accelerate.data_loader import BatchSamplerShard, DataLoaderDispatcher
    except ImportError:  # pragma: no cover
        return False
    if isinstance(loader, DataLoaderDispatcher):
        return gdist.is_distributed()
    obj = loader
    for _ in range(6):
        child = getattr(obj, "batch_sampler", None)
        obj = child if child is not None else getattr(obj, "sampler", None)
        if obj is None:
            return False
        if isinstance(obj, BatchSamplerShard):
            return obj.num_processes > 1
    return False


def sampler_of(loader: Any) -> WeightedBucketSampler:
    """The :class:`WeightedBucketSampler` a (possibly accelerate-prepared) loader draws from.

    Also checks that the plan is sharded exactly once across processes. Raises ``TypeError`` if
    the loader's sampler is not gekodata's (reports would name samples the plan never drew) and
    ``ValueError`` for double sharding (``shard=True`` under accelerate) or none (``shard=False``
    with a plain per-rank DataLoader: every rank would train the whole plan).
    """
    sampler, leaf = _find_sampler(loader)
    if sampler is None:
        raise TypeError(
            f"this DataLoader draws from {leaf}, not from a gekodata WeightedBucketSampler: reports "
            "would describe samples the gekodata plan never drew. Build the loader with "
            "DataLoader(PruningDataset(...), sampler=WeightedBucketSampler(...)) (no shuffle=True)"
        )
    if gdist.is_distributed():
        split = _accelerate_shards(loader)
        if split and sampler.shard:
            raise ValueError(
                "double sharding: accelerate already deals this loader's batches out to the "
                f"{gdist.resolve_rank_world(None, None)[1]} processes, and the sampler (shard=True) "
                "gives each rank only its slice of the plan too; build it with shard=False"
            )
        if not split and not sampler.shard:
            raise ValueError(
                "the sampler has shard=False (whole plan on every rank) but nothing shards this "
                "loader: every rank would train every sample. Use shard=True for a plain per-rank "
                "DataLoader, or prepare the loader with accelerate"
            )
    return sampler


def _index_of(batch: Any, key: str, where: str) -> torch.Tensor:
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"{where}: batches must be dicts (mapping items), got {type(batch).__name__}"
        )
    if key not in batch:
        raise ValueError(
            f"{where}: the batch has no {key!r} column (keys: {sorted(map(str, batch))}). Wrap the "
            f"dataset in gekodata.PruningDataset so every item carries its index, and keep {key!r} "
            "through the collate function"
        )
    idx = batch[key]
    idx = idx if isinstance(idx, torch.Tensor) else torch.as_tensor(idx)
    if idx.dim() != 1 or idx.is_floating_point() or idx.dtype == torch.bool:
        raise ValueError(
            f"{where}: batch[{key!r}] must be a 1-D integer tensor [B], got "
            f"{idx.dtype} of shape {tuple(idx.shape)}"
        )
    return idx


def report_batch(
    loader: Any,
    batch: Mapping,
    loss: torch.Tensor | Signals,
    conf: torch.Tensor | None = None,
    correct: torch.Tensor | None = None,
    *,
    pred: torch.Tensor | None = None,
    label: torch.Tensor | None = None,
) -> None:
    """``sampler.report(loss, conf, correct, batch["idx"], pred=pred, label=label)`` for the
    sampler behind ``loader``; ``report_batch(loader, batch, signals)`` with the
    :class:`~gekodata.signals.Signals` of ``classification_signals`` passes its labels along.

    ``loss``, ``conf``, ``correct`` (and the optional predicted and given labels ``pred``,
    ``label``): [B] for the B rows of ``batch`` (this process's rows; the sampler gathers all
    processes' reports at its next sync point). Raises as :func:`sampler_of` does, and
    ``ValueError`` if the batch carries no usable index.
    """
    sampler = sampler_of(loader)
    key = (
        sampler.data_source.index_key if isinstance(sampler.data_source, PruningDataset) else "idx"
    )
    idx = _index_of(batch, key, "report_batch")
    sampler.report(loss, conf, correct, idx, pred=pred, label=label)


__all__ = ["report_batch", "sampler_of"]
