"""What :class:`~gekodata.lightning.GekoCallback` checks and sets on Lightning's ``Trainer``.

Lightning measures the train loader once, when it sets it up (``len(loader)`` of the first
epoch it runs, or of the epoch a run resumes in), and keeps that count for every later epoch:
``fit_loop.max_batches`` ends an epoch after that many batches, the ``CombinedLoader``'s limit
caps its length, and ``val_check_batch`` (from ``val_check_interval``) places validation. A
gekodata epoch has its own length, known once ``set_epoch`` planned it, so
:func:`sync_epoch_length` sets the three from the current plan before the epoch's loader iterator
is made. These are the only Lightning internals used (``fit_loop._combined_loader`` is private);
:func:`check_trainer` refuses a ``Trainer`` without them, and warns outside :data:`TESTED`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from torch.utils.data import BatchSampler, DataLoader

from ..sampler.weighted_bucket import WeightedBucketSampler

# The pytorch-lightning releases tests/test_lightning.py passes on (PEP 440; the extra says the same).
TESTED = ">=2.6,<2.7"


def check_version() -> None:
    """``UserWarning`` when the installed pytorch-lightning is outside :data:`TESTED`."""
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    installed = version("pytorch-lightning")
    if installed not in SpecifierSet(TESTED):
        warnings.warn(
            f"gekodata.lightning is tested with pytorch-lightning {TESTED}, not {installed}: it "
            "sets the fit loop's per-epoch length (gekodata.lightning.loop); run "
            "tests/test_lightning.py against this release before trusting a run",
            UserWarning,
            stacklevel=3,
        )


def check_trainer(trainer: Any, sampler: WeightedBucketSampler) -> None:
    """Refuse settings that would train another plan than the sampler's (``ValueError``)."""
    if not all(hasattr(trainer.fit_loop, name) for name in ("max_batches", "_combined_loader")):
        raise RuntimeError(
            "this Lightning release's fit loop has no max_batches/_combined_loader, which "
            f"GekoCallback sets each epoch; install pytorch-lightning{TESTED}"
        )
    if trainer.max_epochs != sampler.num_epochs:
        raise ValueError(
            f"Trainer(max_epochs={trainer.max_epochs}) but the sampler plans num_epochs="
            f"{sampler.num_epochs} (its curriculum is laid out over them): give both the same value"
        )
    if trainer.reload_dataloaders_every_n_epochs:
        raise ValueError(
            f"Trainer(reload_dataloaders_every_n_epochs={trainer.reload_dataloaders_every_n_epochs}): "
            "Lightning would measure the reloaded loader before set_epoch plans the epoch; the "
            "sampler changes the epoch itself, so keep the default 0"
        )
    limit = trainer.limit_train_batches
    if limit is not None and not (isinstance(limit, float) and limit == 1.0):
        raise ValueError(
            f"Trainer(limit_train_batches={limit!r}) cuts gekodata's epochs "
            "short of their plan; shrink the epoch with the sampler's budget= instead"
        )
    world = int(trainer.world_size)
    if sampler.world_size != world or sampler.rank != int(trainer.global_rank):
        raise ValueError(
            f"the sampler has rank={sampler.rank}, world_size={sampler.world_size} but this "
            f"Trainer runs rank {trainer.global_rank} of {world}: build the sampler after the "
            "process group exists (in LightningDataModule.setup()) and pass "
            "GekoCallback(lambda: datamodule.sampler)"
        )
    if world > 1 and not sampler.shard:
        raise ValueError(
            f"the sampler has shard=False under {world} processes: Lightning does not shard it "
            "(use_distributed_sampler=False), so every rank would train the whole plan; build it "
            "with shard=True"
        )


def find_loader(trainer: Any, sampler: WeightedBucketSampler) -> DataLoader:
    """The train ``DataLoader`` that draws from ``sampler``. ``ValueError`` when Lightning wrapped it
    in its ``DistributedSamplerWrapper`` (double sharding, stale lengths) or no loader uses it;
    ``TypeError`` for a batch sampler other than torch's ``BatchSampler``."""
    loaders = trainer.train_dataloader
    flat = list(loaders.values()) if isinstance(loaders, dict) else loaders
    flat = flat if isinstance(flat, (list, tuple)) else [flat]
    for loader in flat:
        batch_sampler = getattr(loader, "batch_sampler", None)
        inner = getattr(batch_sampler, "sampler", None)
        if (
            getattr(inner, "_sampler", None) is sampler
            or getattr(getattr(inner, "dataset", None), "_sampler", None) is sampler
        ):
            raise ValueError(
                "Lightning wrapped the gekodata sampler in a DistributedSampler: it would shard "
                "the plan a second time and keep the first epoch's length. Use "
                "Trainer(use_distributed_sampler=False) and build the sampler with shard=True in "
                "LightningDataModule.setup()"
            )
        if inner is sampler or getattr(loader, "sampler", None) is sampler:
            if type(batch_sampler) is not BatchSampler:
                raise TypeError(
                    f"the train loader batches with {type(batch_sampler).__name__}; GekoCallback "
                    "counts positions in torch's BatchSampler: pass batch_size= and sampler= to "
                    "the DataLoader"
                )
            return loader
    raise ValueError(
        "no train DataLoader draws from the sampler given to GekoCallback: pass that sampler as "
        "DataLoader(dataset, batch_size=..., sampler=sampler) in train_dataloader()"
    )


def batches_in(loader: DataLoader, draws: int) -> int:
    """Batches ``loader`` makes of ``draws`` indices (its batch size and ``drop_last``)."""
    batch_sampler = loader.batch_sampler
    assert isinstance(batch_sampler, BatchSampler)
    size = batch_sampler.batch_size
    return draws // size if batch_sampler.drop_last else math.ceil(draws / size)


def sync_epoch_length(trainer: Any, batches: int) -> None:
    """Make Lightning run exactly ``batches`` batches this epoch (see the module docstring)."""
    fit_loop = trainer.fit_loop
    fit_loop.max_batches = batches
    if fit_loop._combined_loader is not None:
        fit_loop._combined_loader.limits = [batches]
    interval = trainer.val_check_interval
    if isinstance(interval, float) and getattr(trainer, "_val_check_time_interval", None) is None:
        trainer.val_check_batch = max(1, int(batches * interval))


__all__ = [
    "TESTED",
    "batches_in",
    "check_trainer",
    "check_version",
    "find_loader",
    "sync_epoch_length",
]
