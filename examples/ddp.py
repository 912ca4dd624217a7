"""DistributedDataParallel training with gekodata: one global plan, equal shards, equal stores.

    torchrun --standalone --nproc_per_node=2 examples/ddp.py --epochs 4

CPU with gloo here; on GPUs use nccl and move model and batches to ``cuda:LOCAL_RANK``.
gekodata's lines are marked ``# gekodata``; everything else is an ordinary DDP script.
"""
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from gekodata import PruningDataset, WeightedBucketSampler  # gekodata
from gekodata.signals import classification_signals  # gekodata
from mnist_common import accuracy, example_parser, finish, make_mlp, mnist_split


def main() -> None:
    parser = example_parser("ddp")
    parser.add_argument("--checkpoint", default=None, help="folder for per-epoch checkpoints")
    args = parser.parse_args()
    started = time.perf_counter()
    dist.init_process_group("gloo")
    train, (x_test, y_test) = mnist_split(args.train_size)
    model = DistributedDataParallel(make_mlp())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    ds = PruningDataset(train, prune_frozen_after=2)  # gekodata: items gain "idx"
    sampler = WeightedBucketSampler(ds, num_epochs=args.epochs, seed=0)  # gekodata: this rank's shard of one plan
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler,
                        generator=torch.Generator().manual_seed(0))
    plan_lengths = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # gekodata: sync point on every rank, then the epoch's plan
        plan_lengths.append(len(sampler))
        for batch in loader:
            loss, conf, correct = classification_signals(model(batch["x"]), batch["y"])  # gekodata
            (loss * batch.get("weight", 1)).mean().backward()
            opt.step()
            opt.zero_grad()
            sampler.report(loss, conf, correct, batch["idx"])  # gekodata
        if args.checkpoint:
            os.makedirs(args.checkpoint, exist_ok=True)
            sampler.save(os.path.join(args.checkpoint, "sampler.safetensors"))  # gekodata: every rank; rank 0 writes
            if dist.get_rank() == 0:
                torch.save({"model": model.module.state_dict(), "opt": opt.state_dict(), "epoch": epoch},
                           os.path.join(args.checkpoint, "model.pt"))
    sampler.flush()  # gekodata: fold the last epoch's reports on every rank

    finish("ddp", args.out, sampler, model.module.state_dict(), plan_lengths,
           accuracy(model.module, x_test, y_test), time.perf_counter() - started)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
