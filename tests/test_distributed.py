"""Real multi-process groups (torchrun, gloo, CPU): one global plan, equal shards, equal stores."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from support.torchrun_util import run_torchrun

HERE = Path(__file__).parent


def launch(script, nproc, *args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(script),
        *map(str, args),
    ]
    proc = run_torchrun(cmd, env, timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module", params=[2, 4], ids=["2ranks", "4ranks"])
def checks(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "out.json"
    launch(HERE / "support" / "distributed_checks.py", request.param, out)
    return json.loads(out.read_text())


@pytest.mark.parametrize("mode", ["per_epoch_sync", "sync_every_3"])
def test_shards_partition_one_global_plan_with_equal_lengths(checks, mode):
    world = checks["world_size"]
    ranks = [r[mode] for r in checks["ranks"]]
    for epoch in range(len(ranks[0]["epochs"])):
        seen = [r["epochs"][epoch] for r in ranks]
        global_plan = np.array(seen[0]["global"])
        assert all(s["global"] == seen[0]["global"] for s in seen), "plans differ across ranks"
        assert len({s["len"] for s in seen}) == 1, "ranks got different lengths"
        assert all(s["stream_ok"] for s in seen)
        per_rank = -(-len(global_plan) // world)
        padded = np.resize(global_plan, per_rank * world) if len(global_plan) else global_plan
        for rank, s in enumerate(seen):
            assert s["local"] == padded[rank::world].tolist()
        union = np.concatenate([np.array(s["local"], dtype=np.int64) for s in seen])
        assert sorted(union.tolist()) == sorted(padded.tolist())


@pytest.mark.parametrize("mode", ["per_epoch_sync", "sync_every_3", "unsharded"])
def test_stores_are_bitwise_equal_and_counts_global(checks, mode):
    ranks = [r[mode] for r in checks["ranks"]]
    assert len({r["digest"] for r in ranks}) == 1
    assert all(r["trained"] == sum(x["reported_local"] for x in ranks) for r in ranks)


def test_unsharded_mode_emits_the_global_plan_on_every_rank(checks):
    for r in checks["ranks"]:
        for e in r["unsharded"]["epochs"]:
            assert e["local"] == e["global"]


def test_all_frozen_epoch_is_empty_on_every_rank(checks):
    assert [r["all_frozen"] for r in checks["ranks"]] == [{"len": 0, "batches": 0}] * checks[
        "world_size"
    ]
