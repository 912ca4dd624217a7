"""RL prompt selection: uniform prompts vs DAPO-style filtering vs GRESO-style skipping vs gekodata.

A GRPO loop (group-relative advantages, one on-policy update per rollout batch, token-mean loss,
no KL term: TRL's defaults) trains a small causal LM on reasoning-gym tasks with verifiable
answers, scored by each task's own ``score_answer``. Every arm of a seed starts from the same
warm-started policy (a short supervised fine-tune, so that some answers are right from the start
and groups have reward variance), trains the same prompt set for the same number of epochs with
the same hyperparameters, and differs only in which groups it rolls out and trains on:

* ``uniform``: every prompt once per epoch (``BucketPolicy.uniform()``), every group trained;
* ``dapo``: every prompt once per epoch, then zero-variance groups (all completions rewarded
  alike: zero advantage) are dropped *after* rollout and the update batches are refilled with
  informative groups only (DAPO's dynamic sampling, Yu et al. 2025): the same rollouts as uniform;
* ``greso``: GRESO-style pre-rollout skipping (:mod:`benchmarks.gekobench.greso`, the rule of the
  ``rl_sim`` simulation's GRESO arm): a prompt with a run of ``z`` zero-variance groups is
  skipped with probability ``1 - p ** z``, ``p`` per direction (all right / all wrong) stepped by
  0.01 after every rollout batch toward a 25% zero-variance share; every rollout batch is filled
  with kept prompts, every rolled-out group trained;
* ``gekodata``: the prompts ``PromptPolicy(group_size=G)`` plans with its defaults (adaptive keep
  rates toward ``zero_target=0.25``, thaw-rate re-checks ``recheck=4``, mastered prompts frozen
  and audited with ``audit_fraction=0.1``, learnability-weighted draws), every rolled-out group
  trained; its groups are reported with ``report_groups``.

Tasks (``--tasks``; :data:`benchmarks.gekobench.rl_grpo.TASKS`): ``chain_sum`` (``"23 - 60 ="``,
two 1-2 digit terms: one kind of question, most of it within the model's reach after the warm
start) and ``basic_arithmetic`` (``"6 + 10 * 0 ="``, two or three terms 0-10 with +, - and * and
precedence: a spread from easy to out of reach). Each task runs at its own warm-start targets
(``--warm-targets``): one regime per (task, target).

Figures per arm, per epoch: held-out exact match (greedy decoding, scored by ``score_answer``)
against the rollouts (completions) generated so far, the share of zero-advantage groups among the
groups generated in the epoch, optimizer steps, and wall-clock (rollouts, rewards, updates and
selection; held-out evaluation excluded) with its selection part. Summary per regime: final
held-out exact match (mean +- std over seeds, and paired with uniform), rollouts against
uniform's, rollouts to reach uniform's final held-out exact match of the same seed (the first
epoch end at or above it) against uniform's own, zero-advantage groups generated against DAPO's,
wall-clock. Goal (issue 23): <= 0.5x uniform's rollouts at equal held-out accuracy (within one
paired std) and <= 0.5x the zero-advantage groups DAPO generates, on both tasks.

The model is a 2-layer Llama (hidden 64, a character tokenizer, ~0.1M parameters) so that the
runs finish on 2 shared CPU cores; prompts are the task's expressions, left-filled with spaces to
one width (no padding mask needed). The loop is written out here (not TRL) to keep the arms
identical except for selection and to sample from private generators;
``examples/grpo_reasoning.py`` runs the same selection inside TRL's ``GRPOTrainer``.

Run::

    python -m benchmarks.rl --jobs 2         # 4 arms x 3 seeds x 3 regimes (see --help for the sizes)
    python -m benchmarks.rl --quick          # smoke: 1 seed, tiny sizes, seconds

``--jobs N`` runs the (regime, seed) units in N processes of ``--threads`` torch threads each (the
figures do not depend on it; wall-clock does, through contention). Writes
``benchmarks/results/rl[_quick].json`` and beside it .md/.png (not committed);
``python -m benchmarks.render`` writes the docs page from the JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from .gekobench.machine import machine_info
from .gekobench.paths import RESULTS
from .gekobench.report_rl import ARMS, markdown, plot
from .gekobench.results import write_results
from .gekobench.rl_grpo import (
    EOS,
    TASK_CONFIG,
    TASKS,
    build_tasks,
    completion_mask,
    decode,
    encode,
    regime,
    run_seed,
    sample,
    tiny_policy,
    token_logp,
)

__all__ = [
    "ARMS",
    "EOS",
    "TASKS",
    "TASK_CONFIG",
    "build_tasks",
    "completion_mask",
    "decode",
    "encode",
    "main",
    "parse_args",
    "regime",
    "run_seed",
    "sample",
    "tiny_policy",
    "token_logp",
]

WARM_TARGETS = {"chain_sum": [0.5, 0.7], "basic_arithmetic": [0.3]}
"""Full mode's warm-start targets (dev exact match) per task: one regime each."""


