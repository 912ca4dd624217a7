"""Run under torchrun --nproc_per_node=2 (gloo, CPU): gekodata with a plain accelerate loop and with
GekoTrainer. Each rank writes <out>/rank<r>.json: per epoch the global plan, the rows it trained
(index and whether the row's input_ids equal the dataset's row for that index), the indices it
reported, and a digest of the final store."""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from hf_toy import ToyText, tiny_bert
from torch.utils.data import DataLoader

from gekodata import InfoBatchPolicy, PruningDataset, WeightedBucketSampler
from gekodata.signals import classification_signals


def digest(columns):
    h = hashlib.sha256()
    for name in sorted(columns):
        h.update(name.encode())
        h.update(columns[name].tobytes())
    return h.hexdigest()


class Recorder:
    """Wraps sampler.report to record the reported indices of the current epoch."""

    def __init__(self, sampler, base):
        self.sampler, self.base, self.trained, self.reported, self.mismatched = (
            sampler,
            base,
            {},
            {},
            0,
        )
        original = sampler.report

        def report(loss, conf=None, correct=None, idx=None, **kwargs):
            self.reported.setdefault(sampler.epoch, []).extend(torch.as_tensor(idx).tolist())
            return original(loss, conf, correct, idx, **kwargs)

        sampler.report = report

    def trained_rows(self, epoch, batch):
        idx = batch["idx"].tolist()
        self.trained.setdefault(epoch, []).extend(idx)
        for row, i in zip(
            batch["input_ids"], idx
        ):  # the row really is sample i (no misattribution)
            self.mismatched += int(not torch.equal(row.cpu(), self.base[i]["input_ids"]))


def accelerate_loop(out, epochs, n):
    from accelerate import Accelerator

    from gekodata.hf import report_batch, sampler_of

    accelerator = Accelerator(cpu=True)
    base = ToyText(n)
    ds = PruningDataset(base)
    sampler = WeightedBucketSampler(
        ds, InfoBatchPolicy(anneal_fraction=0.0), num_epochs=epochs, seed=1, shard=False
    )
    rec = Recorder(sampler, base)
    model = tiny_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, opt, loader = accelerator.prepare(
        model, opt, DataLoader(ds, batch_size=4, sampler=sampler)
    )
    # the same sampler with shard=True under accelerate: refused (double sharding)
    double = WeightedBucketSampler(PruningDataset(base), num_epochs=epochs, seed=1, shard=True)
    try:
        sampler_of(
            accelerator.prepare(DataLoader(double.data_source, batch_size=4, sampler=double))
        )
        double_error = None
    except ValueError as exc:
        double_error = str(exc)
    plans, lengths = {}, {}
    for epoch in range(epochs):
        loader.set_epoch(epoch)  # forwards to the sampler: plans the epoch
        plans[epoch] = sampler.global_plan.tolist()
        lengths[epoch] = len(loader)
        for batch in loader:
            rec.trained_rows(epoch, batch)
            idx = batch.pop("idx")
            weight = batch.pop("weight")
            labels = batch.pop("labels")
            logits = model(**batch).logits
            loss, conf, correct = classification_signals(logits, labels)
            accelerator.backward((loss * weight).mean())
            opt.step()
            opt.zero_grad()
            batch["idx"] = idx
            report_batch(loader, batch, loss, conf, correct)
    sampler.flush()
    return {
        "plans": plans,
        "loader_lengths": lengths,
        "trained": rec.trained,
        "reported": rec.reported,
        "mismatched_rows": rec.mismatched,
        "store_digest": digest(sampler.store.columns),
        "double_sharding_error": double_error,
        "batch_size": 4,
        "trained_passes": sampler.efficiency_report().trained_passes,
    }


def trainer_run(out, epochs, n):
    import transformers
    from transformers import TrainingArguments

    from gekodata.hf import GekoTrainer

    transformers.logging.set_verbosity_error()
    base = ToyText(n, seed=3)
    ds = PruningDataset(base)
    sampler = WeightedBucketSampler(
        ds, InfoBatchPolicy(anneal_fraction=0.0), num_epochs=epochs, seed=2, shard=False
    )
    rec = Recorder(sampler, base)
    plans = {}

    class Recording(GekoTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                plans.setdefault(sampler.epoch, sampler.global_plan.tolist())
                rec.trained_rows(sampler.epoch, inputs)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def make_args(path):
        return TrainingArguments(
            str(path),
            num_train_epochs=epochs,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=2,
            learning_rate=1e-3,
            save_strategy="steps",
            save_steps=2,
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            logging_steps=1,
        )

    trainer = Recording(
        model=tiny_bert(), args=make_args(out / "trainer"), train_dataset=ds, sampler=sampler
    )
    trainer.train()
    ckpts = sorted(
        p.name
        for p in (out / "trainer").glob("checkpoint-*")
        if (p / "gekodata_sampler.safetensors").exists()
    )
    # resume a fresh trainer (2 processes) from the last checkpoint before the end: same final store
    resume_step = max(
        int(c.split("-")[1]) for c in ckpts if int(c.split("-")[1]) < trainer.state.global_step
    )
    fresh = PruningDataset(base)
    resumed_sampler = WeightedBucketSampler(
        fresh, InfoBatchPolicy(anneal_fraction=0.0), num_epochs=epochs, seed=2, shard=False
    )
    resumed = GekoTrainer(
        model=tiny_bert(seed=9),
        args=make_args(out / "resumed"),
        train_dataset=fresh,
        sampler=resumed_sampler,
    )
    resumed.train(resume_from_checkpoint=str(out / "trainer" / f"checkpoint-{resume_step}"))
    same_params = all(
        torch.allclose(a, b, atol=1e-6)
        for a, b in zip(trainer.model.parameters(), resumed.model.parameters())
    )
    return {
        "plans": plans,
        "trained": rec.trained,
        "reported": rec.reported,
        "mismatched_rows": rec.mismatched,
        "store_digest": digest(sampler.store.columns),
        "batch_size": 4,
        "checkpoints": ckpts,
        "global_step": trainer.state.global_step,
        "trained_passes": sampler.efficiency_report().trained_passes,
        "resumed_from": resume_step,
        "resumed_store_digest": digest(resumed_sampler.store.columns),
        "resumed_global_step": resumed.state.global_step,
        "resumed_params_equal": same_params,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n", type=int, default=42)
    parser.add_argument("--part", choices=["accelerate", "trainer"], required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = (accelerate_loop if args.part == "accelerate" else trainer_run)(
        args.out, args.epochs, args.n
    )
    rank = int(os.environ.get("RANK", "0"))
    result.update(rank=rank, world_size=int(os.environ.get("WORLD_SIZE", "1")))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.part}_rank{rank}.json").write_text(json.dumps(result))
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
