"""GRPO prompt-selection simulation: uniform, DAPO-style, GRESO-style and gekodata's PromptPolicy
(before and after issue 23) on a numpy world of 2,000 prompts whose pass rates evolve as the
"model" trains (:mod:`benchmarks.gekobench.rl_sim` documents the world, the learning model and the
arms). Seconds on a CPU.

Run::

    python -m benchmarks.rl_sim                      # seeds 0 1 2 (reported)
    python -m benchmarks.rl_sim --seeds 100 101 102 --out /tmp   # the tuning seeds

Writes ``benchmarks/results/rl_sim.json`` (and ``rl_sim.png`` beside it, not committed);
``python -m benchmarks.render`` writes docs/benchmarks/rl_sim.md from the JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .gekobench import report_rl_sim, results
from .gekobench.paths import RESULTS
from .gekobench.rl_sim import ARMS, run_arm, summarise

TUNING_SEEDS = (100, 101, 102)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--prompts", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--group", type=int, default=8)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    runs = [
        run_arm(arm, seed, num_prompts=args.prompts, epochs=args.epochs, g=args.group)
        for seed in args.seeds
        for arm in ARMS
    ]
    for run in runs:
        run.pop("seconds")  # machine noise; the JSON stays reproducible
    report = {
        "date": results.today(),
        "config": {
            "prompts": args.prompts,
            "epochs": args.epochs,
            "group": args.group,
            "seeds": list(args.seeds),
            "tuning_seeds": list(TUNING_SEEDS),
            "arms": list(ARMS),
        },
        "summary": summarise(runs, ARMS),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    results.write(args.out / "rl_sim.json", report)
    print(report_rl_sim.markdown(report))
    if not args.no_plot:
        report_rl_sim.plot(report, args.out / "rl_sim.png")
    return report


if __name__ == "__main__":
    main()
