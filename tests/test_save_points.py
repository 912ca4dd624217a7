"""A checkpoint never changes the run: a run that saves and resumes (a fresh process's sampler
restored from the file) at any step plans and stores bitwise the same as one that never saves.
Every save point of a 3-epoch run is tried, with and without ``sync_every``; the 2-rank case runs
under torchrun (gloo, CPU)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from support.save_points import run_with_save_point
from support.torchrun_util import run_torchrun

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler

N, EPOCHS, BATCH = 48, 3, 8
HERE = Path(__file__).resolve().parent


def signals(idx: np.ndarray, epoch: int, step: int):
    """Deterministic per-sample signals that move samples between buckets over the epochs."""
    loss = ((idx * 7919 + epoch * 104729 + step * 31) % 1000).astype(np.float64) / 250.0
    conf = np.exp(-loss)
    return loss, conf, (conf > 0.5).astype(np.float64)


def new_sampler(sync_every):
    return WeightedBucketSampler(
        PruningDataset(list(range(N)), prune_frozen_after=2),
        BucketPolicy(),
        num_epochs=EPOCHS,
        seed=3,
        sync_every=sync_every,
    )


def run(sync_every, save_at=None, tmp_path=None):
    """Plans per epoch and the final store; with ``save_at=(epoch, step)`` the run saves there,
    and a new sampler loads the file and carries on (the old one is dropped)."""

    def report(sampler, idx, epoch, step):
        sampler.report(*signals(idx, epoch, step), idx)

    plans, sampler = run_with_save_point(
        lambda: new_sampler(sync_every), report, EPOCHS, BATCH, save_at, tmp_path
    )
    return plans, sampler.store.state_dict(), sampler.efficiency_report()


def assert_same_run(a, b):
    plans_a, store_a, report_a = a
    plans_b, store_b, report_b = b
    assert len(plans_a) == len(plans_b)
    for pa, pb in zip(plans_a, plans_b):
        np.testing.assert_array_equal(pa, pb)
    for name, column in store_a["columns"].items():
        np.testing.assert_array_equal(column, store_b["columns"][name], err_msg=name)
    assert store_a["loss_scale"] == store_b["loss_scale"]
    assert [r.reported for r in report_a.epochs] == [r.reported for r in report_b.epochs]


@pytest.mark.parametrize("sync_every", [None, 3])
def test_every_save_point_leaves_the_run_unchanged(tmp_path, sync_every):
    reference = run(sync_every)
    points = [(e, s) for e, plan in enumerate(reference[0]) for s in range(-(-len(plan) // BATCH) + 1)]
    assert len(points) > 10
    for point in points:
        assert_same_run(reference, run(sync_every, point, tmp_path))


def test_a_saved_file_carries_the_pending_reports(tmp_path):
    sampler = new_sampler(None)
    sampler.report(*signals(np.arange(5), 0, 0), np.arange(5))
    sampler.save(tmp_path / "s.safetensors")
    assert sampler.pending_reports == 5 and int(sampler.store.visits.sum()) == 0  # nothing folded
    other = new_sampler(None)
    other.load(tmp_path / "s.safetensors")
    assert other.pending_reports == 5
    other.flush()
    assert int(other.store.visits.sum()) == 5


def test_two_ranks_save_points(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "support" / "save_points_run.py"), str(tmp_path)]
    proc = run_torchrun(cmd, env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "ok_rank0").exists() and (tmp_path / "ok_rank1").exists()
