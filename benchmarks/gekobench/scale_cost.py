"""The store, the plan and the index stream at 1M-200M samples, next to torch's samplers (each part at
each size in a fresh interpreter).

The CLI is ``python -m benchmarks.scale`` (its docstring has the protocol and the commands)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .paths import ROOT

GOAL_BYTES, GOAL_PLAN_S, GOAL_FOLD_S, GOAL_TEMP_BYTES, GOAL_RATE = 12.0, 2.0, 5.0, 24.0, 20e6
GOAL_AT = 100_000_000  # the size the time and memory goals are stated for
PROJECT_TO = 1_000_000_000
ONCE_ABOVE_S = 10.0
PARTS = ("gekodata", "RandomSampler", "WeightedRandomSampler")


def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed(fn: Callable[[], Any], repeats: int, once_above: float = float("inf")) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` (just one if the first takes > ``once_above``)."""
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if times[0] > once_above:
            break
    return times


def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes of Python and numpy buffers allocated while ``fn()`` runs (``tracemalloc``)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def consume(it: Iterable[int]) -> int:
    """Iterate like a Python consumer (BatchSampler, a training loop) does; returns the count."""
    n = 0
    for _ in it:
        n += 1
    return n


def iter_rate(
    make_iter: Callable[[], Iterable[int]], expected: int, repeats: int
) -> dict[str, Any]:
    counts: list[int] = []
    times = timed(lambda: counts.append(consume(make_iter())), repeats, once_above=ONCE_ABOVE_S)
    assert all(c == expected for c in counts), (counts, expected)
    return {"iter_s": times, "indices_per_s": expected / statistics.median(times)}


def bench_fold(
    store: Any, plan: np.ndarray, rng: np.random.Generator, repeats: int
) -> dict[str, Any]:
    """A real sync point folds an epoch's reports in plan order: shuffled, repeated indices.
    Times ``store.update`` and traces the peak of what it allocates (its inputs excluded)."""
    idx = np.array(plan, dtype=np.int64)
    loss = rng.exponential(0.5, len(idx)).astype(np.float32)
    conf, correct = np.exp(-loss), (rng.random(len(idx), dtype=np.float32) < 0.7).astype(np.float32)
    fold = lambda: store.update(idx, loss, conf, correct)  # noqa: E731
    return {
        "fold_plan_order_s": timed(fold, repeats, ONCE_ABOVE_S),
        "fold_peak_alloc_bytes": traced_peak(fold),
    }


