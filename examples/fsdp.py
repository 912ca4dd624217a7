"""FSDP2 (``fully_shard``) training with gekodata: parameters sharded, one plan, equal stores.

    torchrun --standalone --nproc_per_node=2 examples/fsdp.py --epochs 4

CPU with gloo here; on GPUs use nccl and ``torch.cuda.set_device(LOCAL_RANK)`` before sharding.
gekodata's lines are marked ``# gekodata``; everything else is an ordinary FSDP2 script.
"""
import time

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader

from gekodata import PruningDataset, WeightedBucketSampler  # gekodata
from gekodata.signals import classification_signals  # gekodata
from mnist_common import accuracy, example_parser, finish, make_mlp, mnist_split


def main() -> None:
    parser = example_parser("fsdp")
    args = parser.parse_args()
    started = time.perf_counter()
    dist.init_process_group("gloo")
    train, (x_test, y_test) = mnist_split(args.train_size)
    model = make_mlp()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
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
    sampler.flush()  # gekodata: fold the last epoch's reports on every rank

    test_acc = accuracy(model, x_test, y_test)  # every rank runs the sharded forward
    full_params = {k: v.full_tensor() for k, v in model.state_dict().items()}  # all-gathers the shards
    # one sharded copy of the weights: gathered tensors are equal on every rank by construction,
    # so params_equal would prove nothing and is left null (stores_equal is the real check here)
    finish("fsdp", args.out, sampler, full_params, plan_lengths, test_acc, time.perf_counter() - started,
           params_comparable=False)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
