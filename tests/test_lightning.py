"""PyTorch Lightning integration (gekodata.lightning), run for real on CPU at a tiny size: epochs
that shrink, exact resume from Lightning checkpoints (mid-epoch, last batch, epoch end), the LR
schedule by plan progress, refusals, and a 2-process DDP run under torchrun (gloo)."""

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytorch_lightning")

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from support.lightning_toy import (
    BS,
    EPOCHS,
    Blobs,
    Classifier,
    N,
    make_sampler,
    single_run,
    store_digest,
    trainer,
)
from support.torchrun_util import run_torchrun
from torch.utils.data import DataLoader

from gekodata import PruningDataset
from gekodata.lightning import GekoCallback

HERE = Path(__file__).resolve().parent


def checkpoints(out):
    every = ModelCheckpoint(dirpath=out, filename="{step}", every_n_train_steps=5, save_top_k=-1)
    ends = ModelCheckpoint(
        dirpath=out, filename="end-{step}", save_on_train_epoch_end=True, save_top_k=-1
    )
    return [every, ends]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("lightning")
    t, module, sampler, _geko = single_run(out, callbacks=checkpoints(out), schedule=True)
    return out, t, module, sampler


def planned_batches(sampler):
    return [math.ceil(r.planned / BS) for r in sampler.efficiency_report().epochs]


def test_epochs_shrink_and_steps_follow_the_plan(reference):
    _out, t, module, sampler = reference
    records = sampler.efficiency_report().epochs
    planned = [r.planned for r in records]
    assert planned[0] == N and all(p < N for p in planned[1:]), planned
    assert [r.reported for r in records] == planned  # every planned draw trained and reported once
    batches = planned_batches(sampler)
    assert [sum(1 for e, _ in module.trained if e == k) for k in range(EPOCHS)] == batches
    assert t.global_step == sum(batches)
    # each epoch trained exactly its plan, in order
    for epoch in range(EPOCHS):
        stream = [i for e, idx in module.trained if e == epoch for i in idx]
        assert len(stream) == planned[epoch]
    # Lightning sized step schedules from the first epoch; the plan-progress schedule ends at 0
    assert module.estimated == EPOCHS * batches[0]
    assert t.lr_scheduler_configs[0].scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)
    # after the k-th of n batches of epoch e the LR is 0.5 * (1 - (e + k / n) / EPOCHS)
    expected = [
        0.5 * (1 - (e + k / n) / EPOCHS) for e, n in enumerate(batches) for k in range(1, n + 1)
    ]
    assert module.lrs == pytest.approx(expected, abs=1e-12)


def _resume_case(reference, tmp_path, name):
    out, ref_t, ref_module, ref_sampler = reference
    ckpt = out / name
    assert ckpt.exists(), sorted(p.name for p in out.iterdir())
    step = torch.load(ckpt, weights_only=False)["global_step"]
    t, module, sampler, _ = single_run(tmp_path, ckpt_path=str(ckpt), schedule=True)
    assert module.trained == ref_module.trained[step:]  # the rest of the same index stream
    assert module.lrs == ref_module.lrs[step:]  # and of the same LR schedule
    assert store_digest(sampler) == store_digest(ref_sampler)  # the same store, bitwise
    assert t.global_step == ref_t.global_step
    for a, b in zip(module.parameters(), ref_module.parameters()):
        assert torch.equal(a, b)
    return step


def test_resume_mid_shrunk_epoch(reference, tmp_path):
    step = _resume_case(reference, tmp_path, "step=20.ckpt")
    ends = list(itertools.accumulate(planned_batches(reference[3])))
    assert ends[0] < step < ends[1]  # inside epoch 1, which is shorter than epoch 0


def test_resume_after_the_last_batch_of_an_epoch(reference, tmp_path):
    assert _resume_case(reference, tmp_path, "step=15.ckpt") == planned_batches(reference[3])[0]


def test_resume_from_an_epoch_end_checkpoint(reference, tmp_path):
    ends = list(itertools.accumulate(planned_batches(reference[3])))
    assert _resume_case(reference, tmp_path, f"end-step={ends[1]}.ckpt") == ends[1]


def test_training_step_without_signals_is_refused(tmp_path):
    class Plain(Classifier):
        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx)["loss"]

    ds = PruningDataset(Blobs())
    sampler = make_sampler(ds)
    t = trainer([GekoCallback(sampler)], default_root_dir=str(tmp_path))
    with pytest.raises(ValueError, match="without 'gekodata'"):
        t.fit(Plain(), DataLoader(ds, batch_size=BS, sampler=sampler))


