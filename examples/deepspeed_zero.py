"""DeepSpeed (ZeRO stage 2) training with gekodata: one plan, equal shards, equal stores.

    DS_BUILD_OPS=0 pip install deepspeed
    torchrun --standalone --nproc_per_node=2 examples/deepspeed_zero.py --epochs 4

CPU with gloo here (DeepSpeed's CPU accelerator, a plain torch optimizer: no compiled ops);
on GPUs drop ``dist_backend="gloo"`` and let DeepSpeed pick nccl.
gekodata's lines are marked ``# gekodata``; everything else is an ordinary DeepSpeed script.
"""
import time

import deepspeed
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from gekodata import PruningDataset, WeightedBucketSampler  # gekodata
from gekodata.signals import classification_signals  # gekodata
from mnist_common import accuracy, example_parser, finish, make_mlp, mnist_split


def main() -> None:
    parser = example_parser("deepspeed_zero")
    parser.add_argument("--zero-stage", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    if not torch.cuda.is_available():
        # DeepSpeed's CPU backend JIT-compiles a shared-memory all-reduce at init (about a minute
        # with a cold cache), used only by inference_all_reduce: skip it for CPU training
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="gloo")
    train, (x_test, y_test) = mnist_split(args.train_size)
    model = make_mlp()
    config = {
        "train_micro_batch_size_per_gpu": args.batch_size,
        "gradient_accumulation_steps": 1,
        # torch.optim.Adam (no compiled FusedAdam on CPU); adam_w_mode False: plain Adam as in ddp.py
        "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "torch_adam": True, "adam_w_mode": False}},
        "zero_optimization": {"stage": args.zero_stage},
        "steps_per_print": 10**9,
    }
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    if dist.get_rank() == 0:
        print(f"ZeRO stage {engine.zero_optimization_stage()}, optimizer {type(engine.optimizer).__name__} "
              f"around {type(engine.optimizer.optimizer).__name__}")

    ds = PruningDataset(train, prune_frozen_after=2)  # gekodata: items gain "idx"
    sampler = WeightedBucketSampler(ds, num_epochs=args.epochs, seed=0)  # gekodata: this rank's shard of one plan
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler,
                        generator=torch.Generator().manual_seed(0))
    plan_lengths = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # gekodata: sync point on every rank, then the epoch's plan
        plan_lengths.append(len(sampler))
        for batch in loader:
            loss, conf, correct = classification_signals(engine(batch["x"]), batch["y"])  # gekodata
            engine.backward((loss * batch.get("weight", 1)).mean())
            engine.step()
            sampler.report(loss, conf, correct, batch["idx"])  # gekodata
    sampler.flush()  # gekodata: fold the last epoch's reports on every rank

    test_acc = accuracy(engine.module, x_test, y_test)
    finish("deepspeed", args.out, sampler, engine.module.state_dict(), plan_lengths, test_acc,
           time.perf_counter() - started)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
