"""RL prompt selection: uniform prompts vs gekodata's PromptPolicy vs DAPO-style post-hoc filtering.

A GRPO loop (group-relative advantages, one on-policy update per rollout batch, token-mean loss,
no KL term: TRL's defaults) trains a small causal LM on a reasoning-gym task with verifiable
answers, scored by the task's own ``score_answer``. Every arm of a seed starts from the same
warm-started policy (a short supervised fine-tune, so that some answers are right from the start
and groups have reward variance), trains the same prompt set for the same number of epochs with
the same hyperparameters, and differs only in which groups it rolls out and trains on:

* ``uniform``: every prompt once per epoch (``BucketPolicy.uniform()``), every group trained;
* ``dapo``: every prompt once per epoch, then zero-variance groups (all completions rewarded
  alike: zero advantage) are dropped *after* rollout and the update batches are refilled with
  informative groups only (DAPO's dynamic sampling, Yu et al. 2025): the same rollouts as uniform;
* ``gekodata``: the prompts ``PromptPolicy(group_size=G)`` plans (GRESO-style skipping of prompts
  zero-variance in recent epochs, mastered prompts frozen and audited with ``audit_fraction=0.1``,
  hopeless ones explored at 5%, learnability-weighted draws), every rolled-out group trained; its
  groups are reported with ``report_groups``.

Figures per arm, per epoch: held-out exact match (greedy decoding, scored by ``score_answer``)
against the rollouts (completions) generated so far, the share of zero-advantage groups among the
groups generated in the epoch, optimizer steps, and wall-clock (rollouts, rewards, updates and
planning; held-out evaluation excluded). Summary: final held-out exact match (mean +- std over
seeds, and paired with uniform), total rollouts and the share saved against uniform, mean share of
zero-advantage groups, wall-clock. Goal (issue 15): at equal held-out accuracy (within seed noise)
>= 40% fewer rollouts than uniform, and fewer zero-advantage groups than DAPO generates.

The model is a 2-layer Llama (hidden 64, a character tokenizer, ~0.1M parameters) so that 3 arms
x 3 seeds finish on 2 shared CPU cores; prompts are the task's expressions (``"23 - 60 ="``), left-
filled with spaces to one width (no padding mask needed). The loop is written out here (not TRL)
to keep the three arms identical except for selection and to sample from private generators;
``examples/grpo_reasoning.py`` runs the same selection inside TRL's ``GRPOTrainer``.

Run::

    python -m benchmarks.rl                  # 3 arms x 3 seeds (see --help for the sizes)
    python -m benchmarks.rl --quick          # smoke: 1 seed, tiny sizes, seconds

Writes ``benchmarks/results/rl[_quick].json`` and beside it .md/.png (not committed);
``python -m benchmarks.render`` writes the docs page from the JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
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
    build_tasks,
    completion_mask,
    decode,
    encode,
    run_regime,
    sample,
    tiny_policy,
    token_logp,
)

__all__ = [
    "ARMS",
    "EOS",
    "TASK_CONFIG",
    "build_tasks",
    "completion_mask",
    "decode",
    "encode",
    "main",
    "parse_args",
    "run_regime",
    "sample",
    "tiny_policy",
    "token_logp",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke sizes: 1 seed, seconds")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
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
        type=float,
        nargs="+",
        help="one regime per value: the warm start stops once greedy exact match on the dev questions "
        "reaches it (or after --sft-steps); default 0.5 0.7 (quick: 0.5)",
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
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--no-readme",
        action="store_true",
        help="no effect (kept for old commands): no run writes README.md",
    )
    args = p.parse_args(argv)
    quick = {
        "seeds": [0],
        "warm_targets": [0.5],
        "epochs": 2,
        "train_size": 24,
        "eval_size": 32,
        "sft_size": 64,
        "dev_size": 16,
        "sft_steps": 5,
    }
    full = {
        "seeds": [0, 1, 2],
        "warm_targets": [0.5, 0.7],
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
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    started = time.perf_counter()
    tasks = build_tasks(
        {
            "sft": args.sft_size,
            "dev": args.dev_size,
            "train": args.train_size,
            "eval": args.eval_size,
        },
        args.data_seed,
    )
    regimes = [run_regime(target, tasks, args) for target in args.warm_targets]
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["task"] = {"name": "chain_sum", **TASK_CONFIG}
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
