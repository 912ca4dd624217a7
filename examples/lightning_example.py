#!/usr/bin/env python
"""gekodata with PyTorch Lightning: a small MLP on scikit-learn's bundled 8x8 digits (offline).

gekodata's lines are marked ``# gekodata``: wrap the dataset in ``PruningDataset``, draw the train
loader from a ``WeightedBucketSampler``, return per-sample signals from ``training_step`` next to
the loss, and add ``GekoCallback(sampler)`` to the ``Trainer``. The LR decays linearly to 0 by
progress through the plans (``plan_progress_lr``), since later epochs are shorter than the first.

    python examples/lightning_example.py                 # gekodata, 8 epochs, ~10 s on CPU
    python examples/lightning_example.py --baseline      # plain shuffling, same model
    python examples/lightning_example.py --ckpt-every 20 --resume   # checkpoint, then resume
    python examples/lightning_example.py --ckpt-every 66 --resume --resume-at 132  # in a tiny epoch

DDP (docs/integrations/lightning.md): build the sampler in ``LightningDataModule.setup()`` with
``shard=True``, pass ``GekoCallback(lambda: datamodule.sampler)`` and
``Trainer(strategy="ddp", use_distributed_sampler=False)``.
"""

from __future__ import annotations

import argparse
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler
from gekodata.lightning import GekoCallback, geko_outputs, plan_progress_lr
from gekodata.signals import classification_signals


class Digits(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


class MLP(pl.LightningModule):
    def __init__(self, geko: GekoCallback | None, lr: float) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
        )
        self.geko, self.lr = geko, lr

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        logits = self.net(batch["x"])
        if self.geko is None:
            return {"loss": torch.nn.functional.cross_entropy(logits, batch["y"])}
        signals = classification_signals(logits, batch["y"])  # loss, conf, correct [B]  # gekodata
        return {"loss": signals.loss.mean(), "gekodata": geko_outputs(signals, batch["idx"])}

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        if self.geko is None:
            steps = self.trainer.estimated_stepping_batches  # full epochs: counting steps is right
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
        else:  # later epochs are shorter than the first: decay by plan progress  # gekodata
            sched = plan_progress_lr(opt, self.geko, lambda p: 1 - p)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--baseline", action="store_true", help="plain shuffling, no gekodata")
    parser.add_argument("--out", default="examples/out/lightning")
    parser.add_argument("--ckpt-every", type=int, default=0, help="checkpoint every N steps")
    parser.add_argument("--resume", action="store_true", help="then resume from the middle one")
    parser.add_argument(
        "--resume-at", type=int, default=0, help="resume from this step's checkpoint"
    )
    args = parser.parse_args(argv)

    pl.seed_everything(0, verbose=False)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = perm[:1400], perm[1400:]
    base = Digits(x[train], y[train])

    def fit(ckpt_path: str | None = None) -> tuple[MLP, pl.Trainer, WeightedBucketSampler | None]:
        callbacks: list[pl.Callback] = []
        sampler = None
        if args.baseline:
            loader = DataLoader(base, batch_size=args.batch_size, shuffle=True)
        else:
            ds = PruningDataset(base)  # items gain "idx"  # gekodata
            sampler = WeightedBucketSampler(ds, BucketPolicy(), num_epochs=args.epochs, seed=0)
            loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler)  # gekodata
            callbacks.append(GekoCallback(sampler))  # gekodata
        if args.ckpt_every:
            callbacks.append(
                ModelCheckpoint(
                    dirpath=args.out,
                    filename="{step}",
                    every_n_train_steps=args.ckpt_every,
                    save_top_k=-1,
                )
            )
        geko = next((c for c in callbacks if isinstance(c, GekoCallback)), None)
        model = MLP(geko, args.lr)
        trainer = pl.Trainer(
            max_epochs=args.epochs,
            accelerator="cpu",
            devices=1,
            callbacks=callbacks,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=bool(args.ckpt_every),
            default_root_dir=args.out,
        )
        trainer.fit(model, loader, ckpt_path=ckpt_path)
        return model, trainer, sampler

    start = time.perf_counter()
    model, trainer, sampler = fit()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = (model.net(x[test]).argmax(-1) == y[test]).float().mean().item()
    result = {
        "steps": trainer.global_step,
        "test_accuracy": round(accuracy, 4),
        "seconds": round(seconds, 1),
    }
    if sampler is not None:
        report = sampler.efficiency_report()
        result["planned_per_epoch"] = [r.planned for r in report.epochs]
        result["passes_saved"] = args.epochs * len(base) - sum(r.planned for r in report.epochs)
    if args.resume and args.ckpt_every:
        middle = args.resume_at or (trainer.global_step // args.ckpt_every // 2) * args.ckpt_every
        resumed, _, _ = fit(f"{args.out}/step={middle}.ckpt")
        same = all(torch.equal(a, b) for a, b in zip(resumed.parameters(), model.parameters()))
        result["resumed_from_step"], result["resumed_same_weights"] = middle, same
    print(result)
    return result


if __name__ == "__main__":
    main()
