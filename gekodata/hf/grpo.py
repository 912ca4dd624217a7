"""GekoGRPOTrainer: TRL's ``GRPOTrainer`` rolling out the prompts gekodata plans.

In a few added lines::

    from gekodata import PromptPolicy, WeightedBucketSampler
    from gekodata.hf import GekoGRPOTrainer, with_prompt_index
    from gekodata.prompts import reward_reporter

    ds = with_prompt_index(prompts)                                  # a column "idx" = row position
    sampler = WeightedBucketSampler(ds, PromptPolicy(group_size=8), num_epochs=4, seed=0,
                                    shard=False, audit_fraction=0.1)  # accelerate shards
    trainer = GekoGRPOTrainer(model=model, args=GRPOConfig(out, num_generations=8, num_train_epochs=4),
                              train_dataset=ds, sampler=sampler,
                              reward_funcs=[reward_reporter(sampler, my_reward)])  # the one wrapper line
    trainer.train()                                                  # or resume_from_checkpoint=True

What it changes, and why:

* **Prompts.** TRL's ``RepeatSampler`` visits every prompt once per epoch. GekoGRPOTrainer gives
  the dataloader a :class:`~gekodata.hf.grpo_sampler.GroupedPlanSampler` instead: each planned
  prompt repeated ``num_generations`` times, in TRL's chunk layout, so TRL generates, scores and
  trains exactly as before, only on the prompts the plan chose. ``shuffle_dataset`` is not used
  (the plan is shuffled by the sampler's seed).
* **Group outcomes.** The reward function wrapped by :func:`gekodata.prompts.reward_reporter`
  reports every completion's reward with the prompt's ``"idx"`` (TRL passes dataset columns to
  reward functions). Exactly one reward function must report to this sampler; evaluation
  (``evaluate``) pauses it, because eval prompts are not the training set's rows.
* **Shrinking epochs, step counts and the LR schedule.** Trainer sizes ``max_steps`` from the
  first epoch (every prompt: ``T = num_train_epochs * F`` optimizer steps) and walks
  ``F`` update steps per epoch. Later epochs are shorter: the dataloader runs out early and
  Trainer's epoch loop passes its remaining update steps without a batch (no step, no optimizer
  update; ``steps_per_generation`` must be a multiple of ``gradient_accumulation_steps`` so that
  an epoch always ends on an optimizer step). The LR schedule Trainer built for ``T`` steps is
  driven by *progress through the plan*: the k-th of the ``n_e`` optimizer steps of epoch ``e``
  sets it to step ``round(T * (e + k / n_e) / num_train_epochs)``, so warmup and decay end where
  they would have with full epochs; ``state.epoch`` is ``e + k / n_e``. An epoch with nothing
  planned is skipped instead of ending training. ``max_steps > 0`` is refused (the number of
  steps is not known in advance) and ``num_train_epochs`` must equal the sampler's ``num_epochs``.
  ``state.max_steps`` and the progress bar follow the plans, the per-epoch records go to the logs
  and the efficiency report to ``args.output_dir`` as for GekoTrainer (:mod:`gekodata.hf.progress`).
* **Checkpoints.** Every checkpoint gets ``gekodata_sampler.safetensors`` (store, plan, history)
  and ``gekodata_trainer.json`` (epoch and optimizer steps done in it), written by
  :class:`~gekodata.hf.checkpoint.SamplerCheckpointCallback` on ``on_save`` (as for GekoTrainer);
  ``resume_from_checkpoint`` restores both and continues the same plan at the same
  generation batch (Trainer's own ``global_step // F`` would pick the wrong epoch once epochs
  shrink). A checkpoint without them is refused rather than replayed from epoch 0. (Checkpoints
  go to ``args.output_dir``; Trainer's hyperparameter search, which saves per trial, is not
  supported.)

Hooks: public where they suffice -- a ``TrainerCallback`` (epoch bookkeeping, ``state.epoch``,
empty epochs, checkpoint files), ``create_scheduler``, ``evaluate`` and ``train``. Two private
methods are overridden because nothing public reaches them: ``_get_train_sampler`` (TRL's own
extension point for its RepeatSampler) and ``Trainer._init_training_state`` (the resumed epoch
and step). Building it checks both overrides' signatures (:data:`PRIVATE_HOOKS`) and that
transformers and trl are the tested releases (:data:`gekodata.hf.compat.TESTED`, the ``trl``
extra), so an upgrade fails loudly instead of silently changing the plan.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..prompts import RewardReporter, check_groups
from ..sampler.weighted_bucket import WeightedBucketSampler
from . import compat
from .checkpoint import SAMPLER_FILE, SamplerCheckpointCallback, restore
from .grpo_sampler import GroupedPlanSampler
from .progress import PlanReportCallback, PlanReportMixin
from .run_checks import check_sampler_and_epochs, join_trainer_processes
from .schedule import PlanProgressLR, PlanScheduleMixin

PRIVATE_HOOKS = {
    "_get_train_sampler": ("dataset",),
    "_init_training_state": compat.PRIVATE_HOOKS["_init_training_state"],
}
"""The private methods GekoGRPOTrainer overrides, with the parameters its overrides are written against."""

try:  # GekoGRPOTrainer needs trl; importing this module (and gekodata.hf) does not
    import trl as _trl
    from transformers import TrainerCallback as _Callback
    from trl import GRPOTrainer as _GRPOTrainer
except ImportError:  # pragma: no cover - depends on the environment
    _trl = None  # type: ignore[assignment]
    _GRPOTrainer = object  # type: ignore[assignment,misc]
    _Callback = object  # type: ignore[assignment,misc]


def check_supported(trainer_class: type | None = None) -> None:
    """``RuntimeError`` unless ``trainer_class`` (default trl's ``GRPOTrainer``) has the private
    methods GekoGRPOTrainer overrides with the expected parameters (:data:`PRIVATE_HOOKS`), and the
    installed transformers and trl are in :data:`gekodata.hf.compat.TESTED` (outside it, only a
    ``UserWarning`` with ``GEKODATA_ALLOW_UNTESTED_VERSIONS=1``): :func:`gekodata.hf.compat.check_supported`."""
    klass = trainer_class if trainer_class is not None else _GRPOTrainer
    compat.check_supported("GekoGRPOTrainer", klass.__mro__, ("transformers", "trl"), PRIVATE_HOOKS)


def with_prompt_index(dataset: Any, index_key: str = "idx") -> Any:
    """``dataset`` (a ``datasets.Dataset``) with a column ``index_key`` holding each row's
    position, as the prompt index that reward functions receive and report. ``ValueError`` if
    the column exists already."""
    if index_key in dataset.column_names:
        raise ValueError(f"the dataset already has a column {index_key!r}; pass another index_key")
    return dataset.add_column(index_key, np.arange(len(dataset), dtype=np.int64))


def _check_prompt_index(dataset: Any, index_key: str) -> None:
    if index_key not in getattr(dataset, "column_names", ()):
        raise ValueError(
            f"train_dataset has no column {index_key!r}: add each row's position with "
            f"gekodata.hf.with_prompt_index(dataset) so that rewards can name their prompts"
        )
    column = np.asarray(dataset.with_format("numpy")[index_key])
    if column.shape != (len(dataset),) or not np.array_equal(column, np.arange(len(dataset))):
        raise ValueError(
            f"train_dataset[{index_key!r}] is not each row's position (0, 1, 2, ...): the dataset was "
            "shuffled, filtered or concatenated after the index was added. Add it last, with "
            "gekodata.hf.with_prompt_index(dataset)"
        )


class _PlanCallback(_Callback):  # type: ignore[misc,valid-type]
    """Epoch bookkeeping, ``state.epoch`` and empty epochs (public hooks)."""

    def __init__(self, trainer: GekoGRPOTrainer) -> None:
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.trainer._geko_begin_epoch()

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        state.epoch = t._geko_epoch + min(
            (state.global_step - t._geko_epoch_start) / max(t._geko_updates(), 1), 1.0
        )

    def on_epoch_end(self, args, state, control, **kwargs):
        t = self.trainer
        state.epoch = float(t._geko_epoch + 1)
        if t._geko_updates() == 0 and t._geko_epoch + 1 < t.gekodata_sampler.num_epochs:
            control.should_training_stop = (
                False  # Trainer stops on an empty epoch; later epochs may plan prompts
            )


class GekoGRPOTrainer(PlanScheduleMixin, PlanReportMixin, _GRPOTrainer):  # type: ignore[misc,valid-type]
    """``trl.GRPOTrainer`` that rolls out the prompts a gekodata sampler plans (module docstring).

    Args (besides all of ``GRPOTrainer``'s):
        sampler: the :class:`WeightedBucketSampler` over ``train_dataset`` (usually with a
            :class:`~gekodata.policy.PromptPolicy` whose ``group_size`` is ``num_generations``),
            ``shard=False``, ``num_epochs == args.num_train_epochs``.
        index_key: the dataset column with each row's position (:func:`with_prompt_index`).
    """

    def __init__(
        self, *args: Any, sampler: WeightedBucketSampler, index_key: str = "idx", **kwargs: Any
    ) -> None:
        if _trl is None:  # pragma: no cover
            raise ImportError("GekoGRPOTrainer needs trl: pip install 'gekodata[trl]'")
        check_supported()
        if not isinstance(sampler, WeightedBucketSampler):
            raise TypeError(
                f"sampler must be a gekodata WeightedBucketSampler, got {type(sampler).__name__}"
            )
        super().__init__(*args, **kwargs)
        import datasets

        args_: Any = self.args  # a GRPOConfig
        ds = self.train_dataset
        if not isinstance(ds, datasets.Dataset):
            raise TypeError(
                f"GekoGRPOTrainer needs a map-style datasets.Dataset of prompts, got {type(ds).__name__}"
            )
        check_sampler_and_epochs(sampler, ds, args_, unit="prompts")
        _check_prompt_index(ds, index_key)
        if args_.remove_unused_columns:
            raise ValueError(
                f"remove_unused_columns=True drops the {index_key!r} column before the reward functions "
                "see it; leave GRPOConfig's default (False)"
            )
        if args_.steps_per_generation % args_.gradient_accumulation_steps:
            raise ValueError(
                f"steps_per_generation={args_.steps_per_generation} must be a multiple of "
                f"gradient_accumulation_steps={args_.gradient_accumulation_steps}, so that a shortened "
                "epoch still ends on an optimizer step"
            )
        group_size = getattr(sampler.policy, "group_size", None)
        if group_size is not None and group_size != self.num_generations:
            raise ValueError(
                f"the policy's group_size={group_size} but num_generations={self.num_generations}; "
                f"build it as PromptPolicy(group_size={self.num_generations})"
            )
        reporters = [
            f for f in self.reward_funcs if isinstance(f, RewardReporter) and f.sampler is sampler
        ]
        if len(reporters) != 1:
            raise ValueError(
                f"{len(reporters)} reward functions report to this sampler; exactly one must (else the plan never "
                "learns, or every completion is counted twice): reward_funcs=[reward_reporter(sampler, my_reward)]"
            )
        if reporters[0].index_key != index_key:
            raise ValueError(
                f"the reward reporter reads {reporters[0].index_key!r} but index_key={index_key!r}"
            )
        join_trainer_processes(sampler, args_)
        self.gekodata_sampler = sampler
        self.gekodata_reporter = reporters[0]
        self.gekodata_prompts = GroupedPlanSampler(
            sampler,
            num_generations=self.num_generations,  # type: ignore[arg-type]  # set by GRPOConfig
            prompts_per_chunk=args_.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * args_.steps_per_generation,
        )
        self._geko_epoch, self._geko_epoch_start = 0, 0
        self._geko_resume: tuple[int, int] = (
            0,
            0,
        )  # (epoch, optimizer steps done in it) to start from
        self.add_callback(_PlanCallback(self))
        self.add_callback(SamplerCheckpointCallback(sampler, self._geko_record))
        self.add_callback(PlanReportCallback(self))

    # -- plan, epochs, steps -------------------------------------------------------------
    def _get_train_sampler(self, dataset: Any = None) -> GroupedPlanSampler:
        return self.gekodata_prompts

    def _geko_updates(self) -> int:
        """Optimizer steps of the current epoch's plan on every process."""
        batches = self.gekodata_prompts.num_chunks * self.gekodata_prompts.repeat_count
        return math.ceil(batches / self.args.gradient_accumulation_steps)

    def _geko_begin_epoch(self) -> None:
        epoch, done = self._geko_resume
        self._geko_resume = (epoch + 1, 0)
        self.gekodata_prompts.set_epoch(epoch)  # plans it (every process: a sync point)
        self._geko_epoch, self._geko_epoch_start = epoch, self.state.global_step - done
        updates = self._geko_updates()
        self._geko_plan_steps(epoch, self._geko_epoch_start, updates)
        if isinstance(self.lr_scheduler, PlanProgressLR):
            self.lr_scheduler.begin_epoch(epoch, updates, done)

    def _geko_record(self) -> dict:
        """The epoch/step record written into every checkpoint (:mod:`gekodata.hf.checkpoint`)."""
        return {
            "epoch": self._geko_epoch,
            "updates_done": self.state.global_step - self._geko_epoch_start,
            "updates_in_epoch": self._geko_updates(),
            "global_step": self.state.global_step,
        }

    # -- evaluation and the end of training -------------------------------------------------
    def evaluate(self, *args: Any, **kwargs: Any):
        """``GRPOTrainer.evaluate`` with the reward reporter paused (eval prompts are other rows)."""
        with self.gekodata_reporter.paused():
            return super().evaluate(*args, **kwargs)

    def train(self, *args: Any, **kwargs: Any):
        """``GRPOTrainer.train``, then a final sync point: the store holds every report (all ranks)."""
        out = super().train(*args, **kwargs)
        self.gekodata_sampler.flush()
        check_groups(self.gekodata_sampler)  # the last window's groups were whole
        return out

    # -- checkpoints --------------------------------------------------------------------------
    def _init_training_state(
        self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
    ):
        epochs, steps = super()._init_training_state(
            max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint, trial
        )
        self._geko_resume = (0, 0)
        if resume_from_checkpoint is None:
            return epochs, steps
        epoch, done, total = restore(
            resume_from_checkpoint, self.gekodata_sampler, self.state.global_step
        )
        if done >= total:  # the epoch was over: continue with the next one
            epoch, done = epoch + 1, 0
        if self.args.ignore_data_skip:  # the epoch is replayed from its first generation batch
            done = 0
        self._geko_resume = (epoch, done)
        return epoch, done * self.args.gradient_accumulation_steps


__all__ = [
    "PRIVATE_HOOKS",
    "SAMPLER_FILE",
    "GekoGRPOTrainer",
    "check_supported",
    "with_prompt_index",
]
