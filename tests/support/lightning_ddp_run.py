"""Run under torchrun --nproc_per_node=2 (gloo, CPU): a LightningModule trained with
Trainer(strategy="ddp", use_distributed_sampler=False) on a sampler built with shard=True in
LightningDataModule.setup(), then the same fit resumed in the same processes from a mid-epoch
checkpoint of the first. Each rank writes <out>/rank<r>.json: per epoch the global plan and the
indices it trained, the store digest, and the resumed run's trained indices and store digest.

--part refuse: the default use_distributed_sampler=True instead; each rank writes the error."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytorch_lightning as pl
import torch
from lightning_toy import BS, Blobs, Classifier, make_sampler, store_digest, trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy
from torch.utils.data import DataLoader

from gekodata import PruningDataset
from gekodata.lightning import GekoCallback


class Data(pl.LightningDataModule):
    """The gekodata way under DDP: the sampler is built in setup(), once the process group exists."""

    def setup(self, stage):
        self.ds = PruningDataset(Blobs())
        self.sampler = make_sampler(self.ds, shard=True)

    def train_dataloader(self):
        return DataLoader(self.ds, batch_size=BS, sampler=self.sampler)


class Plans(pl.Callback):
    """Records the global plan of every epoch (after GekoCallback planned it)."""

    def __init__(self, data):
        self.data, self.plans = data, {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.plans[trainer.current_epoch] = self.data.sampler.global_plan.tolist()


def fit(out, ckpt_path=None, save=False, use_distributed_sampler=False):
    data = Data()
    geko = GekoCallback(lambda: data.sampler)
    plans = Plans(data)
    callbacks = [geko, plans]
    if save:
        callbacks.append(
            ModelCheckpoint(dirpath=out, filename="{step}", every_n_train_steps=9, save_top_k=-1)
        )
    t = trainer(
        callbacks,
        devices=2,
        strategy=DDPStrategy(process_group_backend="gloo"),
        use_distributed_sampler=use_distributed_sampler,
        default_root_dir=str(out),
    )
    module = Classifier()
    t.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return t, module, data.sampler, plans


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--part", default="train")
    args = parser.parse_args()
    out = Path(args.out)
    if args.part == "refuse":
        try:
            fit(out, use_distributed_sampler=True)
            result = {"error": None}
        except ValueError as e:
            result = {"error": str(e)}
        rank = torch.distributed.get_rank()
        (out / f"refuse_rank{rank}.json").write_text(json.dumps(result))
        torch.distributed.destroy_process_group()
        return
    t, module, sampler, plans = fit(out, save=True)
    rank = t.global_rank
    result = {
        "plans": plans.plans,
        "trained": module.trained,
        "store": store_digest(sampler),
        "planned": [r.planned for r in sampler.efficiency_report().epochs],
        "global_step": t.global_step,
    }
    t.strategy.barrier()
    _t2, module2, sampler2, _ = fit(out, ckpt_path=str(out / "step=18.ckpt"))
    result["resumed"] = {
        "trained": module2.trained,
        "store": store_digest(sampler2),
        "from_step": 18,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
