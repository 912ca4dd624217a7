"""The files gekodata adds to a Trainer checkpoint, and the resume point read back from them.

Every checkpoint of a gekodata trainer holds :data:`SAMPLER_FILE` (the sampler's store, current
plan and history, :meth:`WeightedBucketSampler.save`) and :data:`RECORD_FILE` (JSON: ``epoch``,
``updates_done`` and ``updates_in_epoch`` optimizer steps of that epoch, ``global_step``). With
shrinking epochs Trainer's own resume point, ``global_step // steps_of_the_first_epoch``, names
the wrong epoch; :func:`resume_point` reads the right one.

Used by :class:`~gekodata.hf.GekoGRPOTrainer`; :class:`~gekodata.hf.GekoTrainer` writes the same
files with its own copy of this code in ``trainer.py`` (to be moved here with that module's rework).
"""
from __future__ import annotations

import json
import os
from typing import Tuple

from ..io import atomic_write
from ..sampler import WeightedBucketSampler

SAMPLER_FILE = "gekodata_sampler.safetensors"
RECORD_FILE = "gekodata_trainer.json"


def save_checkpoint_files(folder: str, sampler: WeightedBucketSampler, *, epoch: int, updates_done: int,
                          updates_in_epoch: int, global_step: int, write_record: bool) -> None:
    """Write both files into the checkpoint ``folder``. The sampler file is a sync point (every
    rank calls this; rank 0 writes); ``write_record``: this process writes the JSON
    (``args.should_save``)."""
    sampler.save(os.path.join(folder, SAMPLER_FILE))
    if write_record:
        record = {"epoch": int(epoch), "updates_done": int(updates_done), "updates_in_epoch": int(updates_in_epoch),
                  "global_step": int(global_step)}
        atomic_write(os.path.join(folder, RECORD_FILE), json.dumps(record).encode())


def resume_point(folder: str, sampler: WeightedBucketSampler, global_step: int, trainer_name: str) -> Tuple[int, int]:
    """Restore ``sampler`` from the checkpoint ``folder`` and return (epoch to continue, optimizer
    steps already done in it); an epoch whose steps were all done gives (epoch + 1, 0).

    ``FileNotFoundError`` for a checkpoint without the files (resuming would replay the plan from
    epoch 0); ``ValueError`` if the record is for another step than Trainer's ``global_step``."""
    sampler_path = os.path.join(folder, SAMPLER_FILE)
    record_path = os.path.join(folder, RECORD_FILE)
    if not (os.path.isfile(sampler_path) and os.path.isfile(record_path)):
        raise FileNotFoundError(f"{folder} has no {SAMPLER_FILE} / {RECORD_FILE}: it was not written by "
                                f"{trainer_name}, and resuming would replay the plan from epoch 0")
    with open(record_path) as f:
        record = json.load(f)
    if int(record["global_step"]) != global_step:
        raise ValueError(f"{record_path} is for step {record['global_step']}, the checkpoint for {global_step}")
    sampler.load(sampler_path)
    epoch, done = int(record["epoch"]), int(record["updates_done"])
    if done >= int(record["updates_in_epoch"]):
        return epoch + 1, 0
    return epoch, done


__all__ = ["RECORD_FILE", "SAMPLER_FILE", "resume_point", "save_checkpoint_files"]
