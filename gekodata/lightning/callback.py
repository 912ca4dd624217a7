"""GekoCallback: one ``Trainer`` callback that trains a LightningModule on a gekodata plan.

In a few added lines::

    ds = PruningDataset(train_ds)                                   # items gain "idx"
    sampler = WeightedBucketSampler(ds, num_epochs=5, seed=0)
    loader = DataLoader(ds, batch_size=32, sampler=sampler)
    trainer = pl.Trainer(max_epochs=5, callbacks=[GekoCallback(sampler)])
    trainer.fit(module, loader)                                      # or ckpt_path=...

    # in the LightningModule
    def training_step(self, batch, batch_idx):
        signals = classification_signals(self(batch["x"]), batch["y"])  # loss, conf, correct [B]
        return {"loss": signals.loss.mean(), "gekodata": geko_outputs(signals, batch["idx"])}

What it does, and why:

* **Epochs.** Lightning itself calls ``sampler.set_epoch(epoch)`` before each train epoch (its
  ``_set_sampler_epoch``, with the fit loop's epoch); the callback calls it again with
  ``trainer.current_epoch`` in ``on_train_epoch_start`` (the same epoch: a no-op that keeps the
  plan) and then tells the fit loop the epoch's real length (:mod:`gekodata.lightning.loop`):
  Lightning would otherwise keep the first epoch's batch count for every epoch.
* **Reports** come from ``training_step``'s output (:mod:`gekodata.lightning.outputs`), in
  ``on_train_batch_end``: no second forward, no hook in the module.
* **Checkpoints.** The callback's ``state_dict`` holds the sampler file (store, plan, reports not
  yet folded) and the position of the last *trained* batch, so ``trainer.fit(ckpt_path=...)``
  continues the same index stream with the same store, mid-epoch or at an epoch boundary
  (:mod:`gekodata.lightning.checkpoint`).
* **DDP.** ``Trainer(strategy="ddp", use_distributed_sampler=False)``, the sampler built with
  ``shard=True`` once the process group exists, in ``LightningDataModule.setup()``, and
  ``GekoCallback(lambda: dm.sampler)``: every rank trains its shard of the one global plan. A
  sampler Lightning wrapped in its ``DistributedSampler`` (the default) is refused at train start.
"""

from __future__ import annotations

from typing import Any, Callable, Union

from ..sampler.weighted_bucket import WeightedBucketSampler
from . import loop
from .checkpoint import restore_sampler, sampler_entries
from .outputs import signals_of

try:  # the callback needs Lightning; importing this module does not
    from pytorch_lightning import Callback as _Callback

    _LIGHTNING = True
except ImportError:  # pragma: no cover - exercised without Lightning
    _Callback = object  # type: ignore[assignment,misc]
    _LIGHTNING = False

SamplerSource = Union[WeightedBucketSampler, Callable[[], WeightedBucketSampler]]