def test_mismatched_epochs_and_foreign_loader_are_refused(tmp_path):
    ds = PruningDataset(Blobs())
    sampler = make_sampler(ds)
    loader = DataLoader(ds, batch_size=BS, sampler=sampler)
    root = str(tmp_path)
    with pytest.raises(ValueError, match="max_epochs=2"):
        trainer([GekoCallback(sampler)], max_epochs=2, default_root_dir=root).fit(
            Classifier(), loader
        )
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=1"):
        trainer(
            [GekoCallback(sampler)], reload_dataloaders_every_n_epochs=1, default_root_dir=root
        ).fit(Classifier(), loader)
    with pytest.raises(ValueError, match="limit_train_batches=1\\)"):
        trainer([GekoCallback(sampler)], limit_train_batches=1, default_root_dir=root).fit(
            Classifier(), loader
        )
    other = make_sampler(ds)
    with pytest.raises(ValueError, match="no train DataLoader draws from the sampler"):
        trainer([GekoCallback(sampler)], default_root_dir=root).fit(
            Classifier(), DataLoader(ds, batch_size=BS, sampler=other)
        )


def test_importable_without_lightning():
    code = (
        "import sys; sys.modules['pytorch_lightning'] = None\n"
        "import gekodata.lightning as gl\n"
        "try:\n    gl.GekoCallback(None)\nexcept ImportError as e:\n    print('ImportError', e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "ImportError" in proc.stdout and "pip install 'gekodata[lightning]'" in proc.stdout


def torchrun(tmp_path, part):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "support" / "lightning_ddp_run.py"),
        "--out",
        str(tmp_path),
        "--part",
        part,
    ]
    proc = run_torchrun(cmd, env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prefix = "refuse_" if part == "refuse" else ""
    return [json.loads((tmp_path / f"{prefix}rank{r}.json").read_text()) for r in (0, 1)]


def test_ddp_two_processes_one_global_plan(tmp_path):
    from gekodata.sampler.collective import rank_shard

    ranks = torchrun(tmp_path, "train")
    assert ranks[0]["plans"] == ranks[1]["plans"]  # one global plan
    assert ranks[0]["store"] == ranks[1]["store"]  # stores bitwise equal
    planned = ranks[0]["planned"]
    assert planned[0] == N and all(p < N for p in planned[1:]), planned
    for epoch, plan in ranks[0]["plans"].items():
        assert len(plan) == planned[int(epoch)]
        for rank, result in enumerate(ranks):
            trained = [i for e, idx in result["trained"] if e == int(epoch) for i in idx]
            # this rank's strided shard of the global plan, once: no second sharding by Lightning
            assert trained == [int(i) for i in rank_shard(torch.tensor(plan).numpy(), rank, 2)]
    per_rank = [math.ceil(math.ceil(p / 2) / BS) for p in planned]
    ends = list(itertools.accumulate(per_rank))
    assert all(end != ranks[0]["resumed"]["from_step"] for end in ends)  # inside an epoch
    for result in ranks:  # resumed from a mid-epoch checkpoint in the same processes
        resumed = result["resumed"]
        assert resumed["trained"] == result["trained"][resumed["from_step"] :]
        assert resumed["store"] == result["store"]


def test_ddp_with_lightnings_distributed_sampler_is_refused(tmp_path):
    for result in torchrun(tmp_path, "refuse"):
        assert "use_distributed_sampler=False" in result["error"]


def test_extra_states_the_tested_range():
    import tomllib

    from gekodata.lightning.loop import TESTED

    extras = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["lightning"] == [f"pytorch-lightning{TESTED}"]


def test_example_resumes_inside_a_tiny_epoch_before_longer_ones(tmp_path):
    """The digits example: BucketPolicy's curriculum plans epochs of 1400, ..., 65, 33, 1296, ...
    draws. Resuming inside the 65-draw epoch, Lightning measures that epoch's 3 batches; the
    callback must let the later 41-batch epochs run in full (same weights as the unbroken run)."""
    sys.path.insert(0, str(HERE.parent / "examples"))
    try:
        from lightning_example import main
    finally:
        sys.path.pop(0)
    result = main(["--out", str(tmp_path), "--ckpt-every", "66", "--resume", "--resume-at", "132"])
    planned = result["planned_per_epoch"]
    assert result["steps"] == sum(math.ceil(p / 32) for p in planned)
    ends = list(itertools.accumulate(math.ceil(p / 32) for p in planned))
    tiny = next(e for e, p in enumerate(planned) if ends[e - 1] < 132 < ends[e])
    assert planned[tiny] < planned[tiny + 2] // 4  # resumed in an epoch far shorter than later ones
    assert result["resumed_same_weights"]
    assert result["test_accuracy"] > 0.9


def test_validate_from_a_checkpoint_leaves_the_sampler_alone(reference, tmp_path):
    class WithVal(Classifier):
        def validation_step(self, batch, batch_idx):
            return None

    out = reference[0]
    ds = PruningDataset(Blobs())
    sampler = make_sampler(ds)
    before = (store_digest(sampler), sampler.state_dict())
    t = trainer([GekoCallback(sampler)], default_root_dir=str(tmp_path))
    t.validate(WithVal(), DataLoader(ds, batch_size=BS), ckpt_path=str(out / "step=20.ckpt"))
    assert (store_digest(sampler), sampler.state_dict()) == before


def test_resume_with_loader_workers(reference, tmp_path):
    """Two workers draw batches ahead of training; the checkpoint still holds the trained position."""
    _, _, ref_module, ref_sampler = reference
    workers = {"num_workers": 2, "persistent_workers": True}
    _, module, sampler, _ = single_run(
        tmp_path, callbacks=checkpoints(tmp_path), schedule=True, loader_kw=workers
    )
    assert module.trained == ref_module.trained  # workers change nothing in the run
    assert store_digest(sampler) == store_digest(ref_sampler)
    resumed = single_run(
        tmp_path / "r", ckpt_path=str(tmp_path / "step=20.ckpt"), schedule=True, loader_kw=workers
    )
    assert resumed[1].trained == ref_module.trained[20:]
    assert store_digest(resumed[2]) == store_digest(ref_sampler)


def test_gradient_accumulation_steps_follow_the_plan(tmp_path):
    t, module, sampler, _ = single_run(tmp_path, schedule=True, accumulate_grad_batches=2)
    batches = planned_batches(sampler)
    assert [sum(1 for e, _ in module.trained if e == k) for k in range(EPOCHS)] == batches
    assert t.global_step == sum(math.ceil(b / 2) for b in batches)  # each epoch's last window steps
    assert t.lr_scheduler_configs[0].scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-9)


