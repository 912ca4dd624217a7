"""Run under torchrun (gloo, CPU): the sampler's distributed promises, checked on real ranks.

``torchrun --standalone --nproc_per_node=N tests/support/distributed_checks.py OUT.json``. Rank 0 writes
OUT.json with what every rank saw; ``tests/test_distributed.py`` asserts on it.
"""

import hashlib
import json
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from gekodata import BucketPolicy, Curriculum, PruningDataset, WeightedBucketSampler


def digest(store):
    h = hashlib.sha256()
    for name in sorted(store.columns):
        h.update(store.columns[name].tobytes())
    h.update(repr(store.loss_scale).encode())
    h.update(store.loss_hist_counts.tobytes())
    h.update(store.loss_hist_max.tobytes())
    return h.hexdigest()


def run_epochs(rank, world, sync_every, shard=True, n=500, epochs=4):
    """Each rank reports its own draws with rank-specific losses; returns what it saw."""
    ds = PruningDataset([{"x": i} for i in range(n)], prune_frozen_after=2)
    sampler = WeightedBucketSampler(
        ds, num_epochs=epochs, seed=3, sync_every=sync_every, shard=shard
    )
    rng = np.random.default_rng(100 + rank)  # reports differ per rank
    base = np.random.default_rng(0).random(n) * 3
    seen = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        local = np.array(list(sampler), dtype=np.int64)
        stream_ok = bool(np.array_equal(local, sampler.plan))
        batches = [local[i : i + 16] for i in range(0, len(local), 16)]
        # equal report counts per rank are needed only with sync_every; pad with empty reports
        counts = [None] * world
        dist.all_gather_object(counts, len(batches))
        batches += [local[:0]] * (max(counts) - len(batches))
        for idx in batches:
            loss = base[idx] * (0.4**epoch) * (1 + 0.1 * rng.random(len(idx)))
            sampler.report(torch.tensor(loss), None, None, torch.tensor(idx))
        seen.append(
            {
                "local": local.tolist(),
                "global": sampler.global_plan.tolist(),
                "len": len(sampler),
                "stream_ok": stream_ok,
            }
        )
    sampler.flush()
    report = sampler.efficiency_report()
    return {
        "epochs": seen,
        "digest": digest(sampler.store),
        "trained": report.trained_passes,
        "reported_local": int(sum(len(e["local"]) for e in seen)),
    }


def all_frozen(rank, world):
    """Every sample freezes after epoch 0: every rank gets 0 batches and nobody hangs."""
    ds = PruningDataset(list(range(37)))
    sampler = WeightedBucketSampler(
        ds, num_epochs=3, policy=BucketPolicy(curriculum=Curriculum.constant())
    )
    for idx in DataLoader(ds, batch_size=4, sampler=sampler):
        sampler.report(torch.full((len(idx[1]),), 1e-4), None, None, idx[1])
    sampler.set_epoch(1)
    batches = sum(1 for _ in DataLoader(ds, batch_size=4, sampler=sampler))
    dist.barrier()  # reached by every rank: no rank is stuck in a loop the others skipped
    return {"len": len(sampler), "batches": batches}


def main(out_path):
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {
        "per_epoch_sync": run_epochs(rank, world, sync_every=None),
        "sync_every_3": run_epochs(rank, world, sync_every=3),
        "unsharded": run_epochs(rank, world, sync_every=None, shard=False, epochs=2),
        "all_frozen": all_frozen(rank, world),
    }
    gathered = [None] * world
    dist.all_gather_object(gathered, result)
    if rank == 0:
        with open(out_path, "w") as fh:
            json.dump({"world_size": world, "ranks": gathered}, fh)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
