"""GekoTrainer: ``transformers.Trainer`` trained on a gekodata plan.

Trainer, in a few added lines::

    ds = PruningDataset(train_ds)                                         # items gain "idx"
    sampler = WeightedBucketSampler(ds, num_epochs=3, seed=0, shard=False)  # accelerate shards batches
    trainer = GekoTrainer(model=model, args=TrainingArguments(out, num_train_epochs=3),
                          train_dataset=ds, sampler=sampler)             # instead of Trainer(...)
    trainer.train()                                                       # or train(resume_from_checkpoint=True)

What :class:`GekoTrainer` changes, and why:

* **Sampler.** ``_get_train_sampler`` returns your sampler. The Trainer's ``accelerator.prepare``
  wraps it in accelerate's ``BatchSamplerShard``, which deals the batches of one global stream out
  to the processes, so the sampler must emit the whole global plan on every rank
  (``shard=False``; with ``shard=True`` under several processes every rank would get half of a
  half: refused). Before each epoch the loader's ``set_epoch`` plans the epoch on every rank (the
  same plan: same seed, same synchronised store).
* **Signals from the Trainer's own forward.** ``compute_loss`` pops ``"idx"`` (and the unbiased
  ``"weight"``) and ``labels`` from the batch, runs the model once *without* labels (so the model
  does not compute a loss of its own), takes per-sample (loss, confidence, correctness) from
  ``outputs.logits`` with :mod:`gekodata.signals` and reports them with the batch's ``"idx"``.
* **Loss normalisation.** Each sample ``i`` has a mean loss ``l_i`` over its ``n_i`` targets
  (``n_i = 1`` for classification, its target-token count for a causal LM) and loss weight
  ``w_i`` (1 unless unbiased / InfoBatch). The returned loss is ``sum_i w_i n_i l_i /
  num_items_in_batch`` when the Trainer passes ``num_items_in_batch`` (the target count of the
  whole accumulation window, over all processes with ``average_tokens_across_devices``; then also
  multiplied by the process count, as Trainer does, to undo DDP's gradient averaging) and marks it
  scaled for gradient accumulation; otherwise ``sum_i w_i n_i l_i / sum_i n_i`` over the micro-batch,
  which the Trainer divides by the accumulation steps. With ``w = 1`` this is the Trainer's own
  loss for models whose loss honours ``num_items_in_batch`` (HF causal LMs: token-level, tested
  equal). Classification heads that ignore it (``BertForSequenceClassification`` in transformers
  5.24 returns the micro-batch mean, which Trainer then does not divide by the accumulation steps,
  so its gradients grow with ``gradient_accumulation_steps``) get the window mean Trainer intends:
  batch ``b`` x ``k`` accumulation steps gives the gradients of one batch ``k*b`` (tested).
* **"idx" survives ``remove_unused_columns``.** The Trainer drops batch keys that are not
  arguments of ``model.forward``; GekoTrainer adds the index (and weight) key to the kept columns
  and pops them before the forward. At ``train()`` start one item is run through the Trainer's
  collator: if the index does not come out (a collator that drops unknown keys, ...), you get a
  ``ValueError`` naming the cause before any step is taken.
* **Checkpoints.** Every Trainer checkpoint gets ``gekodata_sampler.safetensors``
  (:meth:`WeightedBucketSampler.save`: store, current plan, history) and
  ``gekodata_trainer.json`` (epoch, optimizer steps done in it). ``resume_from_checkpoint``
  restores both, so the run continues the same plan at the same batch; a checkpoint without them
  is refused rather than replayed from epoch 0.
* **Shrinking epochs, max_steps and the LR schedule.** Trainer computes ``max_steps`` once, from
  the first epoch's length (the full data for a fresh sampler): ``T = num_train_epochs * F``. With
  gekodata later epochs are shorter, so (1) each epoch's step count is taken from ``len(loader)``
  after planning it, (2) training length is given in epochs (``num_train_epochs`` must equal the
  sampler's ``num_epochs``; ``max_steps > 0`` is refused: the number of optimizer steps is not
  known in advance), and (3) the learning-rate schedule Trainer built for ``T`` steps is driven by
  *progress through the plan* instead of by step count: the k-th of ``n_e`` optimizer steps of
  epoch ``e`` sets the schedule to step ``round(T * (e + k / n_e) / num_train_epochs)``. Full
  epochs give exactly Trainer's schedule; shrunk ones reach the end of warmup and decay at the
  same point of the run. ``state.max_steps`` stays ``T`` (an upper bound, raised if an epoch is
  ever longer); ``state.global_step`` counts real optimizer steps. Resume uses gekodata's own epoch
  and step record, not ``global_step // F`` (wrong once epochs shrink).

Needs ``transformers >= 5`` (it extends ``Trainer._run_epoch``) and accelerate. Without
transformers this module still imports (``GekoTrainer`` then raises ``ImportError`` when built).
Loops without Trainer (plain accelerate): :mod:`gekodata.hf.loaders`.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Mapping
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from ..dataset import PruningDataset
from ..io import atomic_write
from ..sampler import WeightedBucketSampler
from .loaders import _index_of, sampler_of
from .signals import SignalsArg, per_sample_signals

SAMPLER_FILE = "gekodata_sampler.safetensors"
TRAINER_FILE = "gekodata_trainer.json"

try:  # GekoTrainer needs transformers; importing this module (and gekodata.hf) does not
    from transformers import Trainer as _Trainer
except ImportError:  # pragma: no cover
    _Trainer = object  # type: ignore[assignment,misc]


class _PlanProgressLR:
    """Drives a ``LambdaLR`` built for ``horizon`` steps by progress through the epochs' plans.

    The k-th of ``n_e`` optimizer steps of epoch ``e`` moves the wrapped schedule to step
    ``round(horizon * (e + k / n_e) / num_epochs)``. Everything else (``get_last_lr``,
    ``state_dict``, ...) is the wrapped scheduler's.
    """

    def __init__(self, inner: torch.optim.lr_scheduler.LambdaLR, horizon: int, num_epochs: int) -> None:
        self.inner, self.horizon, self.num_epochs = inner, int(horizon), int(num_epochs)
        self._epoch, self._updates, self._done = 0, 1, 0

    def begin_epoch(self, epoch: int, updates: int, done: int) -> None:
        self._epoch, self._updates, self._done = int(epoch), max(int(updates), 1), int(done)

    def step(self) -> None:
        self._done += 1
        progress = (self._epoch + min(self._done / self._updates, 1.0)) / self.num_epochs
        self.inner.last_epoch = round(self.horizon * progress) - 1
        self.inner.step()

    def state_dict(self) -> Dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)


@contextlib.contextmanager
def _rng_untouched():
    """Run a probe without moving torch's, numpy's or Python's global RNG."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(py)
    np.random.set_state(np_state)


