"""Checks shared by the Trainer, SFTTrainer and GRPOTrainer tests: epochs that shrink, a checkpoint
inside a shrunk epoch, the end state of a run resumed from it, and what the run tells its user."""

import json
import math
import shutil

import numpy as np
import torch

from gekodata.hf import TRAINER_FILE
from gekodata.hf.progress import REPORT_JSON, REPORT_TEXT


def assert_shrinks_and_reports(sampler, n):
    """Epoch 0 plans all ``n`` samples, later epochs fewer; every planned draw was reported once.
    Returns the planned draws per epoch."""
    records = sampler.efficiency_report().epochs
    planned = [r.planned for r in records]
    assert planned[0] == n and all(p < n for p in planned[1:]), (
        planned
    )  # later epochs really shrink
    assert [r.reported for r in records] == planned  # every planned draw trained and reported once
    return planned


def assert_run_reported(trainer, sampler, out):
    """A finished run ends its step count at the true one (progress bar and ``max_steps``), has
    one gekodata record per epoch in ``log_history`` (as the efficiency report counts it) and
    wrote the report into ``out`` (its ``output_dir``)."""
    report = sampler.efficiency_report()
    assert trainer.state.max_steps == trainer.state.global_step
    logged = [h for h in trainer.state.log_history if "gekodata/epoch" in h]
    assert [h["gekodata/epoch"] for h in logged] == [r.epoch for r in report.epochs]
    assert [(h["gekodata/planned"], h["gekodata/trained"]) for h in logged] == [
        (r.planned, r.reported) for r in report.epochs
    ]
    assert (out / REPORT_TEXT).read_text().strip() == str(report)
    assert json.loads((out / REPORT_JSON).read_text())["trained_passes"] == report.trained_passes


def copy_checkpoint_inside_shrunk_epoch(sampler, out, dest, n, batch_size, every):
    """Copy into ``dest`` a checkpoint of ``out`` (saved every ``every`` optimizer steps) inside a
    shrunk epoch, where Trainer's own arithmetic (step // full-epoch steps, step % full-epoch
    steps) would resume at the wrong epoch or batch. Returns (its new path, its step)."""
    ends = np.cumsum(
        [math.ceil(r.planned / batch_size) for r in sampler.efficiency_report().epochs]
    )
    full = math.ceil(n / batch_size)

    def position(s):  # (epoch, optimizer steps done in it) after global step s
        e = int(np.searchsorted(ends, s, "right"))
        return e, s - (int(ends[e - 1]) if e else 0)

    step = next(
        s
        for s in range(every, int(ends[-1]), every)
        if s > ends[0] and s not in ends and position(s) != (s // full, s % full)
    )
    path = dest / f"checkpoint-{step}"
    shutil.copytree(out / f"checkpoint-{step}", path)
    record = json.loads((path / TRAINER_FILE).read_text())
    assert 0 < record["updates_done"] < record["updates_in_epoch"]
    return path, step


def assert_same_end_state(ref_trainer, ref_sampler, trainer, sampler):
    """A resumed run ends where the uninterrupted one did: steps, epochs, store, plan, weights."""
    assert trainer.state.global_step == ref_trainer.state.global_step
    assert [(r.epoch, r.planned, r.reported) for r in sampler.efficiency_report().epochs] == [
        (r.epoch, r.planned, r.reported) for r in ref_sampler.efficiency_report().epochs
    ]
    for name, column in ref_sampler.store.columns.items():  # bitwise the same store
        assert np.array_equal(sampler.store.columns[name], column), name
    np.testing.assert_array_equal(sampler.global_plan, ref_sampler.global_plan)
    for (name, a), b in zip(ref_trainer.model.named_parameters(), trainer.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
