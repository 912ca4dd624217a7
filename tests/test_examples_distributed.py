"""The multi-process examples, launched with torchrun on CPU (gloo) at a tiny size."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def launch(script, tmp_path, nproc=2, *extra, timeout=420):
    out = tmp_path / f"{script}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_BUILD_OPS="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(EXAMPLES / script), "--train-size", "512", "--epochs", "3", "--out", str(out), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def check(result, world):
    assert result["world_size"] == world and result["epochs"] == 3
    assert result["stores_equal"] is True
    assert result["params_equal"] is True
    for lengths in result["plan_lengths_per_rank"]:
        assert len(lengths) == world and len(set(lengths)) == 1
    assert result["trained_passes"] <= result["full_data_passes"] + world * 3  # + cyclic padding
    assert result["test_accuracy"] > 0.5  # 512 digits, 3 epochs: well above chance (0.1)


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_example(tmp_path, world):
    ckpt = tmp_path / "ckpt"
    check(launch("ddp.py", tmp_path, world, "--checkpoint", str(ckpt)), world)
    # the checkpoint rank 0 wrote loads into a fresh sampler over the same data
    sys.path.insert(0, str(EXAMPLES))
    try:
        from mnist_common import mnist_split
    finally:
        sys.path.remove(str(EXAMPLES))
    from gekodata import PruningDataset, WeightedBucketSampler

    sampler = WeightedBucketSampler(PruningDataset(mnist_split(512)[0], prune_frozen_after=2), num_epochs=3,
                                    seed=0, rank=0, world_size=world)
    sampler.load(ckpt / "sampler.safetensors")
    assert sampler.epoch == 2 and sampler.efficiency_report().epochs[-1].epoch == 2


def test_fsdp2_example(tmp_path):
    check(launch("fsdp.py", tmp_path), 2)


def test_deepspeed_example(tmp_path):
    pytest.importorskip("deepspeed")
    check(launch("deepspeed_zero.py", tmp_path), 2)
