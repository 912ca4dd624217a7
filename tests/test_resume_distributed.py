"""Kill a real 2-rank DDP run (torchrun, gloo, CPU) with SIGKILL, resume it, compare with an uninterrupted run.

``tests/support/resume_ddp_run.py`` trains on 480 MNIST digits for 3 epochs, checkpointing every 5 steps
and right after every ``set_epoch``. Its uninterrupted run (0 loader workers) is the reference for
every scenario, killed and resumed with 0 or 2 loader workers per rank: the per-rank step layout (measured, and asserted below so that a changed plan can't
move a kill to another kind of position) is

    epoch 0: steps 1-15 (checkpoints s0000_epoch0_start, s0005, s0010, s0015 on its last batch)
    epoch 1: steps 16-22 (s0015_epoch1_start, s0020)
    epoch 2: steps 23-33 (s0022_epoch2_start, s0025, s0030)

Scenarios (one rank SIGKILLs itself; torchrun tears the other down and exits non-zero):

* ``mid_epoch``: rank 1 dies after step 27, two steps after checkpoint s0025, mid epoch 2.
* ``epoch_boundary``: rank 0 dies right after the checkpoint taken after ``set_epoch(1)``, before
  the first batch of epoch 1 (LATEST names it).
* ``during_save``: rank 0 dies inside ``sampler.save`` of checkpoint s0010, after the sampler
  file's temp file is written and before its rename: LATEST must still name s0005, whose sampler
  file must load, and s0010 must hold no sampler file (only the temp file).

After relaunching with ``--resume``, for every rank: the killed run's stream lines up to the
checkpoint plus the resumed lines equal the uninterrupted stream; every rank's own final store
file and the final sampler files are equal across ranks and runs (tensor header and data bytes
identical; the string metadata equal as a dict, as safetensors writes it in hash order, leaving out
the sampler records' wall-clock ``plan_seconds``); the model weights are equal on every rank.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from support.torchrun_util import TEARDOWN_CRASH

import gekodata
from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler

pytest.importorskip("torchdata")
pytest.importorskip("mlxtend")

HERE = Path(__file__).resolve().parent
GEKODATA_HOME = Path(gekodata.__file__).resolve().parent.parent
SCRIPT = HERE / "support" / "resume_ddp_run.py"
NPROC = 2
NUM_DIGITS = 480  # resume_ddp_run.NUM_DIGITS
TIMEOUT = 180

# name -> (script arguments, rank that dies, steps it trained, checkpoint LATEST must name, its step)
SCENARIOS = {
    "mid_epoch": (["--kill-at", 27, "--kill-rank", 1], 1, 27, "s0025", 25),
    "epoch_boundary": (
        ["--kill-after-epoch-ckpt", 1, "--kill-rank", 0],
        0,
        15,
        "s0015_epoch1_start",
        15,
    ),
    "during_save": (["--kill-in-save", "s0010"], 0, 10, "s0005", 5),
}


def launch(out, *args, expect_kill=False):
    """One ``torchrun --nproc_per_node=2`` launch of the script; returns combined output."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # the ranks import the gekodata this test imported (an editable install may point elsewhere)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(GEKODATA_HOME), env.get("PYTHONPATH")) if p)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={NPROC}",
        str(SCRIPT),
        str(out),
        *map(str, args),
    ]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    output = proc.stdout + proc.stderr
    if expect_kill:
        assert proc.returncode != 0, (
            "the launcher must fail when a rank is SIGKILLed\n" + output[-3000:]
        )
        assert "Signal 9 (SIGKILL)" in output, output[-3000:]
    else:
        done = all((Path(out) / f"done_rank{r}").exists() for r in range(NPROC))
        # a known gloo abort at interpreter exit (tests/support/torchrun_util.py) after every rank finished
        # all its work does not change any output; the script's os._exit makes it rare anyway
        assert proc.returncode == 0 or (done and TEARDOWN_CRASH in output), output[-3000:]
        assert done, output[-3000:]
    child_gekodata = (Path(out) / "gekodata_file.txt").read_text()
    assert Path(child_gekodata).resolve() == Path(gekodata.__file__).resolve(), child_gekodata
    return output


def read_stream(path):
    return [line.split() for line in Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The script's MNIST digits, loaded once here instead of by every rank of every launch."""
    from support.resume_ddp_run import digits

    x, y = digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=x, y=y)
    return path


@pytest.fixture(scope="module")
def full(tmp_path_factory, data):
    """The uninterrupted run, the reference for every scenario and loader worker count (workers
    only move the loading into other processes: the batches, and so everything else, are the same)."""
    out = tmp_path_factory.mktemp("full")
    launch(out, "--data", data, "--workers", 0)
    check_layout(out)
    return out


