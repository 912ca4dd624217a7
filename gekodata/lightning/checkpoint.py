"""The sampler's state as entries of a Lightning checkpoint (one file, nothing beside it).

:func:`sampler_entries` packs :meth:`WeightedBucketSampler.save`'s file (store, plan, history,
reports not yet folded) as a uint8 tensor (any ``torch.load``, ``weights_only`` included, reads
it) with the position in the epoch: how many of this rank's draws the *trained* batches took.
That count, not the sampler's own position, is what resume needs: Lightning's fetcher (and loader
workers) draw ahead of training, so the sampler's position at a checkpoint is ahead of the
batches the model saw. :func:`restore_sampler` loads them back.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from ..sampler.weighted_bucket import WeightedBucketSampler

FILE_NAME = "sampler.safetensors"


def sampler_entries(sampler: WeightedBucketSampler, drawn: int, finished: bool) -> dict[str, Any]:
    """Checkpoint entries: the sampler file (rank 0 holds it: ``save`` is a collective, rank 0
    writes; None elsewhere), the epoch, ``drawn`` (this rank's draws the trained batches of the
    epoch took, samples) and whether the epoch's batches are all done (``finished``)."""
    with tempfile.TemporaryDirectory(prefix="gekodata-lightning-") as folder:
        path = os.path.join(folder, FILE_NAME)
        sampler.save(path)  # every rank: gathers pending reports; rank 0 writes
        blob = None
        if os.path.isfile(path):
            with open(path, "rb") as f:
                blob = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    return {
        "sampler_file": blob,
        "epoch": int(sampler.epoch),
        "drawn": int(drawn),
        "finished": bool(finished),
    }


def restore_sampler(sampler: WeightedBucketSampler, entries: dict[str, Any]) -> int:
    """Load :func:`sampler_entries` into ``sampler`` (every rank) and put it where training goes on:
    ``drawn`` draws into the saved epoch, or, when that epoch's batches were all done, at the start
    of the next (planned now, as ``set_epoch`` would: Lightning's loader draws its first batch
    before it calls ``set_epoch``). Returns the draws already taken in the epoch it now holds."""
    blob = entries.get("sampler_file")
    if blob is None:
        raise ValueError(
            "the checkpoint's gekodata entry has no sampler file: it was written by a rank other "
            "than 0; resume from the checkpoint Lightning wrote (rank 0's)"
        )
    with tempfile.TemporaryDirectory(prefix="gekodata-lightning-") as folder:
        path = os.path.join(folder, FILE_NAME)
        with open(path, "wb") as f:
            f.write(blob.numpy().tobytes())
        sampler.load(path)
    epoch, drawn = int(entries["epoch"]), int(entries["drawn"])
    if sampler.epoch != epoch:
        raise ValueError(
            f"the checkpoint's sampler file is at epoch {sampler.epoch} but its position is for "
            f"epoch {epoch}: the checkpoint is inconsistent; resume from another one"
        )
    if entries["finished"]:
        if epoch + 1 < sampler.num_epochs:
            sampler.set_epoch(epoch + 1)  # a sync point on every rank, as in the uninterrupted run
        return 0
    position = sampler.state_dict()
    position["yielded"] = min(drawn, position["length"])
    sampler.load_state_dict(position)
    return position["yielded"]


__all__ = ["restore_sampler", "sampler_entries"]