class GekoCallback(_Callback):  # type: ignore[misc,valid-type]
    """Drives ``sampler`` from a Lightning ``Trainer``: epochs, reports, checkpoints.

    Args:
        sampler: the ``WeightedBucketSampler`` the train DataLoader draws from, or a zero-argument
            callable returning it, called in ``setup`` (after the process group exists and after
            ``LightningDataModule.setup``): the way to use a sampler built in ``setup()`` (DDP).

    ``Trainer(max_epochs=...)`` must equal the sampler's ``num_epochs``. :attr:`progress` is the
    run's progress through its plans in [0, 1], for LR schedules
    (:func:`gekodata.lightning.plan_progress_lr`).
    """

    def __init__(self, sampler: SamplerSource) -> None:
        if not _LIGHTNING:
            raise ImportError(
                "GekoCallback needs PyTorch Lightning: pip install 'gekodata[lightning]' "
                "(pytorch-lightning " + loop.TESTED + ")"
            )
        if not (isinstance(sampler, WeightedBucketSampler) or callable(sampler)):
            raise TypeError(
                f"GekoCallback(sampler=...) got {type(sampler).__name__}; pass the "
                "WeightedBucketSampler of the train DataLoader, or a function returning it"
            )
        loop.check_version()
        self._source = sampler
        self._sampler = sampler if isinstance(sampler, WeightedBucketSampler) else None
        self._loader: Any = None
        self._batches = 0  # batches of the current epoch started (trained once the step ends)
        self._epoch_batches = 0  # batches the current epoch's plan makes on this rank
        self._epoch_ended = False
        self._pending_state: dict[str, Any] | None = None
        self._restore = True  # False while Lightning loads a checkpoint for validate/test/predict

    @property
    def sampler(self) -> WeightedBucketSampler:
        """The sampler (resolved from the callable at ``setup``)."""
        if self._sampler is None:
            raise RuntimeError(
                "GekoCallback's sampler comes from a function that runs at Trainer setup; it has "
                "not run yet (call trainer.fit first)"
            )
        return self._sampler

    @property
    def progress(self) -> float:
        """Progress through the run's plans in [0, 1]: ``(epoch + b / n) / num_epochs`` after
        ``b`` of the epoch's ``n`` batches (0 before training starts)."""
        if self._sampler is None:
            return 0.0
        sampler = self._sampler
        within = self._batches / self._epoch_batches if self._epoch_batches else 0.0
        return min((sampler.epoch + within) / sampler.num_epochs, 1.0)

    # ------------------------------------------------------------------ setup and epochs
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        if self._sampler is None:
            sampler = self._source()  # type: ignore[operator]
            if not isinstance(sampler, WeightedBucketSampler):
                raise TypeError(
                    f"GekoCallback's sampler function returned {type(sampler).__name__}; it must "
                    "return the WeightedBucketSampler of the train DataLoader"
                )
            self._sampler = sampler
        loop.check_trainer(trainer, self._sampler)
        if self._pending_state is not None:
            state, self._pending_state = self._pending_state, None
            self.load_state_dict(state)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._loader = loop.find_loader(trainer, self.sampler)
        if trainer.current_epoch != self.sampler.epoch:
            raise ValueError(
                f"Lightning resumes at epoch {trainer.current_epoch} but the sampler is at epoch "
                f"{self.sampler.epoch}: the checkpoint's loop and gekodata states disagree (a "
                "checkpoint saved in on_train_epoch_start?); resume from another checkpoint"
            )
        self._begin_epoch(trainer)  # a resumed epoch gets no on_train_epoch_start from Lightning

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.sampler.set_epoch(trainer.current_epoch)  # Lightning did the same just before: no-op
        self._batches, self._epoch_ended = 0, False
        self._begin_epoch(trainer)

    def _begin_epoch(self, trainer: Any) -> None:
        self._epoch_batches = loop.batches_in(self._loader, len(self.sampler))
        loop.sync_epoch_length(trainer, self._epoch_batches)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        # counted at the start: Lightning steps "step" LR schedulers before on_train_batch_end,
        # and progress must include the batch being trained
        self._batches += 1

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        signals = signals_of(outputs)
        if signals is not None:
            self.sampler.report(**signals)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_ended = True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The sampler file and the trained position (a collective under DDP: every rank runs it
        when Lightning saves)."""
        if self._sampler is None:
            return {}
        drawn = len(self._sampler)
        if self._loader is not None:
            size = self._loader.batch_sampler.batch_size
            drawn = min(self._batches * size, len(self._sampler))
        finished = self._epoch_ended or (
            self._loader is not None and self._batches >= self._epoch_batches
        )
        entries = sampler_entries(self._sampler, drawn, finished)
        entries["batches"] = self._batches
        return entries

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        # Lightning calls load_state_dict next, for validate/test/predict with ckpt_path too: only
        # a fit continues the plan, so only a fit restores the sampler
        self._restore = str(getattr(trainer.state.fn, "value", trainer.state.fn)) == "fit"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        restore, self._restore = self._restore, True
        if not restore:
            return
        if self._sampler is None:  # the sampler function runs at setup; restore then
            self._pending_state = dict(state_dict)
            return
        restore_sampler(self._sampler, state_dict)
        self._batches = 0 if state_dict["finished"] else int(state_dict["batches"])
        self._epoch_ended = False


__all__ = ["GekoCallback"]
