"""Kill a training run mid-epoch, resume it from its last checkpoint, compare with an uninterrupted run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler

SCRIPT = Path(__file__).parent / "support" / "resume_run.py"


def run(out, *args, expect_kill=False):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]


def read_stream(path):
    return [line.split() for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("workers", [0, 2])
def test_killed_run_resumes_to_the_same_stream_and_store(tmp_path, workers):
    full, killed = tmp_path / "full", tmp_path / "killed"
    run(full, "--workers", workers)
    run(killed, "--workers", workers, "--kill-at", 27, expect_kill=True)
    latest = (killed / "ckpt" / "LATEST").read_text()
    assert latest == "step_000025"
    assert not (killed / "final.safetensors").exists()
    run(killed, "--workers", workers, "--resume")

    uninterrupted = read_stream(full / "stream.txt")
    before = read_stream(killed / "stream.txt")
    assert len(before) == 27  # the killed process trained 2 steps past its checkpoint
    resumed = read_stream(killed / "stream_resumed.txt")
    assert resumed[0][1] == "26"
    assert before[:25] + resumed == uninterrupted
    epochs = {int(line[0]) for line in uninterrupted}
    assert epochs == {0, 1, 2}
    assert int(uninterrupted[26][0]) == 1, "the kill must land mid-epoch"

    final_full, final_resumed = (
        load_file(full / "final.safetensors"),
        load_file(killed / "final.safetensors"),
    )
    assert final_full.keys() == final_resumed.keys()
    for key in final_full:
        np.testing.assert_array_equal(final_full[key], final_resumed[key], err_msg=key)
    model_full = torch.load(full / "final_model.pt")
    model_resumed = torch.load(killed / "final_model.pt")
    for key in model_full:
        assert torch.equal(model_full[key], model_resumed[key]), key


def make_sampler(n=1000):
    ds = PruningDataset(list(range(n)))
    return WeightedBucketSampler(ds, BucketPolicy(), num_epochs=3, seed=1)  # one-visit freeze


def test_stateful_snapshot_is_tiny_and_resumes_the_stream():
    sampler = make_sampler()
    it = iter(sampler)
    first = [next(it) for _ in range(300)]
    state = sampler.state_dict()
    assert state["yielded"] == 300 and state["epoch"] == 0
    rest = list(it)
    other = make_sampler()
    other.load_state_dict(state)
    assert list(other) == rest
    assert list(other) == first + rest  # the position applies to one iteration only


def test_load_state_dict_refuses_another_plan(tmp_path):
    a = make_sampler()
    a.report(np.full(1000, 0.001), None, None, np.arange(1000))
    a.set_epoch(1)
    state = a.state_dict()
    b = make_sampler()  # no reports: its epoch-1 plan differs
    with pytest.raises(ValueError, match="another plan"):
        b.load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        WeightedBucketSampler(
            PruningDataset(list(range(1000))), num_epochs=3, seed=2
        ).load_state_dict(state)


def test_save_load_roundtrip_and_refusals(tmp_path):
    a = make_sampler()
    a.report(np.linspace(0, 3, 1000), None, None, np.arange(1000))
    a.set_epoch(1)
    path = tmp_path / "s.safetensors"
    a.save(path)
    b = make_sampler()
    b.load(path)
    assert b.epoch == 1 and np.array_equal(b.plan, a.plan)
    for k, v in a.store.columns.items():
        np.testing.assert_array_equal(b.store.columns[k], v)
    assert b.efficiency_report().to_dict() == a.efficiency_report().to_dict()

    fresh = make_sampler()
    snapshot = {k: v.copy() for k, v in fresh.store.columns.items()}
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        fresh.load(tmp_path / "cut.safetensors")
    with pytest.raises(ValueError, match="1000"):
        WeightedBucketSampler(PruningDataset(list(range(999))), num_epochs=3, seed=1).load(path)
    with pytest.raises(ValueError, match="seed"):
        WeightedBucketSampler(PruningDataset(list(range(1000))), num_epochs=3, seed=9).load(path)
    a.store.save(tmp_path / "store.safetensors")
    with pytest.raises(ValueError, match=r"gekodata\.sampler"):
        fresh.load(tmp_path / "store.safetensors")
    for k, v in snapshot.items():
        np.testing.assert_array_equal(fresh.store.columns[k], v)
    assert fresh.epoch == 0


def test_unbiased_state_roundtrips_and_strict_can_be_relaxed(tmp_path):
    def sampler(**kw):
        return WeightedBucketSampler(
            PruningDataset(list(range(200))), num_epochs=3, seed=1, unbiased=True, **kw
        )

    a = sampler()
    a.report(np.where(np.arange(200) < 100, 1e-3, 2.0), None, None, np.arange(200))
    a.set_epoch(1)
    a.save(tmp_path / "u.safetensors")
    b = sampler()
    b.load(tmp_path / "u.safetensors")
    assert torch.equal(b.loss_weights(np.arange(200)), a.loss_weights(np.arange(200)))
    c = sampler(unbiased_floor=0.3)
    with pytest.raises(ValueError, match="unbiased_floor"):
        c.load(tmp_path / "u.safetensors")
    c.load(tmp_path / "u.safetensors", strict=False)
    assert np.array_equal(c.plan, a.plan)


def test_stream_position_refuses_another_world_layout():
    a = WeightedBucketSampler(
        PruningDataset(list(range(100))), num_epochs=2, rank=0, world_size=2, standalone=True
    )
    state = a.state_dict()
    assert state["length"] == 50
    with pytest.raises(ValueError, match="world_size"):
        WeightedBucketSampler(
            PruningDataset(list(range(100))), num_epochs=2, rank=0, world_size=4, standalone=True
        ).load_state_dict(state)
