"""GekoTrainer: ``transformers.Trainer`` trained on a gekodata plan; :class:`GekoTrainerMixin` for
other Trainer subclasses (:class:`~gekodata.hf.GekoSFTTrainer` is the mixin on TRL's ``SFTTrainer``).

Trainer, in a few added lines::

    ds = PruningDataset(train_ds)                                         # items gain "idx"
    sampler = WeightedBucketSampler(ds, num_epochs=3, seed=0, shard=False)  # accelerate shards batches
    trainer = GekoTrainer(model=model, args=TrainingArguments(out, num_train_epochs=3),
                          train_dataset=ds, sampler=sampler)             # instead of Trainer(...)
    trainer.train()                                                       # or train(resume_from_checkpoint=True)

What the mixin changes, and why:

* **Sampler.** The train loader draws from your sampler. The Trainer's ``accelerator.prepare``
  wraps it in accelerate's ``BatchSamplerShard``, which deals the batches of one global stream out
  to the processes, so the sampler must emit the whole global plan on every rank (``shard=False``;
  ``shard=True`` under several processes: refused). Before each epoch the loader's ``set_epoch``
  plans the epoch on every rank (the same plan: same seed, same synchronised store).
* **Signals from the Trainer's own forward.** ``compute_loss`` pops ``"idx"`` (and the unbiased
  ``"weight"``) and ``labels`` from the batch, runs the model once *without* labels, takes
  per-sample (loss, confidence, correctness) from ``outputs.logits`` (:mod:`gekodata.signals`) and
  reports them with the batch's ``"idx"``.
* **Loss normalisation.** Sample ``i`` has mean loss ``l_i`` over ``n_i`` targets (1 for
  classification, its target-token count for a causal LM) and loss weight ``w_i`` (1 unless
  unbiased / InfoBatch). The loss is ``sum_i w_i n_i l_i / num_items_in_batch`` when Trainer passes
  ``num_items_in_batch`` (the accumulation window's target count over all processes with
  ``average_tokens_across_devices``; then times the process count, as Trainer does, to undo DDP's
  averaging), marked scaled for gradient accumulation; else ``sum_i w_i n_i l_i / sum_i n_i`` over
  the micro-batch, which Trainer divides by the accumulation steps. With ``w = 1`` that is Trainer's
  own loss for causal LMs (tested equal); classification heads that ignore ``num_items_in_batch``
  (BERT returns the micro-batch mean, so its gradients grow with ``gradient_accumulation_steps``)
  get the window mean Trainer intends: ``b`` x ``k`` accumulation steps = one batch of ``k*b``.
* **"idx" survives ``remove_unused_columns``** (the index and weight keys join the kept columns;
  popped before the forward). At ``train()`` start one item goes through the train loader's
  collate function: if the index does not come out, a ``ValueError`` names the cause.
* **Checkpoints** carry the sampler and gekodata's epoch/step record (:mod:`gekodata.hf.checkpoint`);
  ``resume_from_checkpoint`` restores both and continues the same plan at the same batch.
* **Shrinking epochs, max_steps, LR.** Trainer computes ``max_steps`` once from the first epoch
  (``T = num_train_epochs * F``). Here (1) each epoch's step count is ``len(loader)`` after
  planning it, (2) training length is given in epochs (``num_train_epochs`` = the sampler's
  ``num_epochs``; ``max_steps > 0`` is refused), (3) the LR schedule built for ``T`` steps follows
  progress through the plan (:mod:`gekodata.hf.schedule`): shrunk epochs reach the end of warmup
  and decay where full ones would. ``state.global_step`` counts real optimizer steps;
  ``state.max_steps`` and the progress bar follow the plans (:mod:`gekodata.hf.progress`: exact for
  the epochs planned, the rest estimated, so a finished run ends at n/n).
* **What the run tells.** Per epoch a record (planned, trained, saved, buckets) through
  ``Trainer.log`` (``log_history``, ``report_to``); ``train_samples_per_second`` counted from the
  samples trained; the efficiency report written to ``args.output_dir`` at the end
  (:mod:`gekodata.hf.progress`).

Public hooks used: ``get_train_dataloader`` (the collate probe), ``create_scheduler``,
``compute_loss``, ``prediction_step``, ``train`` and the ``on_save`` callback event. Private
``Trainer`` methods still extended, each because no public hook can do it:

* ``_get_train_sampler``: the only way to put a sampler into the loader Trainer builds (batch size,
  collator, workers, accelerate sharding) short of copying that construction. If a release stops
  calling it, every epoch start finds another sampler behind the loader and raises ``TypeError``.
* ``_set_signature_columns_if_needed``: the columns ``remove_unused_columns`` keeps are private
  state (``SFTTrainer`` overrides this method too); extending it through ``super()`` keeps the
  index column for both.
* ``_run_epoch``: Trainer passes every epoch the step counts of the first; a shrunk epoch needs its
  own so that its last (partial) accumulation window steps the optimizer and ``state.epoch`` ends
  at an integer, and an empty epoch (all frozen) must not end training, as Trainer's loop would.
* ``_init_training_state``: on resume Trainer derives the epoch and batch from ``global_step //
  F``, wrong once epochs shrink, and hands them to its loop; only this method's return value
  decides where the loop restarts.

:mod:`gekodata.hf.compat` checks at construction that these four exist with the parameters used
here and that transformers (and trl) are in the tested range (``TESTED``, as stated in
``pyproject.toml``); otherwise ``RuntimeError``. Without transformers this module still imports
(building ``GekoTrainer`` then raises ``ImportError``). Loops without Trainer: :mod:`gekodata.hf.loaders`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..dataset import PruningDataset
from ..sampler.weighted_bucket import WeightedBucketSampler
from ..signals import Signals
from .checkpoint import (
    SAMPLER_FILE,
    TRAINER_FILE,
    SamplerCheckpointCallback,
    restore,
)
from .compat import check_supported
from .loaders import _index_of, sampler_of
from .progress import PlanReportCallback, PlanReportMixin
from .run_checks import check_sampler_and_epochs, join_trainer_processes
from .schedule import PlanProgressLR, PlanScheduleMixin
from .signals import SignalsArg, per_sample_signals

try:  # GekoTrainer needs transformers; importing this module (and gekodata.hf) does not
    from transformers import Trainer as _Trainer
except ImportError:  # pragma: no cover
    _Trainer = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:  # the mixin is type-checked as the Trainer it extends
    from transformers import Trainer as _MixinBase
else:
    _MixinBase = object


@contextlib.contextmanager
def _rng_untouched():
    """Run a probe without moving torch's, numpy's or Python's global RNG."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py)
    np.random.set_state(np_state)


