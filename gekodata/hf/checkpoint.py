"""gekodata's state in ``Trainer`` checkpoints: written next to each one, read back on resume.

Every checkpoint folder ``<output_dir>/checkpoint-<step>`` gets :data:`SAMPLER_FILE`
(:meth:`WeightedBucketSampler.save`: store, current plan, history) and :data:`TRAINER_FILE` (JSON:
the epoch, the optimizer steps done in it and in all, and the epoch's step count). They are written
by :class:`SamplerCheckpointCallback` from the public ``on_save`` event, right after ``Trainer``
wrote the checkpoint (model, optimizer, scheduler, RNG, ``trainer_state.json``). A run stopped in
between leaves a checkpoint without them, which :func:`restore` refuses rather than replaying the
plan from epoch 0. With ``push_to_hub`` and ``hub_strategy="checkpoint"``, Trainer uploads the
folder before ``on_save``: the two files stay local.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from ..sampler.weighted_bucket import WeightedBucketSampler
from ..store.files import atomic_write

SAMPLER_FILE = "gekodata_sampler.safetensors"
TRAINER_FILE = "gekodata_trainer.json"

try:  # the callback needs transformers; importing this module does not
    from transformers import TrainerCallback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object  # type: ignore[assignment,misc]


class SamplerCheckpointCallback(_Callback):  # type: ignore[misc,valid-type]
    """On every ``on_save``: the sampler and ``record()`` (gekodata's epoch/step record) into the
    checkpoint folder Trainer just wrote. Runs on every process (the sampler's save is a sync
    point); the main process writes."""

    def __init__(
        self, sampler: WeightedBucketSampler, record: Callable[[], dict[str, int]]
    ) -> None:
        self.sampler, self.record = sampler, record

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        os.makedirs(folder, exist_ok=True)  # made by the main process; maybe not yet seen here
        self.sampler.save(os.path.join(folder, SAMPLER_FILE))  # every rank: a sync point
        if args.should_save:
            atomic_write(os.path.join(folder, TRAINER_FILE), json.dumps(self.record()).encode())


def restore(
    checkpoint: str,
    sampler: WeightedBucketSampler,
    global_step: int,
    layout: dict[str, int] | None = None,
) -> tuple[int, int, int]:
    """Load the sampler saved in ``checkpoint``; return (epoch, optimizer steps done in it, steps
    in that epoch). ``global_step``: the step Trainer restored (``trainer_state.json``);
    ``layout``: this run's batch layout, checked against a mid-epoch record
    (:func:`check_batch_layout`) before anything is loaded."""
    sampler_path = os.path.join(checkpoint, SAMPLER_FILE)
    record_path = os.path.join(checkpoint, TRAINER_FILE)
    if not (os.path.isfile(sampler_path) and os.path.isfile(record_path)):
        raise FileNotFoundError(
            f"{checkpoint} has no {SAMPLER_FILE} / {TRAINER_FILE}: it was not written by a gekodata trainer "
            "(or the run stopped while saving it), and resuming would replay gekodata's plan from epoch 0"
        )
    with open(record_path) as f:
        record = json.load(f)
    if int(record["global_step"]) != int(global_step):
        raise ValueError(
            f"{record_path} is for step {record['global_step']}, the checkpoint for {global_step}"
        )
    if layout is not None and int(record["updates_done"]) < int(record["updates_in_epoch"]):
        check_batch_layout(checkpoint, record, layout)
    sampler.load(sampler_path)
    return int(record["epoch"]), int(record["updates_done"]), int(record["updates_in_epoch"])


def check_batch_layout(checkpoint: str, record: dict[str, Any], current: dict[str, int]) -> None:
    """``ValueError`` unless a mid-epoch checkpoint's ``record`` (its :data:`TRAINER_FILE`) was
    written with the batch layout ``current`` (batch size per device, gradient accumulation,
    processes): Trainer resumes by optimizer steps, and under another layout those steps name
    other sample positions, so samples of the epoch would be trained twice or skipped. Records
    without a layout (older checkpoints) pass."""
    saved = {key: record[key] for key in current if key in record}
    changed = {key: (saved[key], current[key]) for key in saved if saved[key] != current[key]}
    if changed:
        what = ", ".join(f"{key} {old} -> {new}" for key, (old, new) in changed.items())
        raise ValueError(
            f"{checkpoint} was saved mid-epoch with another batch layout ({what}): Trainer resumes "
            "by optimizer steps, which would now name other samples of the epoch (some trained "
            "twice, some skipped). Resume with the saved settings, or from a checkpoint saved at "
            "an epoch's end (save_strategy='epoch'), where any layout resumes exactly"
        )


__all__ = [
    "SAMPLER_FILE",
    "TRAINER_FILE",
    "SamplerCheckpointCallback",
    "check_batch_layout",
    "restore",
]
