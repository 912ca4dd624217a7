#!/usr/bin/env python
"""Label noise: does the noise guard keep gekodata from amplifying wrong labels?

Symmetric label noise is injected into the *training* labels of the time-to-quality tasks
(``time_to_quality.py``: T1 MiniLM on BBC News, T2 small CNN on MNIST-5000): a fixed random
``rate`` share of the training samples (chosen per seed) gets a label drawn uniformly from the
other classes. Test labels stay clean. Every arm of a seed starts from the same initialisation
and trains the same noisy data with the same optimizer and learning-rate rule as in
``time_to_quality.py``:

* ``full``: uniform full-data epochs;
* ``gekodata``: ``BucketPolicy()`` (GEKO's thresholds and mountain curriculum) without the guard;
* ``gekodata_guard``: ``BucketPolicy(noise_guard=True)``: probably-mislabeled HARD samples become
  SUSPECT and are drawn at weight 0.1 instead of HARD's boost;
* ``infobatch``: ``InfoBatchPolicy()``.

The loop reports ``pred=logits.argmax(-1)`` with every batch (as ``time_to_quality.py`` does).
Figures per arm: final clean test accuracy (after the last step), sample passes, wall-clock; for
the gekodata arms the share of injected flips among HARD samples at each epoch's plan, and for
the guard the precision and recall of SUSPECT against the injected flips, measured on the final
classification of the store (every report folded in, as ``sampler.suspects()`` would list after
one more ``set_epoch``) and per epoch. Goal (issue 7): with the guard gekodata is never below
``full``, and precision and recall >= 0.7.

Run (2 CPU cores)::

    python benchmarks/noise.py --task t2            # ~15 min: 2 rates x 4 arms x 3 seeds
    python benchmarks/noise.py --task t1            # ~60 min (--threads 1: slower, less sensitive to other load)
    python benchmarks/noise.py --quick              # smoke: T2, 2,000 samples, 1 seed, 4 epochs

Writes ``benchmarks/results/noise_<task>[_quick].json``/.md/.png and, in full mode, the README
table between ``<!-- bench:noise_<task> -->`` markers.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

import time_to_quality as ttq
from bench_common import inject_noise, update_readme
from gekodata import Bucket, BucketPolicy, PruningDataset, WeightedBucketSampler

ARMS = ("full", "gekodata", "gekodata_guard", "infobatch")
RATES = (0.1, 0.2)
COLOURS = dict(zip(ARMS, ("black", "tab:red", "tab:purple", "tab:blue")))
RUN_KEYS = ("final_metric", "wall_clock_s", "sample_passes")


def noisy_task(task: ttq.Task, rate: float, seed: int) -> "tuple[ttq.Task, np.ndarray]":
    columns = dict(task.train.columns)
    num_classes = int(columns["labels"].max()) + 1
    columns["labels"], flipped = inject_noise(columns["labels"], num_classes, rate, seed)
    return dataclasses.replace(task, train=ttq.TensorDictDataset(**columns)), flipped


GUARD: Dict[str, int] = {}  # BucketPolicy overrides for the guard arm (--suspect-streak)


def make_loader(task: ttq.Task, arm: str, seed: int, budget: Optional[dict]):
    if arm != "gekodata_guard":
        return ttq.make_loader(task, arm, seed, budget)
    dataset = PruningDataset(task.train)
    sampler = WeightedBucketSampler(dataset, BucketPolicy(noise_guard=True, **GUARD), num_epochs=task.epochs,
                                    seed=seed)
    return DataLoader(dataset, batch_size=task.batch_size, sampler=sampler), sampler, task.epochs, None


def precision_recall(flagged: np.ndarray, flipped: np.ndarray) -> Dict[str, float]:
    hits = int(np.count_nonzero(flagged & flipped))
    return {"flagged": int(flagged.sum()), "precision": hits / max(int(flagged.sum()), 1),
            "recall": hits / max(int(flipped.sum()), 1)}


def epoch_probe(flipped: np.ndarray):
    """on_epoch callback: share of flips among HARD (as planned) and SUSPECT precision/recall."""
    def probe(epoch: int, sampler: Optional[WeightedBucketSampler]) -> dict:
        if sampler is None or not isinstance(sampler.policy, BucketPolicy):
            return {}
        codes = sampler.store.bucket
        hard = codes == Bucket.HARD
        out = {"hard": int(hard.sum()), "hard_flipped_share": float(flipped[hard].mean()) if hard.any() else 0.0}
        if sampler.policy.noise_guard:
            out["suspect"] = precision_recall(codes == Bucket.SUSPECT, flipped)
        return out
    return probe


def final_suspects(sampler: Optional[WeightedBucketSampler], flipped: np.ndarray) -> Optional[dict]:
    """Classify the store with every report folded in (what the next plan would see)."""
    if sampler is None or not isinstance(sampler.policy, BucketPolicy):
        return None
    sampler.flush()
    guard = dataclasses.replace(sampler.policy, noise_guard=True, **GUARD)
    return precision_recall(guard.classify(sampler.store) == Bucket.SUSPECT, flipped)


def run_rate(task: ttq.Task, rate: float, arms: List[str]) -> dict:
    result = {"rate": rate, "arms": {arm: {"seeds": [], "curves": [], "suspects": [], **{k: [] for k in RUN_KEYS}}
                                     for arm in arms}}
    for seed in task.seeds:
        noisy, flipped = noisy_task(task, rate, seed)
        init_state = copy.deepcopy(task.make_model(seed).state_dict())
        for arm in arms:
            holder: Dict[str, WeightedBucketSampler] = {}

            def factory(t, a, s, b):
                loader, sampler, epochs, budget = make_loader(t, a, s, b)
                holder["sampler"] = sampler
                return loader, sampler, epochs, budget

            run = ttq.run_arm(noisy, arm, seed, init_state, None, loader_factory=factory,
                              on_epoch=epoch_probe(flipped))
            data = result["arms"][arm]
            data["seeds"].append(seed)
            for key in RUN_KEYS:
                data[key].append(run[key])
            data["curves"].append(run["curve"])
            data["suspects"].append(final_suspects(holder.get("sampler"), flipped))
            s = data["suspects"][-1]
            extra = f"  suspects P {s['precision']:.2f} R {s['recall']:.2f} (n={s['flagged']})" if s else ""
            print(f"  noise {rate:.0%} seed {seed} {arm:<15} acc {run['final_metric']:.4f}  "
                  f"passes {run['sample_passes']:>6}  train {run['wall_clock_s']:6.1f}s{extra}", flush=True)
    return result


def table(result: dict) -> str:
    std = lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0  # noqa: E731
    lines = [f"**Label noise on {result['task'].upper()} — {result['title']}** ({result['mode']} mode, "
             f"{len(result['seeds'])} seeds, {result['config']['epochs']} epochs, clean test accuracy; "
             f"{result['date']}, {result['machine']})", "",
             "| noise | arm | clean test accuracy | Δ vs full (paired) | sample passes | vs full "
             "| SUSPECT precision | SUSPECT recall | flips among HARD (last plan) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for rate_result in result["rates"]:
        arms = rate_result["arms"]
        full = arms.get("full")
        for arm in ARMS:
            if arm not in arms:
                continue
            d = arms[arm]
            acc = np.array(d["final_metric"], dtype=float)
            passes = np.array(d["sample_passes"], dtype=float)
            delta = acc - np.array(full["final_metric"], dtype=float) if full else np.zeros(1)
            ref = np.mean(full["sample_passes"]) if full else passes.mean()
            sus = [s for s in d["suspects"] if s and arm == "gekodata_guard"]
            prec = f"{np.mean([s['precision'] for s in sus]):.2f}" if sus else "—"
            rec = f"{np.mean([s['recall'] for s in sus]):.2f}" if sus else "—"
            shares = [c[-1]["hard_flipped_share"] for c in d["curves"] if c and "hard_flipped_share" in c[-1]]
            share = f"{np.mean(shares):.2f}" if shares else "—"
            lines.append(f"| {rate_result['rate']:.0%} | {arm} | {acc.mean():.4f} ± {std(acc):.4f} | "
                         f"{delta.mean():+.4f} ± {std(delta):.4f} | {passes.mean():.0f} | "
                         f"{passes.mean() / ref - 1:+.1%} | {prec} | {rec} | {share} |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = result["rates"]
    fig, axes = plt.subplots(2, len(rates), figsize=(6 * len(rates), 8), squeeze=False)
    for col, rate_result in enumerate(rates):
        ax_acc, ax_pr = axes[0][col], axes[1][col]
        for arm, data in rate_result["arms"].items():
            for i, curve in enumerate(data["curves"]):
                ax_acc.plot([p["passes"] for p in curve], [p["metric"] for p in curve], color=COLOURS[arm],
                            marker="o", ms=3, lw=1, alpha=0.8, label=arm if i == 0 else None)
                if arm == "gekodata_guard":
                    epochs = [p["epoch"] for p in curve]
                    ax_pr.plot(epochs, [p["suspect"]["precision"] for p in curve], color="tab:purple",
                               lw=1, label="SUSPECT precision" if i == 0 else None)
                    ax_pr.plot(epochs, [p["suspect"]["recall"] for p in curve], color="tab:purple", ls="--",
                               lw=1, label="SUSPECT recall" if i == 0 else None)
                if arm == "gekodata":
                    ax_pr.plot([p["epoch"] for p in curve], [p["hard_flipped_share"] for p in curve],
                               color="tab:red", lw=1, label="flips among HARD (no guard)" if i == 0 else None)
        ax_acc.set_title(f"{rate_result['rate']:.0%} label noise")
        ax_acc.set_xlabel("sample passes trained")
        ax_acc.set_ylabel("clean test accuracy")
        ax_acc.grid(alpha=0.3)
        ax_acc.legend(fontsize=8, loc="lower right")
        ax_pr.axhline(0.7, color="grey", ls=":", lw=1)
        ax_pr.set_xlabel("epoch (at its plan)")
        ax_pr.set_ylim(0, 1.02)
        ax_pr.grid(alpha=0.3)
        ax_pr.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{result['task'].upper()} with label noise: {result['title']} (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["t1", "t2"], default="t2")
    parser.add_argument("--quick", action="store_true", help="T2-size smoke run: 1 seed, 4 epochs")
    parser.add_argument("--seeds", type=int, nargs="*", help="default 0 1 2 (quick: 0)")
    parser.add_argument("--epochs", type=int, help="override the task's epochs")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: the task's)")
    parser.add_argument("--suspect-streak", type=int, help="the guard arm's suspect_streak (default: the policy's)")
    parser.add_argument("--tag", default="", help="suffix of the result files (e.g. for a --suspect-streak variant)")
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, default=ttq.ROOT / "benchmarks" / "results")
    parser.add_argument("--render", action="store_true", help="redraw table, PNG and README block from the JSON")
    args = parser.parse_args(argv)
    stem = args.out / (f"noise_{args.task}" + ("_quick" if args.quick else "") + args.tag)
    if args.suspect_streak:
        GUARD["suspect_streak"] = args.suspect_streak
    if args.render:
        result = json.loads(stem.with_suffix(".json").read_text())
    else:
        task = ttq.TASKS[args.task](args.quick)
        task.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
        task.epochs = args.epochs or (4 if args.quick else task.epochs)
        torch.set_num_threads(args.threads or task.threads or ttq.DEFAULT_THREADS)
        result = {"task": args.task, "title": task.title, "guard": dict(GUARD), "mode": "quick" if args.quick else "full",
                  "machine": ttq.machine(), "date": dt.date.today().isoformat(), "seeds": task.seeds,
                  "config": {"epochs": task.epochs, "batch_size": task.batch_size, "lr": task.lr,
                             "noise": "symmetric, uniform over the other classes", **task.notes},
                  "rates": []}
        print(f"noise on {args.task}: {task.title}; {len(task.train)} train; seeds {task.seeds}; {ttq.machine()}")
        args.out.mkdir(parents=True, exist_ok=True)
        for rate in args.rates:
            result["rates"].append(run_rate(task, rate, args.arms))
            stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = table(result)
    print("\n" + text)
    stem.with_suffix(".md").write_text(text)
    plot(result, stem.with_suffix(".png"))
    if result["mode"] == "full" and not args.tag and update_readme(f"noise_{args.task}", text):
        print(f"README.md: noise_{args.task} table updated")
    print(f"wrote {stem}.json, .md and .png")


if __name__ == "__main__":
    main()
