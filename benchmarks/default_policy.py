"""The default policy (``AutoPolicy()``) against a random subset of its own epoch sizes and a
same-budget run, on every task and training-set variant; and its data diagnosis against the truth.

    python -m benchmarks.default_policy --task t4 t3          # 5 variants x 5 seeds x 6 arms each
    python -m benchmarks.default_policy --task t2             # the CNN task (slower)
    python -m benchmarks.default_policy --summary             # no training: the table

The settings were chosen on T4 with tuning seeds 100-104 (``gekodata/policy/default.py``); the
reported runs use seeds 0-4 on T4, T3 and T2. Writes ``benchmarks/results/default_<task>_<variant>.json``
after every seed and ``default_policy.json`` (the checks); ``python -m benchmarks.render`` writes the
docs page. The protocol and goal: ``benchmarks/gekobench/default_policy.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .gekobench import results, study
from .gekobench.arms import registry
from .gekobench.default_policy import ARMS, stem, summary, table
from .gekobench.paths import RESULTS
from .gekobench.variants import VARIANTS

TASKS = ("t4", "t3", "t2")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", nargs="*", choices=TASKS, default=["t4", "t3"])
    parser.add_argument("--variant", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--summary", action="store_true", help="no training: the table")
    args = parser.parse_args(argv)
    if not args.summary:
        for task in args.task:
            for variant in args.variant:
                study.run_task(
                    task,
                    False,
                    args.seeds,
                    args.out,
                    list(ARMS),
                    variant=variant,
                    stem=stem(args.out, task, variant),
                    specs=registry({}),
                )
    rows = summary(args.out, list(TASKS), list(VARIANTS))
    results.write(args.out / "default_policy.json", rows)
    print(table(rows))


if __name__ == "__main__":
    main()