def bench_gekodata(n: int, repeats: int) -> dict[str, Any]:
    from gekodata import GEKOStateStore, WeightedBucketSampler
    from gekodata.planning.epoch_plan import classify_epoch, plan_epoch

    store = GEKOStateStore(n)
    out: dict[str, Any] = {"bytes_per_sample": sum(c.nbytes for c in store.columns.values()) / n}
    num_epochs = 5

    def fresh_sampler(**kwargs: Any) -> WeightedBucketSampler:
        return WeightedBucketSampler(range(n), num_epochs=num_epochs, seed=0, store=store, **kwargs)

    def fresh_plan0() -> None:  # a new sampler over the untouched store plans epoch 0 from scratch
        fresh_sampler().set_epoch(0)

    out["plan0_s"] = timed(fresh_plan0, repeats)  # the first run also pays first-touch page faults
    out["plan0_peak_alloc_bytes"] = traced_peak(fresh_plan0)
    sampler = fresh_sampler()
    sampler.set_epoch(0)
    out.update(iter_rate(lambda: iter(sampler), n, repeats))
    out["peak_rss_after_plan0_and_iter_bytes"] = peak_rss()

    rng = np.random.default_rng(1234)
    idx = np.arange(n, dtype=np.int64)
    out["update_s"], out["plan_s"], out["plan_len"], out["phase"] = [], [], [], []
    for r in range(repeats):  # epochs 1..repeats: ASCENT, PEAK, DESCENT of the mountain
        loss = rng.exponential(0.5, n).astype(np.float32)
        conf = np.exp(-loss) * rng.uniform(0.9, 1.0, n).astype(np.float32)
        correct = (rng.random(n, dtype=np.float32) < conf).astype(np.float32)
        start = time.perf_counter()
        store.update(idx, loss, conf, correct)
        out["update_s"].append(time.perf_counter() - start)
        del loss, conf, correct
        start = time.perf_counter()
        sampler.set_epoch(1 + r)
        out["plan_s"].append(time.perf_counter() - start)
        out["plan_len"].append(len(sampler))
        out["phase"].append(sampler.phase.name)
    out["buckets"] = sampler.epoch_record.buckets
    del idx
    epoch = sampler.epoch
    # the mixed plan's stream as computed on demand (before anything materialises it), one rank's shard
    out["mixed_indices_per_s"] = iter_rate(lambda: iter(sampler), len(sampler), repeats)[
        "indices_per_s"
    ]
    shard = fresh_sampler(rank=0, world_size=8, standalone=True)
    shard.set_epoch(epoch)
    out["shard_indices_per_s"] = iter_rate(lambda: iter(shard), len(shard), repeats)[
        "indices_per_s"
    ]
    # the same epoch planned again by a second sampler (classification included), traced
    out["plan_peak_alloc_bytes"] = traced_peak(lambda: fresh_sampler().set_epoch(epoch))
    # where a plan's time goes: classification, the plan itself, materialising the whole stream
    steps: dict[str, float] = {}
    start = time.perf_counter()
    classify_epoch(store, sampler.policy, None)
    steps["classify_epoch"] = time.perf_counter() - start
    start = time.perf_counter()
    plan_epoch(store, sampler.policy, epoch=epoch, num_epochs=num_epochs, seed=0)
    steps["plan_epoch"] = time.perf_counter() - start
    start = time.perf_counter()
    global_plan = sampler.global_plan
    steps["global_plan (materialised)"] = time.perf_counter() - start
    out["plan_breakdown_s"] = steps
    out["fold_plan_rows"] = len(global_plan)
    out.update(bench_fold(store, global_plan, rng, repeats))
    out["peak_rss_bytes"] = peak_rss()
    return out


def bench_random(n: int, repeats: int) -> dict[str, Any]:
    sampler = torch.utils.data.RandomSampler(range(n), generator=torch.Generator().manual_seed(0))
    out = iter_rate(lambda: iter(sampler), n, repeats)
    out["peak_rss_bytes"] = peak_rss()
    return out


