"""How gekodata's state store and epoch planner scale with dataset size (1M, 10M, 100M, 200M samples).

Measured per size N, each part in a fresh child process (so its peak RSS is its own):

* ``gekodata``: bytes per sample of ``GEKOStateStore`` (sum of column nbytes / N); the epoch-0
  plan (``WeightedBucketSampler.set_epoch(0)``: every sample once); one store update over all N
  indices (``arange``) with random losses, confidences and correctness (``store.update``), which
  puts samples in mixed buckets; the next plan (``set_epoch(e)``, timed alone: classify, weigh,
  draw counts, stream) and a breakdown of it (``classify_epoch``, ``plan_epoch``, materialising
  ``global_plan``); then the fold a real sync point does: ``store.update`` with one epoch's
  indices in plan order (shuffled, repeated indices); index throughput of iterating the epoch-0
  plan (``for _ in sampler: pass``), the last (mixed-bucket) plan, and one rank's shard of it
  (rank 0 of 8), each as the sampler hands it out (computed on demand); memory.
* ``RandomSampler``: torch's uniform sampler, one epoch iterated the same way.
* ``WeightedRandomSampler(weights, N)``: torch's weighted sampler, iterated the same way; it uses
  ``torch.multinomial`` and fails above 2^24 categories, so at 100M the error is recorded.

Memory: peak RSS (``resource.getrusage``) after the epoch-0 plan and iteration, and at the end
(which also holds this benchmark's own N-sized update inputs); and the peak of the numpy buffers
allocated (``tracemalloc``) by the epoch-0 plan, by a plan after an update (``set_epoch``:
classification included) and by the fold, per sample: the transient memory each needs, with
what it keeps (the plan's index pool, loss weights).

Times are medians of ``--repeats`` (default 3) runs (the first epoch-0 plan also pays first-touch
page faults of the fresh store); an iteration whose first epoch takes over 10 s is run once.
Goals (PASS/MISS): <= 12 B/sample, plan <= 2 s at 100M, fold of an epoch's reports <= 5 s at
100M, peak temporaries of plan and fold <= 24 B/sample at 100M, >= 20M indices/s. The growth
law ``t ~ N^b`` is fitted through the two largest sizes and projected to 1B samples.

Run (from the repo root)::

    python -m benchmarks.scale            # 1M, 10M, 100M (~6 GB peak at 100M)
    python -m benchmarks.scale --big      # and 200M (~12 GB peak)
    python -m benchmarks.scale --quick    # 1M, 10M
    python -m benchmarks.scale --sizes 1000000 30000000

Writes ``<out>/scale.json`` and ``<out>/scale.png`` (``--out``, default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

from .gekobench.machine import machine_info
from .gekobench.paths import RESULTS
from .gekobench.results import write_results
from .gekobench.scale_cost import (
    GOAL_BYTES,
    GOAL_FOLD_S,
    GOAL_PLAN_S,
    GOAL_RATE,
    GOAL_TEMP_BYTES,
    PARTS,
    bench_gekodata,
    bench_random,
    bench_weighted,
    fmt_n,
    plot,
    print_table,
    run_child,
    summarize,
)

__all__ = [
    "PARTS",
    "bench_gekodata",
    "bench_random",
    "bench_weighted",
    "fmt_n",
    "main",
    "plot",
    "print_table",
    "run_child",
    "summarize",
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="dataset sizes (default 1M 10M 100M)"
    )
    parser.add_argument("--quick", action="store_true", help="1M and 10M only")
    parser.add_argument("--big", action="store_true", help="also 200M (about 12 GB peak)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # internal: one part, one size, JSON on stdout
        fn = {
            "gekodata": bench_gekodata,
            "RandomSampler": bench_random,
            "WeightedRandomSampler": bench_weighted,
        }
        print(json.dumps(fn[args.child](args.sizes[0], args.repeats)))
        return {}
    default = [1_000_000, 10_000_000] if args.quick else [1_000_000, 10_000_000, 100_000_000]
    sizes = sorted(args.sizes or ([*default, 200000000] if args.big else default))
    info = machine_info()
    print(
        f"machine: {info['platform']}, {info['cpu_count']} CPUs, torch {info['torch']}, "
        f"load avg {info['loadavg_at_start'][0]:.2f}"
    )
    if info["loadavg_at_start"][0] > 0.5:
        print("note: the machine is busy; timings are inflated")
    results: dict[str, dict[str, Any]] = {}
    for n in sizes:
        results[str(n)] = {}
        for part in PARTS:
            start = time.perf_counter()
            results[str(n)][part] = run_child(part, n, args.repeats)
            print(
                f"  {fmt_n(n):>5} {part:<22} {time.perf_counter() - start:6.1f} s wall", flush=True
            )
    info["loadavg_at_end"] = list(os.getloadavg())
    summary = summarize(results, sizes)
    print()
    print_table(summary)
    report = {
        "benchmark": "scale",
        "machine": info,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else ("big" if args.big else "full"),
        "sizes": sizes,
        "repeats": args.repeats,
        "goals": {
            "bytes_per_sample_max": GOAL_BYTES,
            "plan_seconds_max_at_100M": GOAL_PLAN_S,
            "fold_seconds_max_at_100M": GOAL_FOLD_S,
            "temporaries_bytes_per_sample_max": GOAL_TEMP_BYTES,
            "indices_per_second_min": GOAL_RATE,
        },
        "summary": summary,
        "raw": results,
    }
    write_results(args.out, "scale", report, lambda path: plot(summary, path))
    return report


if __name__ == "__main__":
    main()