def test_user_weights_change_between_epochs_and_resume_with_the_checkpoint(tmp_path):
    """docs/weighted_sampler.md's Lightning recipe: WeightPolicy + GekoCallback, weights set at
    each epoch's end; a run resumed from an epoch-end checkpoint plans as the uninterrupted one
    (the checkpoint's sampler file carries the weights)."""
    import numpy as np
    import pytorch_lightning as pl

    from gekodata import WeightedBucketSampler, WeightPolicy
    from gekodata.lightning import geko_outputs
    from gekodata.signals import classification_signals

    class Unweighted(Classifier):
        def training_step(self, batch, batch_idx):
            loss, conf, correct = classification_signals(self.net(batch["x"]), batch["y"])
            self.trained.append((self.current_epoch, batch["idx"].tolist()))
            return {
                "loss": loss.mean(),
                "gekodata": geko_outputs(loss, conf, correct, batch["idx"]),
            }

    class Reweight(pl.Callback):
        def __init__(self, policy):
            self.policy = policy

        def on_train_epoch_end(self, trainer, pl_module):
            w = np.ones(N)
            w[: N // 4] = 3.0 + trainer.current_epoch  # depends only on the epoch: reproducible
            self.policy.set_weights(w)

    def fit(root, ckpt_path=None, callbacks=()):
        ds = PruningDataset(Blobs())
        policy = WeightPolicy(np.ones(N))
        sampler = WeightedBucketSampler(ds, policy, num_epochs=EPOCHS, seed=0)
        module = Unweighted()
        t = trainer(
            [GekoCallback(sampler), Reweight(policy), *callbacks], default_root_dir=str(root)
        )
        t.fit(module, DataLoader(ds, batch_size=BS, sampler=sampler), ckpt_path=ckpt_path)
        return module, policy

    out = tmp_path / "ref"
    ends = ModelCheckpoint(dirpath=out, filename="end-{epoch}", save_on_train_epoch_end=True,
                           save_top_k=-1)
    ref_module, ref_policy = fit(out, callbacks=[ends])
    first = [i for e, idx in ref_module.trained if e == 1 for i in idx]
    assert np.bincount(first, minlength=N)[: N // 4].sum() > N // 4  # the weights took effect
    module, policy = fit(tmp_path / "resumed", ckpt_path=str(out / "end-epoch=0.ckpt"))
    assert module.trained == [t for t in ref_module.trained if t[0] >= 1]
    assert np.array_equal(policy.weights, ref_policy.weights)