def bench_weighted(n: int, repeats: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(n, generator=gen, dtype=torch.float64) + 0.1
    sampler = torch.utils.data.WeightedRandomSampler(weights, n, replacement=True, generator=gen)
    try:
        out = iter_rate(lambda: iter(sampler), n, repeats)
    except RuntimeError as exc:
        out = {"error": str(exc).strip().splitlines()[0]}
    out["peak_rss_bytes"] = peak_rss()
    return out


def run_child(part: str, n: int, repeats: int) -> dict[str, Any]:
    """One part at one size in a fresh interpreter (clean peak RSS); its JSON result."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.scale",
        "--child",
        part,
        "--sizes",
        str(n),
        "--repeats",
        str(repeats),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": f"child failed: {tail}", "returncode": proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_n(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"


def med(xs: list[float] | None) -> float:
    return statistics.median(xs) if xs else float("nan")


def growth(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """``key ~ N^b`` through the two largest sizes: the exponent ``b`` and the value projected
    to ``PROJECT_TO`` samples (NaN with fewer than two sizes or non-positive values)."""
    (n1, y1), (n2, y2) = (
        ((x["N"], x[key]) for x in rows[-2:]) if len(rows) > 1 else ((1, 0.0), (1, 0.0))
    )
    if not (y1 > 0 and y2 > 0 and n2 > n1):
        return {"exponent": float("nan"), "projected": float("nan")}
    b = float(np.log(y2 / y1) / np.log(n2 / n1))
    return {"exponent": b, "projected": y2 * (PROJECT_TO / n2) ** b}


GROWTH_KEYS = (
    "plan0_s",
    "plan_s",
    "fold_plan_order_s",
    "plan_alloc_b_per_sample",
    "fold_alloc_b_per_sample",
)


def summarize(results: dict[str, dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    rows, goals = [], {}
    for n in sizes:
        g, r, w = (results[str(n)][p] for p in PARTS)
        rows.append(
            {
                "N": n,
                "bytes_per_sample": g.get("bytes_per_sample"),
                "plan0_s": med(g.get("plan0_s")),
                "plan_s": med(g.get("plan_s")),
                "update_s": med(g.get("update_s")),
                "fold_plan_order_s": med(g.get("fold_plan_order_s")),
                "fold_rows": g.get("fold_plan_rows"),
                "geko_idx_per_s": g.get("indices_per_s"),
                "geko_mixed_idx_per_s": g.get("mixed_indices_per_s"),
                "geko_shard_idx_per_s": g.get("shard_indices_per_s"),
                "random_idx_per_s": r.get("indices_per_s"),
                "weighted_idx_per_s": w.get("indices_per_s"),
                "weighted_error": w.get("error"),
                "plan0_alloc_b_per_sample": g.get("plan0_peak_alloc_bytes", 0) / n,
                "plan_alloc_b_per_sample": g.get("plan_peak_alloc_bytes", 0) / n,
                "fold_alloc_b_per_sample": g.get("fold_peak_alloc_bytes", 0) / n,
                "geko_peak_rss_gb": g.get("peak_rss_bytes", 0) / 2**30,
                "geko_rss_after_plan0_iter_gb": g.get("peak_rss_after_plan0_and_iter_bytes", 0)
                / 2**30,
                "random_peak_rss_gb": r.get("peak_rss_bytes", 0) / 2**30,
                "weighted_peak_rss_gb": w.get("peak_rss_bytes", 0) / 2**30,
            }
        )
    at_goal = [x for x in rows if x["N"] == GOAL_AT] or rows[-1:]
    big = at_goal[0]
    at = f"at {fmt_n(big['N'])}"
    goals[f"<= {GOAL_BYTES:g} B/sample (all N)"] = all(
        x["bytes_per_sample"] <= GOAL_BYTES for x in rows
    )
    goals[f"plan <= {GOAL_PLAN_S:g} s {at} (epoch 0 and later)"] = (
        max(big["plan0_s"], big["plan_s"]) <= GOAL_PLAN_S
    )
    goals[f"fold of an epoch's reports <= {GOAL_FOLD_S:g} s {at}"] = (
        big["fold_plan_order_s"] <= GOAL_FOLD_S
    )
    goals[f"peak temporaries <= {GOAL_TEMP_BYTES:g} B/sample {at} (plans and fold)"] = (
        max(
            big["plan0_alloc_b_per_sample"],
            big["plan_alloc_b_per_sample"],
            big["fold_alloc_b_per_sample"],
        )
        <= GOAL_TEMP_BYTES
    )
    goals[f">= {GOAL_RATE / 1e6:g}M indices/s (all N, all streams)"] = all(
        min(x[k] or 0 for k in ("geko_idx_per_s", "geko_mixed_idx_per_s", "geko_shard_idx_per_s"))
        >= GOAL_RATE
        for x in rows
    )
    return {
        "rows": rows,
        "goals": goals,
        "growth": {key: growth(rows, key) for key in GROWTH_KEYS},
        "projected_to": PROJECT_TO,
    }


def rate(x: float | None) -> str:
    return f"{x / 1e6:.1f}M" if x else "n/a"


def print_table(summary: dict[str, Any]) -> None:
    head = (
        f"{'N':>6} {'B/smp':>6} {'plan0 s':>8} {'plan s':>8} {'update s':>9} {'fold s':>8} "
        f"{'temp B/smp plan0/plan/fold':>27} {'geko idx/s 0/mixed/shard':>25} {'Random idx/s':>13} "
        f"{'Weighted idx/s':>15} {'RSS GB geko/rand/wtd':>21}"
    )
    print(head + "\n" + "-" * len(head))
    for x in summary["rows"]:
        wtd = rate(x["weighted_idx_per_s"]) if x["weighted_idx_per_s"] else "FAILS"
        geko = "/".join(
            rate(x[k]) for k in ("geko_idx_per_s", "geko_mixed_idx_per_s", "geko_shard_idx_per_s")
        )
        temp = "/".join(
            f"{x[k]:.1f}"
            for k in (
                "plan0_alloc_b_per_sample",
                "plan_alloc_b_per_sample",
                "fold_alloc_b_per_sample",
            )
        )
        rss = f"{x['geko_peak_rss_gb']:.2f}/{x['random_peak_rss_gb']:.2f}/{x['weighted_peak_rss_gb']:.2f}"
        print(
            f"{fmt_n(x['N']):>6} {x['bytes_per_sample'] or float('nan'):6.1f} {x['plan0_s']:8.3f} "
            f"{x['plan_s']:8.3f} {x['update_s']:9.3f} {x['fold_plan_order_s']:8.3f} {temp:>27} {geko:>25} "
            f"{rate(x['random_idx_per_s']):>13} {wtd:>15} {rss:>21}"
        )
    for x in summary["rows"]:
        if x["weighted_error"]:
            print(f"  WeightedRandomSampler at {fmt_n(x['N'])}: {x['weighted_error']}")
    for key, fit in summary["growth"].items():
        print(
            f"  growth {key}: ~N^{fit['exponent']:.2f}, projected at {fmt_n(summary['projected_to'])}: "
            f"{fit['projected']:.3g}"
        )
    for goal, ok in summary["goals"].items():
        print(f"{'PASS' if ok else 'MISS'}  {goal}")


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    ns = [x["N"] for x in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(ns, [x["plan0_s"] for x in rows], "o-", label="plan, epoch 0")
    ax1.plot(ns, [x["plan_s"] for x in rows], "s-", label="plan, mixed buckets")
    ax1.plot(ns, [x["update_s"] for x in rows], "^--", label="store.update (arange N)")
    ax1.plot(ns, [x["fold_plan_order_s"] for x in rows], "v--", label="fold (epoch in plan order)")
    ax1.axhline(GOAL_PLAN_S, color="gray", ls=":", label=f"plan goal {GOAL_PLAN_S:g} s at 100M")
    ax1.axhline(GOAL_FOLD_S, color="gray", ls="-.", label=f"fold goal {GOAL_FOLD_S:g} s at 100M")
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="samples N",
        ylabel="seconds",
        title="Epoch plan and fold time",
    )
    ax1.legend(fontsize=8)
    for key, label, marker in (
        ("geko_idx_per_s", "WeightedBucketSampler, epoch 0", "o-"),
        ("geko_mixed_idx_per_s", "WeightedBucketSampler, mixed buckets", "d-"),
        ("geko_shard_idx_per_s", "WeightedBucketSampler, rank 0 of 8", "x-"),
        ("random_idx_per_s", "torch RandomSampler", "s-"),
        ("weighted_idx_per_s", "torch WeightedRandomSampler", "^-"),
    ):
        pts = [(x["N"], x[key]) for x in rows if x[key]]
        if pts:
            ax2.plot(*zip(*pts), marker, label=label)
    failed = [x["N"] for x in rows if x["weighted_error"]]
    if failed:  # the WeightedRandomSampler line (the fifth) ends where torch.multinomial refuses
        ax2.annotate(
            "WeightedRandomSampler\nfails above 2^24",
            (failed[0], GOAL_RATE / 2),
            fontsize=7,
            ha="center",
            va="top",
            color="C4",
        )
    ax2.axhline(GOAL_RATE, color="gray", ls=":", label=f"goal {GOAL_RATE / 1e6:g}M/s")
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="samples N",
        ylabel="indices / s",
        title="Iteration throughput",
    )
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
