"""torchrun target of tests/test_save_points.py: 2 ranks (gloo, CPU), every save point of a
sharded 3-epoch run against the run that never saves; each rank writes ``ok_rank<r>`` in OUT.

``torchrun --standalone --nproc_per_node=2 tests/support/save_points_run.py OUT``
"""
import os
import sys

import numpy as np
import torch.distributed as dist
from save_points import run_with_save_point  # this script's folder is on sys.path

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler

N, EPOCHS, BATCH = 40, 3, 4


def signals(idx, epoch, step):
    loss = ((idx * 7919 + epoch * 104729 + step * 31) % 1000).astype(np.float64) / 250.0
    conf = np.exp(-loss)
    return loss, conf, (conf > 0.5).astype(np.float64)


def new_sampler():
    return WeightedBucketSampler(PruningDataset(list(range(N)), prune_frozen_after=2), BucketPolicy(),
                                 num_epochs=EPOCHS, seed=5)


def run(out, save_at=None):
    def report(sampler, idx, epoch, step):
        sampler.report(*signals(idx, epoch, step), idx)

    plans, sampler = run_with_save_point(new_sampler, report, EPOCHS, BATCH, save_at, out)
    return plans, sampler.store.state_dict()


def main():
    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ref_plans, ref_store = run(out)
    points = [(e, s) for e, plan in enumerate(ref_plans) for s in range(-(-(-(-len(plan) // 2)) // BATCH) + 1)]
    for point in points:
        plans, store = run(out, point)
        for a, b in zip(ref_plans, plans):
            assert np.array_equal(a, b), (rank, point, "plan")
        for name, column in ref_store["columns"].items():
            assert np.array_equal(column, store["columns"][name]), (rank, point, name)
    open(os.path.join(out, f"ok_rank{rank}"), "w").close()
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