# ---------------------------------------------------------------------------- Trainer
class GekoTrainer(_Trainer):  # type: ignore[misc,valid-type]
    """``transformers.Trainer`` that trains on a gekodata plan; see the module docstring.

    Args (besides all of ``Trainer``'s):
        sampler: the :class:`WeightedBucketSampler` over ``train_dataset`` (a
            :class:`PruningDataset`), ``shard=False``, ``num_epochs == args.num_train_epochs``.
        signals: how per-sample signals come from ``outputs.logits``: None (default: ``"causal_lm"``
            for causal LM models, else ``"classification"``), ``"classification"``, ``"causal_lm"``
            or a callable ``f(logits, labels) -> (loss [B], conf [B], correct [B])``.
    """

    def __init__(self, *args: Any, sampler: WeightedBucketSampler, signals: SignalsArg = None, **kwargs: Any) -> None:
        if _Trainer is object:  # pragma: no cover
            raise ImportError("GekoTrainer needs transformers: pip install 'gekodata[hf]'")
        if not hasattr(_Trainer, "_run_epoch"):
            raise ImportError("GekoTrainer needs transformers >= 5 (Trainer._run_epoch)")
        if not isinstance(sampler, WeightedBucketSampler):
            raise TypeError(f"sampler must be a gekodata WeightedBucketSampler, got {type(sampler).__name__}")
        super().__init__(*args, **kwargs)
        train_dataset = self.train_dataset
        if not isinstance(train_dataset, PruningDataset):
            raise TypeError(
                f"train_dataset is a {type(train_dataset).__name__}: its items carry no usable index. "
                "Wrap it: ds = gekodata.PruningDataset(train_dataset) (items gain 'idx'), build the "
                "sampler over ds and pass train_dataset=ds"
            )
        if sampler.data_source is not train_dataset:
            raise ValueError("the sampler was built over another dataset than train_dataset: indices would "
                             "name the wrong samples; build it as WeightedBucketSampler(train_dataset, ...)")
        args_ = self.args
        if args_.max_steps is not None and args_.max_steps > 0:
            raise ValueError(
                f"max_steps={args_.max_steps}: with gekodata the number of optimizer steps is not known in "
                "advance (epochs shrink as samples are mastered). Set num_train_epochs (= the sampler's "
                "num_epochs) and leave max_steps at -1; the LR schedule follows progress through the epochs"
            )
        if float(args_.num_train_epochs) != float(sampler.num_epochs):
            raise ValueError(f"args.num_train_epochs={args_.num_train_epochs} but the sampler plans "
                             f"num_epochs={sampler.num_epochs}: they must be equal (the curriculum is per epoch)")
        if args_.world_size > 1 and sampler.shard:
            raise ValueError(
                f"the sampler has shard=True but the Trainer runs {args_.world_size} processes and accelerate "
                "deals batches out itself (double sharding): build it with shard=False"
            )
        if args_.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
            raise ValueError(f"train_sampling_strategy={args_.train_sampling_strategy!r} replaces the sampler; "
                             "GekoTrainer's order comes from gekodata's plan")
        if self.compute_loss_func is not None or args_.label_smoothing_factor:
            raise ValueError("GekoTrainer computes the loss from per-sample signals: compute_loss_func and "
                             "label_smoothing_factor are not supported (pass signals=your_function)")
        if args_.n_gpu > 1:
            raise ValueError("DataParallel (n_gpu > 1) is not supported: launch one process per device")
        if sampler.world_size != args_.world_size and not sampler.shard:
            # built before TrainingArguments initialised torch.distributed: with shard=False the
            # rank only decides which process writes the checkpoint file
            sampler.rank, sampler.world_size = args_.process_index, args_.world_size
        self.gekodata_sampler = sampler
        self._geko_signals = signals
        self._geko_epoch, self._geko_epoch_start, self._geko_updates = 0, 0, 0

    # -- data --------------------------------------------------------------
    @property
    def _geko_keys(self) -> Tuple[str, str]:
        ds = self.gekodata_sampler.data_source
        return ds.index_key, ds.weight_key

    def _get_train_sampler(self, train_dataset: Any = None) -> WeightedBucketSampler:
        return self.gekodata_sampler

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        for key in self._geko_keys:  # keep "idx" (and "weight") through remove_unused_columns
            if key not in self._signature_columns:
                self._signature_columns.append(key)

    def get_train_dataloader(self):
        loader = super().get_train_dataloader()
        self._probe_index_column()
        return loader

    def _probe_index_column(self) -> None:
        """One item through the Trainer's collator: the index must come out as an int tensor [1]."""
        sampler, ds = self.gekodata_sampler, self.gekodata_sampler.data_source
        plan = sampler.global_plan
        first = int(plan[0]) if len(plan) else 0
        with _rng_untouched():
            item = ds[first]
            if not isinstance(item, Mapping):
                raise TypeError(f"Trainer needs dict items; the dataset's items are {type(ds.dataset[first]).__name__}")
            collator = self._get_collator_with_removed_columns(self.data_collator, description="training")
            batch = collator([item])
        key = ds.index_key
        if not isinstance(batch, Mapping) or key not in batch:
            keys = sorted(map(str, batch)) if isinstance(batch, Mapping) else type(batch).__name__
            raise ValueError(
                f"the Trainer's collate step drops the index column {key!r} (batch keys: {keys}), so "
                "reports could not name their samples. Causes: a data_collator that keeps only known "
                "keys, or _signature_columns / remove_unused_columns customised without it. Keep "
                f"{key!r} in the batch (GekoTrainer adds it to the columns remove_unused_columns keeps)"
            )
        _index_of(batch, key, "GekoTrainer")

    # -- epochs, steps, LR ---------------------------------------------------
    def create_scheduler(self, num_training_steps: int, optimizer: Optional[torch.optim.Optimizer] = None):
        created = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps=num_training_steps, optimizer=optimizer)
        if created and type(scheduler) is torch.optim.lr_scheduler.LambdaLR:
            self.lr_scheduler = _PlanProgressLR(scheduler, num_training_steps, self.gekodata_sampler.num_epochs)
        return self.lr_scheduler

    def _run_epoch(self, *, model, epoch, train_dataloader, steps_in_epoch, num_update_steps_per_epoch, **kwargs):
        sampler = sampler_of(train_dataloader)
        if sampler is not self.gekodata_sampler:
            raise TypeError("the train DataLoader draws from another WeightedBucketSampler than the one given "
                            "to GekoTrainer: reports would go to the wrong plan")
        if hasattr(train_dataloader, "set_epoch"):
            train_dataloader.set_epoch(epoch)  # accelerate forwards it to the sampler: plans the epoch
        sampler.set_epoch(epoch)  # idempotent; the one call on a plain DataLoader
        steps = len(train_dataloader)  # this epoch's batches per process, after planning
        ga = self.args.gradient_accumulation_steps
        updates = -(-steps // ga)
        resumed = kwargs.get("resume_from_checkpoint") is not None and epoch == kwargs.get("epochs_trained")
        done = kwargs.get("steps_trained_in_current_epoch", 0) // ga if resumed else 0
        self._geko_epoch, self._geko_updates = epoch, updates
        self._geko_epoch_start = self.state.global_step - done
        if isinstance(self.lr_scheduler, _PlanProgressLR):
            self.lr_scheduler.begin_epoch(epoch, updates, done)
        self.state.max_steps = max(self.state.max_steps, self._geko_epoch_start + updates)
        if steps == 0:  # everything frozen or weighted 0 this epoch: nothing to train, not the end
            self.state.epoch = float(epoch + 1)
            self.control = self.callback_handler.on_epoch_end(self.args, self.state, self.control)
            return None
        return super()._run_epoch(model=model, epoch=epoch, train_dataloader=train_dataloader,
                                  steps_in_epoch=steps, num_update_steps_per_epoch=updates, **kwargs)

    # -- loss ------------------------------------------------------------------
    def _signals_task(self, model: torch.nn.Module, logits: torch.Tensor) -> SignalsArg:
        if self._geko_signals is not None:
            return self._geko_signals
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        inner = self.accelerator.unwrap_model(model)
        inner = getattr(getattr(inner, "base_model", None), "model", inner) if hasattr(inner, "peft_config") else inner
        if type(inner).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
            return "causal_lm"
        if logits.dim() == 2:
            return "classification"
        raise ValueError(f"cannot tell which per-sample signals fit logits of shape {tuple(logits.shape)} "
                         f"from {type(inner).__name__}: pass GekoTrainer(signals='classification' | "
                         "'causal_lm' | your_function)")

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """Per-sample signals from this forward's logits, reported; the loss normalised as Trainer does."""
        index_key, weight_key = self._geko_keys
        if not model.training:  # evaluation: plain Trainer loss, without gekodata's columns
            inputs = {k: v for k, v in inputs.items() if k not in (index_key, weight_key)}
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        inputs = dict(inputs)
        idx = _index_of(inputs, index_key, "GekoTrainer.compute_loss")
        inputs.pop(index_key)
        weight = inputs.pop(weight_key, None)
        if "labels" not in inputs:
            raise ValueError("GekoTrainer needs 'labels' in each batch to compute per-sample signals")
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        task = self._signals_task(model, logits)
        loss_i, conf, correct, items = per_sample_signals(logits, labels, task)
        if loss_i.shape != idx.shape:
            raise ValueError(f"per-sample loss has shape {tuple(loss_i.shape)} but batch[{index_key!r}] has "
                             f"{tuple(idx.shape)}")
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
        # built-in classification signals: the argmax is the predicted label (for the noise guard)
        pred = logits.detach().argmax(-1) if task == "classification" else None
        self.gekodata_sampler.report(loss_i.detach(), conf, correct, idx, pred=pred)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = {k: v for k, v in inputs.items() if k not in self._geko_keys}
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    # -- checkpoints -------------------------------------------------------------
    def _save_checkpoint(self, model, trial) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        out = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(out, exist_ok=True)
        self.gekodata_sampler.save(os.path.join(out, SAMPLER_FILE))  # every rank: a sync point
        if self.args.should_save:
            record = {"epoch": self._geko_epoch, "updates_done": self.state.global_step - self._geko_epoch_start,
                      "updates_in_epoch": self._geko_updates, "global_step": self.state.global_step}
            atomic_write(os.path.join(out, TRAINER_FILE), json.dumps(record).encode())
        super()._save_checkpoint(model, trial)

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs,
                             resume_from_checkpoint, trial):
        epochs, steps = super()._init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs,
                                                     resume_from_checkpoint, trial)
        if resume_from_checkpoint is None:
            return epochs, steps
        sampler_path = os.path.join(resume_from_checkpoint, SAMPLER_FILE)
        record_path = os.path.join(resume_from_checkpoint, TRAINER_FILE)
        if not (os.path.isfile(sampler_path) and os.path.isfile(record_path)):
            raise FileNotFoundError(
                f"{resume_from_checkpoint} has no {SAMPLER_FILE} / {TRAINER_FILE}: it was not written by "
                "GekoTrainer, and resuming would replay gekodata's plan from epoch 0"
            )
        with open(record_path) as f:
            record = json.load(f)
        if int(record["global_step"]) != self.state.global_step:
            raise ValueError(f"{record_path} is for step {record['global_step']}, the checkpoint for "
                             f"{self.state.global_step}")
        self.gekodata_sampler.load(sampler_path)
        epoch, done = int(record["epoch"]), int(record["updates_done"])
        if done >= int(record["updates_in_epoch"]):
            return epoch + 1, 0
        if self.args.ignore_data_skip:
            return epoch, 0
        return epoch, done * self.args.gradient_accumulation_steps

    def train(self, *args: Any, **kwargs: Any):
        """``Trainer.train``, then a final sync point: the store holds every report (all ranks)."""
        out = super().train(*args, **kwargs)
        self.gekodata_sampler.flush()
        return out


__all__ = ["SAMPLER_FILE", "TRAINER_FILE", "GekoTrainer"]
