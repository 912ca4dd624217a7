"""A tiny Lightning setup for tests/test_lightning.py and lightning_ddp_run.py: a linear classifier
on a separable synthetic task (InfoBatch prunes well-learned samples, so epochs shrink), a
LightningModule following gekodata's training_step contract, and a recorder of trained indices."""

import hashlib

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from gekodata import InfoBatchPolicy, PruningDataset, WeightedBucketSampler
from gekodata.lightning import GekoCallback, geko_outputs, plan_progress_lr
from gekodata.signals import classification_signals

N, BS, EPOCHS, DIM = 240, 16, 4, 8


class Blobs(Dataset):
    """``n`` points in ``DIM`` dimensions, label = side of a fixed hyperplane (a few flipped)."""

    def __init__(self, n=N):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, DIM, generator=g)
        w = torch.randn(DIM, generator=g)
        self.y = (self.x @ w > 0).long()
        flip = torch.randperm(n, generator=g)[: n // 20]
        self.y[flip] = 1 - self.y[flip]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def make_sampler(ds, **kw):
    return WeightedBucketSampler(
        ds, InfoBatchPolicy(anneal_fraction=0.0), num_epochs=EPOCHS, seed=0, **kw
    )


class Classifier(pl.LightningModule):
    """Linear classifier; records (epoch, idx list) of every trained batch in ``trained``."""

    def __init__(self, schedule=None):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(DIM, 2)
        self.trained = []
        self.schedule = schedule  # None, or a GekoCallback: linear decay by plan progress
        self.lrs = []

    def training_step(self, batch, batch_idx):
        loss, conf, correct = classification_signals(self.net(batch["x"]), batch["y"])
        self.trained.append((self.current_epoch, batch["idx"].tolist()))
        weighted = (loss * batch["weight"]).mean()  # InfoBatch's loss weights
        return {"loss": weighted, "gekodata": geko_outputs(loss, conf, correct, batch["idx"])}

    def on_train_batch_end(self, outputs, batch, batch_idx):  # after the scheduler's step
        self.lrs.append(self.optimizers().param_groups[0]["lr"])

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.5)
        # what Lightning sizes step schedules by (reading it measures the loader now)
        self.estimated = self.trainer.estimated_stepping_batches
        if self.schedule is None:
            return opt
        sched = plan_progress_lr(opt, self.schedule, lambda p: 1.0 - p)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def trainer(callbacks, **kw):
    kw.setdefault("accelerator", "cpu")
    kw.setdefault("devices", 1)
    kw.setdefault("max_epochs", EPOCHS)
    kw.setdefault("enable_checkpointing", any(isinstance(c, ModelCheckpoint) for c in callbacks))
    return pl.Trainer(
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        **kw,
    )


def single_run(root, ckpt_path=None, callbacks=(), schedule=False, loader_kw=None, **trainer_kw):
    """One fit on one process; returns (trainer, module, sampler, GekoCallback)."""
    ds = PruningDataset(Blobs())
    sampler = make_sampler(ds)
    geko = GekoCallback(sampler)
    module = Classifier(schedule=geko if schedule else None)
    loader = DataLoader(ds, batch_size=BS, sampler=sampler, **(loader_kw or {}))
    t = trainer([geko, *callbacks], default_root_dir=str(root), **trainer_kw)
    t.fit(module, loader, ckpt_path=ckpt_path)
    return t, module, sampler, geko


def store_digest(sampler):
    h = hashlib.sha256()
    state = sampler.store.state_dict()
    for name in sorted(state):
        value = state[name]
        h.update(name.encode())
        h.update(value.tobytes() if hasattr(value, "tobytes") else repr(value).encode())
    return h.hexdigest()
