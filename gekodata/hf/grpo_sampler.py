"""`GroupedPlanSampler`: a gekodata prompt plan in the index layout TRL's ``GRPOTrainer`` expects.

TRL's ``RepeatSampler`` cuts a shuffled permutation of the prompts into chunks of
``generation_batch_size / num_generations`` prompts (dropping an incomplete last chunk) and
yields each chunk ``num_iterations * steps_per_generation`` times, every prompt of it repeated
``num_generations`` times in a row. accelerate then deals each repetition of a chunk out to the
processes in equal contiguous slices of ``per_device_train_batch_size * steps_per_generation``
indices; the trainer generates completions for the first repetition and reuses them for the
others. This sampler yields the same layout from gekodata's plan instead of a permutation:

* the chunks are the epoch's planned prompts in plan order (already shuffled by the plan's seeded
  generator), so an epoch is as long as the plan: skipped and frozen prompts shorten it;
* an incomplete last chunk is filled with the plan's first prompts, cyclically (at most
  ``prompts_per_chunk - 1`` extra groups per epoch, counted in the reports like any other
  group), so that every planned prompt is rolled out; an empty plan yields nothing;
* ``set_epoch`` plans the epoch (forwarded to the :class:`~gekodata.WeightedBucketSampler`,
  which must emit the global plan: ``shard=False``, accelerate shards).

Needs neither TRL nor transformers; :class:`~gekodata.hf.GekoGRPOTrainer` builds it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from ..sampler.weighted_bucket import WeightedBucketSampler


class GroupedPlanSampler(Sampler[int]):
    """Yields ``sampler``'s global plan in GRPO's group layout (module docstring).

    Args:
        sampler: the prompt plan; ``shard=False`` (every process iterates the whole global stream
            and accelerate deals it out) unless it is a single process.
        num_generations: completions per prompt (each index is repeated this many times in a row).
        prompts_per_chunk: distinct prompts per generation batch,
            ``generation_batch_size // num_generations``.
        repeat_count: times each chunk is yielded (``num_iterations * steps_per_generation``).
    """

    def __init__(
        self,
        sampler: WeightedBucketSampler,
        *,
        num_generations: int,
        prompts_per_chunk: int,
        repeat_count: int = 1,
    ) -> None:
        if not isinstance(sampler, WeightedBucketSampler):
            raise TypeError(
                f"sampler must be a gekodata WeightedBucketSampler, got {type(sampler).__name__}"
            )
        for name, value in (
            ("num_generations", num_generations),
            ("prompts_per_chunk", prompts_per_chunk),
            ("repeat_count", repeat_count),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if sampler.shard and sampler.world_size > 1:
            raise ValueError(
                "the prompt sampler has shard=True under several processes, but accelerate deals the "
                "generation batches out itself (double sharding): build it with shard=False"
            )
        super().__init__()
        self.sampler = sampler
        self.num_generations = int(num_generations)
        self.prompts_per_chunk = int(prompts_per_chunk)
        self.repeat_count = int(repeat_count)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Plan epoch ``epoch`` (see :meth:`WeightedBucketSampler.set_epoch`)."""
        self.sampler.set_epoch(epoch)

    @property
    def num_chunks(self) -> int:
        """Generation batches this epoch: the planned prompts, rounded up to whole chunks."""
        return -(-len(self.sampler.global_plan) // self.prompts_per_chunk)

    def chunks(self) -> np.ndarray:
        """This epoch's prompts per generation batch, int [num_chunks, prompts_per_chunk]
        (the last one filled cyclically with the plan's first prompts)."""
        plan = self.sampler.global_plan
        size = self.num_chunks * self.prompts_per_chunk
        return np.resize(plan, size).reshape(self.num_chunks, self.prompts_per_chunk)

    @property
    def padded(self) -> int:
        """Groups added this epoch to fill the last chunk."""
        return self.num_chunks * self.prompts_per_chunk - len(self.sampler.global_plan)

    def __len__(self) -> int:
        return self.num_chunks * self.prompts_per_chunk * self.num_generations * self.repeat_count

    def __iter__(self) -> Iterator[int]:
        chunks = self.chunks()
        groups = np.repeat(
            chunks, self.num_generations, axis=1
        )  # [C, B*G]: each prompt G times in a row
        stream = np.repeat(groups[:, None, :], self.repeat_count, axis=1)  # [C, R, B*G]
        return iter(stream.reshape(-1).tolist())

    def __repr__(self) -> str:
        return (
            f"GroupedPlanSampler(epoch={self.epoch}, num_generations={self.num_generations}, "
            f"prompts_per_chunk={self.prompts_per_chunk}, repeat_count={self.repeat_count})"
        )


__all__ = ["GroupedPlanSampler"]