def _warm_targets(
    tokens: list[str] | None, tasks: list[str], quick: bool
) -> dict[str, list[float]]:
    """``--warm-targets`` as {task: [targets]}: ``0.5`` sets every task's, ``chain_sum:0.7`` one
    task's (repeatable); tasks not named keep the mode's defaults."""
    out = {t: ([0.5] if quick else list(WARM_TARGETS[t])) for t in tasks}
    every: list[float] = []
    named: dict[str, list[float]] = {}
    for token in tokens or []:
        if ":" in token:
            task, value = token.split(":", 1)
            if task not in tasks:
                raise SystemExit(f"--warm-targets names {task!r}, not among --tasks {tasks}")
            named.setdefault(task, []).append(float(value))
        else:
            every.append(float(token))
    for t in tasks:
        if every:
            out[t] = list(every)
        if t in named:
            out[t] = named[t]
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke sizes: 1 seed, seconds")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--seeds", type=int, nargs="+", help="default 0 1 2 (quick: 0)")
    p.add_argument("--epochs", type=int, help="default 10 (quick: 2)")
    p.add_argument("--train-size", type=int, help="RL prompts (default 768; quick 24)")
    p.add_argument("--eval-size", type=int, help="held-out questions (default 512; quick 32)")
    p.add_argument("--sft-size", type=int, help="warm-start questions (default 2000; quick 64)")
    p.add_argument(
        "--dev-size",
        type=int,
        help="questions that decide when the warm start stops (default 256; quick 16)",
    )
    p.add_argument("--sft-steps", type=int, help="most warm-start steps (default 8000; quick 5)")
    p.add_argument(
        "--warm-targets",
        nargs="+",
        help="one regime per value and task: the warm start stops once greedy exact match on the "
        "dev questions reaches it (or after --sft-steps); VALUE for every task or TASK:VALUE for "
        f"one; default {WARM_TARGETS} (quick: 0.5)",
    )
    p.add_argument("--group", type=int, default=8, help="completions per prompt (G)")
    p.add_argument(
        "--rollout-batch", type=int, default=32, help="prompts per rollout batch and update"
    )
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    p.add_argument(
        "--audit-fraction", type=float, default=0.1, help="gekodata arm's forgetting audit"
    )
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per job")
    p.add_argument("--jobs", type=int, default=1, help="(regime, seed) units run in parallel")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--no-readme",
        action="store_true",
        help="no effect (kept for old commands): no run writes README.md",
    )
    args = p.parse_args(argv)
    quick = {
        "seeds": [0],
        "epochs": 2,
        "train_size": 24,
        "eval_size": 32,
        "sft_size": 64,
        "dev_size": 16,
        "sft_steps": 5,
    }
    full = {
        "seeds": [0, 1, 2],
        "epochs": 10,
        "train_size": 768,
        "eval_size": 512,
        "sft_size": 2000,
        "dev_size": 256,
        "sft_steps": 8000,
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.warm_targets = _warm_targets(args.warm_targets, args.tasks, args.quick)
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    units = [
        (task, target, seed)
        for task in args.tasks
        for target in args.warm_targets[task]
        for seed in args.seeds
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            done = list(pool.map(run_seed, *zip(*units), [args] * len(units)))
    else:
        done = [run_seed(task, target, seed, args) for task, target, seed in units]
    regimes = [
        regime(
            task,
            target,
            {u[2]: d for u, d in zip(units, done) if u[:2] == (task, target)},
            args.arms,
        )
        for task in args.tasks
        for target in args.warm_targets[task]
    ]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["task_settings"] = {t: TASKS[t] for t in args.tasks}
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "config": config,
        "regimes": regimes,
        "total_seconds": time.perf_counter() - started,
    }
    name = "rl_quick" if args.quick else "rl"
    write_results(args.out, name, report, lambda path: plot(report, path))
    table = markdown(report)
    (args.out / f"{name}.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