class GekoTrainerMixin(PlanScheduleMixin, PlanReportMixin, _MixinBase):
    """Trains a ``transformers.Trainer`` subclass on a gekodata plan; see the module docstring.

    Put it first: ``class MyTrainer(GekoTrainerMixin, SomeTrainer)``. Args (besides the trainer's):
        sampler: the :class:`WeightedBucketSampler` over ``train_dataset`` (a
            :class:`PruningDataset`), ``shard=False``, ``num_epochs == args.num_train_epochs``.
        signals: how per-sample signals come from ``outputs.logits``: None (default: ``"causal_lm"``
            for causal LM models, else ``"classification"``), ``"classification"``, ``"causal_lm"``
            or a callable ``f(logits, labels) -> (loss [B], conf [B], correct [B])``.
    """

    #: the distributions whose tested range :mod:`gekodata.hf.compat` enforces
    _gekodata_packages: tuple[str, ...] = ("transformers",)

    def __init__(
        self, *args: Any, sampler: WeightedBucketSampler, signals: SignalsArg = None, **kwargs: Any
    ) -> None:
        mro = type(self).__mro__
        bases = mro[mro.index(GekoTrainerMixin) + 1 :]
        if not any(
            b.__name__ == "Trainer" and b.__module__.startswith("transformers") for b in bases
        ):
            raise ImportError(
                f"{type(self).__name__} needs transformers: pip install 'gekodata[hf]'"
            )
        check_supported(type(self).__name__, bases, self._gekodata_packages)
        if not isinstance(sampler, WeightedBucketSampler):
            raise TypeError(
                f"sampler must be a gekodata WeightedBucketSampler, got {type(sampler).__name__}"
            )
        super().__init__(*args, **kwargs)
        self.train_dataset = self._geko_adopt(self.train_dataset)
        self._geko_check(sampler)
        self.gekodata_sampler = sampler
        self._geko_signals = signals
        self._geko_epoch, self._geko_epoch_start, self._geko_updates = 0, 0, 0
        self.add_callback(SamplerCheckpointCallback(sampler, self._geko_record))
        self.add_callback(PlanReportCallback(self))

    def _geko_adopt(self, train_dataset: Any) -> Any:
        """The dataset to train on, from the base trainer's ``train_dataset`` (overridden where the
        base trainer transforms it, as SFT tokenizes)."""
        return train_dataset

    def _geko_check(self, sampler: WeightedBucketSampler) -> None:
        train_dataset = self.train_dataset
        if not isinstance(train_dataset, PruningDataset):
            raise TypeError(
                f"train_dataset is a {type(train_dataset).__name__}: its items carry no usable index. "
                "Wrap it: ds = gekodata.PruningDataset(train_dataset) (items gain 'idx'), build the "
                "sampler over ds and pass train_dataset=ds"
            )
        args_ = self.args
        check_sampler_and_epochs(sampler, train_dataset, args_, unit="samples")
        if args_.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
            raise ValueError(
                f"train_sampling_strategy={args_.train_sampling_strategy!r} replaces the sampler; "
                "GekoTrainer's order comes from gekodata's plan"
            )
        self._geko_check_loss_options(sampler)
        if args_.n_gpu > 1:
            raise ValueError(
                "DataParallel (n_gpu > 1) is not supported: launch one process per device"
            )
        join_trainer_processes(sampler, args_)

    def _geko_check_loss_options(self, sampler: WeightedBucketSampler) -> None:
        """Refuse loss options the loss below cannot honour (overridden where the loss is the base's)."""
        if self.compute_loss_func is not None or self.args.label_smoothing_factor:
            raise ValueError(
                "GekoTrainer computes the loss from per-sample signals: compute_loss_func and "
                "label_smoothing_factor are not supported (pass signals=your_function)"
            )

    # -- data --------------------------------------------------------------
    @property
    def _geko_keys(self) -> tuple[str, str]:
        ds = self.gekodata_sampler.data_source
        return ds.index_key, ds.weight_key

    def _get_train_sampler(self, train_dataset: Any = None) -> WeightedBucketSampler:
        return self.gekodata_sampler

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        columns = self._signature_columns
        assert columns is not None  # set by the base method
        for key in self._geko_keys:  # keep "idx" (and "weight") through remove_unused_columns
            if key not in columns:
                columns.append(key)

    def get_train_dataloader(self):
        loader = super().get_train_dataloader()
        self._probe_index_column(loader)
        return loader

    def _probe_index_column(self, loader: Any) -> None:
        """One item through the loader's collate function: the index must come out as an int tensor [1]."""
        sampler, ds = self.gekodata_sampler, self.gekodata_sampler.data_source
        plan = sampler.global_plan
        first = int(plan[0]) if len(plan) else 0
        with _rng_untouched():
            item = ds[first]
            if not isinstance(item, Mapping):
                raise TypeError(
                    f"Trainer needs dict items; the dataset's items are {type(ds.dataset[first]).__name__}"
                )
            batch = loader.collate_fn([item])
        key = ds.index_key
        if not isinstance(batch, Mapping) or key not in batch:
            keys = sorted(map(str, batch)) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(
                f"the Trainer's collate step drops the index column {key!r} (batch keys: {keys}), so "
                "reports could not name their samples. Causes: a data_collator that keeps only known "
                "keys, or _signature_columns / remove_unused_columns customised without it. Keep "
                f"{key!r} in the batch (GekoTrainer adds it to the columns remove_unused_columns keeps)"
            )
        _index_of(batch, key, type(self).__name__)

    # -- epochs, steps, LR ---------------------------------------------------
    def _run_epoch(
        self,
        *,
        model,
        epoch,
        train_dataloader,
        steps_in_epoch,
        num_update_steps_per_epoch,
        **kwargs,
    ):
        sampler = sampler_of(train_dataloader)
        if sampler is not self.gekodata_sampler:
            raise TypeError(
                "the train DataLoader draws from another WeightedBucketSampler than the one given "
                "to GekoTrainer: reports would go to the wrong plan"
            )
        if hasattr(train_dataloader, "set_epoch"):
            train_dataloader.set_epoch(
                epoch
            )  # accelerate forwards it to the sampler: plans the epoch
        sampler.set_epoch(epoch)  # idempotent; the one call on a plain DataLoader
        steps = len(train_dataloader)  # this epoch's batches per process, after planning
        ga = self.args.gradient_accumulation_steps
        updates = -(-steps // ga)
        resumed = kwargs.get("resume_from_checkpoint") is not None and epoch == kwargs.get(
            "epochs_trained"
        )
        done = kwargs.get("steps_trained_in_current_epoch", 0) // ga if resumed else 0
        self._geko_epoch, self._geko_updates = epoch, updates
        self._geko_epoch_start = self.state.global_step - done
        if isinstance(self.lr_scheduler, PlanProgressLR):
            self.lr_scheduler.begin_epoch(epoch, updates, done)
        self._geko_plan_steps(epoch, self._geko_epoch_start, updates)
        if steps == 0:  # everything frozen or weighted 0 this epoch: nothing to train, not the end
            self.state.epoch = float(epoch + 1)
            self.control = self.callback_handler.on_epoch_end(self.args, self.state, self.control)
            return None
        return super()._run_epoch(
            model=model,
            epoch=epoch,
            train_dataloader=train_dataloader,
            steps_in_epoch=steps,
            num_update_steps_per_epoch=updates,
            **kwargs,
        )

    # -- loss ------------------------------------------------------------------
    def _signals_task(self, model: torch.nn.Module, logits: torch.Tensor) -> SignalsArg:
        if self._geko_signals is not None:
            return self._geko_signals
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        inner = self.accelerator.unwrap_model(model)
        inner = (
            getattr(getattr(inner, "base_model", None), "model", inner)
            if hasattr(inner, "peft_config")
            else inner
        )
        if type(inner).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
            return "causal_lm"
        config = getattr(inner, "config", None)
        problem = getattr(config, "problem_type", None)
        if problem is None and logits.dim() == 2:  # HF's own rule, before its first loss
            problem = "regression" if getattr(config, "num_labels", 0) == 1 else None
        if problem == "regression":
            raise ValueError(
                f"{type(inner).__name__} is a regression model: per-sample correctness needs a "
                f"tolerance, so pass {type(self).__name__}(signals=functools.partial("
                "gekodata.signals.regression_signals, tolerance=...))"
            )
        if problem == "multi_label_classification":
            return "multi_label_classification"
        if logits.dim() == 2:
            return "classification"
        raise ValueError(
            f"cannot tell which per-sample signals fit logits of shape {tuple(logits.shape)} "
            f"from {type(inner).__name__}: pass {type(self).__name__}(signals='classification' | "
            "'causal_lm' | your_function)"
        )

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """Per-sample signals from this forward, reported; the loss normalised as Trainer does."""
        index_key, weight_key = self._geko_keys
        if not model.training:  # evaluation: the base trainer's loss, without gekodata's columns
            inputs = {k: v for k, v in inputs.items() if k not in (index_key, weight_key)}
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        inputs = dict(inputs)
        idx = _index_of(inputs, index_key, f"{type(self).__name__}.compute_loss")
        inputs.pop(index_key)
        weight = inputs.pop(weight_key, None)
        loss, outputs, signals = self._geko_loss(
            model, inputs, weight, num_items_in_batch, return_outputs
        )
        loss_i = signals.loss
        if loss_i.shape != idx.shape:
            raise ValueError(
                f"per-sample loss has shape {tuple(loss_i.shape)} but batch[{index_key!r}] has "
                f"{tuple(idx.shape)}"
            )
        # the predicted and given labels travel with the report (classification: the store learns
        # each sample's class, for the class-aware noise guard and the data diagnosis)
        self.gekodata_sampler.report(
            loss_i.detach(),
            signals.conf,
            signals.correct,
            idx,
            pred=signals.pred,
            label=signals.label,
        )
        return (loss, outputs) if return_outputs else loss

    def _geko_loss(
        self,
        model,
        inputs: dict[str, Any],
        weight: Any,
        num_items_in_batch: Any,
        return_outputs: bool,
    ) -> tuple[torch.Tensor, Any, Signals]:
        """(loss, model outputs, per-sample signals) of one training micro-batch (``inputs`` without
        gekodata's columns; ``weight``: the loss weights [B] or None)."""
        if "labels" not in inputs:
            raise ValueError(
                f"{type(self).__name__} needs 'labels' in each batch to compute per-sample signals"
            )
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        task = self._signals_task(model, logits)
        loss_i, conf, correct, items = per_sample_signals(logits, labels, task)
        weighted = loss_i * items
        if weight is not None:
            weighted = weighted * torch.as_tensor(weight, device=loss_i.device, dtype=loss_i.dtype)
        if num_items_in_batch is not None:  # the accumulation window's target count (all processes)
            loss = weighted.sum() / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            self.loss_is_scaled_for_ga = True
        else:  # this micro-batch's mean; Trainer divides by the accumulation steps
            loss = weighted.sum() / items.sum().clamp(min=1)
            self.loss_is_scaled_for_ga = False
        if task != "classification":
            return loss, outputs, Signals(loss_i, conf, correct)
        # built-in classification signals: the argmax and the targets are the predicted and given
        # labels (for the noise guard and the diagnosis)
        pred, label = logits.detach().argmax(-1), labels.detach().reshape(-1)
        return loss, outputs, Signals(loss_i, conf, correct, pred=pred, label=label)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = {k: v for k, v in inputs.items() if k not in self._geko_keys}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    # -- checkpoints -------------------------------------------------------------
    def _geko_record(self) -> dict[str, int]:
        """gekodata's position, written into every checkpoint (see :mod:`gekodata.hf.checkpoint`)."""
        return {
            "epoch": self._geko_epoch,
            "updates_done": self.state.global_step - self._geko_epoch_start,
            "updates_in_epoch": self._geko_updates,
            "global_step": self.state.global_step,
            **self._geko_batch_layout(),
        }

    def _geko_batch_layout(self) -> dict[str, int]:
        """The settings that turn optimizer steps into sample positions (how many samples one
        optimizer step takes): a mid-epoch resume is exact only under the same ones."""
        return {
            "per_device_train_batch_size": int(self.args.per_device_train_batch_size),
            "gradient_accumulation_steps": int(self.args.gradient_accumulation_steps),
            "world_size": int(self.args.world_size),
        }

    def _init_training_state(
        self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
    ):
        epochs, steps = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
        )
        if resume_from_checkpoint is None:
            return epochs, steps
        epoch, done, in_epoch = restore(
            resume_from_checkpoint,
            self.gekodata_sampler,
            self.state.global_step,
            layout=self._geko_batch_layout(),
        )
        if done >= in_epoch:
            return epoch + 1, 0
        if self.args.ignore_data_skip:
            return epoch, 0
        return epoch, done * self.args.gradient_accumulation_steps

    def train(self, *args: Any, **kwargs: Any):
        """The base ``train``, then a final sync point: the store holds every report (all ranks)."""
        if kwargs.get("trial") is not None or (len(args) > 1 and args[1] is not None):
            raise ValueError(
                f"{type(self).__name__} does not run hyperparameter searches: trials write "
                "checkpoints to their own folders, where gekodata's sampler state is not saved"
            )
        out = super().train(*args, **kwargs)
        self.gekodata_sampler.flush()
        return out


class GekoTrainer(GekoTrainerMixin, _Trainer):  # type: ignore[misc,valid-type]
    """``transformers.Trainer`` that trains on a gekodata plan: :class:`GekoTrainerMixin` + ``Trainer``."""


__all__ = ["SAMPLER_FILE", "TRAINER_FILE", "GekoTrainer", "GekoTrainerMixin"]