def check_layout(full):
    """The step layout the scenarios rely on (see the module docstring), on both ranks."""
    for rank in range(NPROC):
        epochs = [int(line[0]) for line in read_stream(full / f"stream_rank{rank}.txt")]
        assert epochs == [0] * 15 + [1] * 7 + [2] * 11, epochs
        steps = [int(line[1]) for line in read_stream(full / f"stream_rank{rank}.txt")]
        assert steps == list(range(1, 34))
    names = sorted(p.name for p in (full / "ckpt").iterdir() if p.is_dir())
    assert names == [
        "s0000_epoch0_start",
        "s0005",
        "s0010",
        "s0015",
        "s0015_epoch1_start",
        "s0020",
        "s0022_epoch2_start",
        "s0025",
        "s0030",
    ]
    assert (full / "ckpt" / "LATEST").read_text() == "s0030"


def contents(path):
    """A safetensors file as (tensor header, metadata, data bytes): everything in it, with the
    metadata as a dict (safetensors writes it in hash order) and the sampler records' wall-clock
    ``plan_seconds`` left out."""
    raw = Path(path).read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    metadata = header.pop("__metadata__", {})
    if "sampler" in metadata:
        metadata["sampler"] = json.loads(metadata["sampler"])
        for record in metadata["sampler"]["records"]:
            assert record.pop("plan_seconds") >= 0
    return header, metadata, raw[8 + size :]


def fresh_sampler():
    return WeightedBucketSampler(
        PruningDataset(list(range(NUM_DIGITS))), BucketPolicy(), num_epochs=3, seed=7
    )


@pytest.mark.parametrize(
    "workers,scenario",
    [
        (0, "mid_epoch"),
        (0, "epoch_boundary"),
        (0, "during_save"),
        (
            2,
            "mid_epoch",
        ),  # each launch costs ~7 s CPU: 2 workers for every scenario would near 90 s
    ],
)
def test_killed_ddp_run_resumes_to_the_same_streams_store_and_model(
    tmp_path, data, full, workers, scenario
):
    args, dead_rank, dead_steps, latest, ckpt_step = SCENARIOS[scenario]
    killed = tmp_path / "killed"

    launch(killed, "--data", data, "--workers", workers, *args, expect_kill=True)
    assert [(killed / f"killed_rank{r}").exists() for r in range(NPROC)] == [
        r == dead_rank for r in range(NPROC)
    ]
    assert not (killed / "final.safetensors").exists()
    assert len(read_stream(killed / f"stream_rank{dead_rank}.txt")) == dead_steps
    assert (killed / "ckpt" / "LATEST").read_text() == latest
    sampler_file = killed / "ckpt" / latest / "sampler.safetensors"
    probe = fresh_sampler()
    probe.load(sampler_file)  # the checkpoint LATEST names is complete and loads
    assert probe.epoch == int(
        read_stream(full / "stream_rank0.txt")[ckpt_step][0]
    )  # the epoch resumed in
    if scenario == "during_save":
        torn = killed / "ckpt" / "s0010"
        assert not (torn / "sampler.safetensors").exists(), "the rename must never have happened"
        leftovers = [
            p.name for p in torn.iterdir() if p.name.startswith(".sampler.safetensors.tmp-")
        ]
        assert len(leftovers) == 1, sorted(p.name for p in torn.iterdir())
        assert (killed / "killed_rank0").read_text() == f"save s0010 tmp={leftovers[0]}"
    if scenario == "epoch_boundary":
        assert probe.epoch == 1

    launch(killed, "--data", data, "--workers", workers, "--resume")

    for rank in range(NPROC):
        uninterrupted = read_stream(full / f"stream_rank{rank}.txt")
        before = read_stream(killed / f"stream_rank{rank}.txt")
        resumed = read_stream(killed / f"stream_resumed_rank{rank}.txt")
        assert len(before) >= ckpt_step, f"rank {rank} died before the checkpoint it resumes from"
        assert resumed and int(resumed[0][1]) == ckpt_step + 1, resumed[:1]
        assert before[:ckpt_step] + resumed == uninterrupted, f"rank {rank}"
    if scenario == "during_save":  # the resumed run wrote that checkpoint again, completely
        fresh_sampler().load(killed / "ckpt" / "s0010" / "sampler.safetensors")

    # every rank's own store file, and the final sampler files: equal on every rank and in both runs
    # (safetensors writes its string metadata in hash order, so the bytes are compared part by part)
    reference_store = contents(full / "final_store_rank0.safetensors")
    for run_dir in (full, killed):
        for rank in range(NPROC):
            assert contents(run_dir / f"final_store_rank{rank}.safetensors") == reference_store, (
                run_dir.name,
                rank,
            )
    a, b = load_file(full / "final.safetensors"), load_file(killed / "final.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # names the first array that differs, if one does
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
    assert contents(full / "final.safetensors") == contents(killed / "final.safetensors")
    digests = {
        (run, rank): (run_dir / f"final_rank{rank}.json").read_text()
        for run, run_dir in (("full", full), ("resumed", killed))
        for rank in range(NPROC)
    }
    assert len(set(digests.values())) == 1, digests
    reference = torch.load(full / "final_model_rank0.pt")
    for run_dir in (full, killed):
        for rank in range(NPROC):
            weights = torch.load(run_dir / f"final_model_rank{rank}.pt")
            assert weights.keys() == reference.keys()
            for key in reference:
                assert torch.equal(weights[key], reference[key]), (run_dir.name, rank, key)
