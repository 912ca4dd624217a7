"""The checks every gekodata trainer makes of its run settings when it is built: one place, so
GekoTrainer, GekoSFTTrainer and GekoGRPOTrainer refuse the same mistakes with the same words."""

from __future__ import annotations

from typing import Any

from ..sampler.weighted_bucket import WeightedBucketSampler


def check_sampler_and_epochs(
    sampler: WeightedBucketSampler, train_dataset: Any, args: Any, *, unit: str
) -> None:
    """``ValueError`` unless ``sampler`` was built over ``train_dataset``, ``args.max_steps`` is
    unset and ``args.num_train_epochs`` equals the sampler's ``num_epochs``. ``unit``: what the
    dataset holds ("samples", "prompts"), for the messages."""
    if sampler.data_source is not train_dataset:
        raise ValueError(
            f"the sampler was built over another dataset than train_dataset: indices would name "
            f"the wrong {unit}; build it as WeightedBucketSampler(train_dataset, ...)"
        )
    if args.max_steps is not None and args.max_steps > 0:
        raise ValueError(
            f"max_steps={args.max_steps}: with gekodata the number of optimizer steps is not "
            f"known in advance (epochs shrink as {unit} are skipped). Set num_train_epochs (= the "
            "sampler's num_epochs) and leave max_steps at -1; the LR schedule follows progress "
            "through the epochs"
        )
    if float(args.num_train_epochs) != float(sampler.num_epochs):
        raise ValueError(
            f"args.num_train_epochs={args.num_train_epochs} but the sampler plans "
            f"num_epochs={sampler.num_epochs}: they must be equal (the curriculum is per epoch)"
        )


def join_trainer_processes(sampler: WeightedBucketSampler, args: Any) -> None:
    """Refuse double sharding; a ``shard=False`` sampler built before ``TrainingArguments``
    initialised ``torch.distributed`` takes its rank from the group now (the rank only decides
    which process writes checkpoint files; :meth:`WeightedBucketSampler.join_process_group`)."""
    if args.world_size > 1 and sampler.shard:
        raise ValueError(
            f"the sampler has shard=True but the Trainer runs {args.world_size} processes and "
            "accelerate deals batches out itself (double sharding): build it with shard=False"
        )
    if sampler.world_size != args.world_size and not sampler.shard:
        sampler.join_process_group()
    if sampler.world_size != args.world_size:
        raise ValueError(
            f"the sampler has world_size={sampler.world_size} but the trainer runs "
            f"{args.world_size} processes"
        )
