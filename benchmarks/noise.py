"""Label noise: does the noise guard keep gekodata from amplifying wrong labels?

Symmetric label noise is injected into the *training* labels of the time-to-quality tasks
(``benchmarks/gekobench/tasks.py``: T1 MiniLM on BBC News, T2 small CNN on MNIST-5000): a fixed random
``rate`` share of the training samples (chosen per seed) gets a label drawn uniformly from the
other classes. Test labels stay clean. Every arm of a seed starts from the same initialisation
and trains the same noisy data with the same optimizer and learning-rate rule as in
the time-to-quality runner (``gekobench/runner.py``):

* ``full``: uniform full-data epochs;
* ``gekodata``: ``BucketPolicy()`` (GEKO's thresholds and mountain curriculum) without the guard;
* ``gekodata_guard``: ``BucketPolicy(noise_guard=True)``: probably-mislabeled HARD samples become
  SUSPECT and are drawn at weight 0.1 instead of HARD's boost;
* ``infobatch``: ``InfoBatchPolicy()``.

The loop reports ``pred=logits.argmax(-1)`` with every batch (as the time-to-quality runner does).
Figures per arm: final clean test accuracy (after the last step), sample passes, wall-clock; for
the gekodata arms the share of injected flips among HARD samples at each epoch's plan, and for
the guard the precision and recall of SUSPECT against the injected flips, measured on the final
classification of the store (every report folded in, as ``sampler.suspects()`` would list after
one more ``set_epoch``) and per epoch. Goal (issue 7): with the guard gekodata is never below
``full``, and precision and recall >= 0.7.

Run (2 CPU cores)::

    python -m benchmarks.noise --task t2            # ~15 min: 2 rates x 4 arms x 3 seeds
    python -m benchmarks.noise --task t1            # ~60 min (--threads 1: slower, less sensitive to other load)
    python -m benchmarks.noise --quick              # smoke: T2, 2,000 samples, 1 seed, 4 epochs

Writes ``benchmarks/results/noise_<task>[_quick].json`` and beside it .md/.png (not committed); the
docs page is rendered from the JSON by ``python -m benchmarks.render``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

import numpy as np

from gekodata import Bucket, BucketPolicy, WeightedBucketSampler

from .gekobench import results
from .gekobench.arms import ArmSpec, registry
from .gekobench.data import TensorDictDataset, inject_noise
from .gekobench.machine import machine
from .gekobench.paths import RESULTS
from .gekobench.report_noise import ARMS, plot, table
from .gekobench.runner import run_arm, set_threads
from .gekobench.tasks import TASKS, Task

__all__ = ["ARMS", "inject_noise", "main"]
RATES = (0.1, 0.2)
RUN_KEYS = ("final_metric", "wall_clock_s", "sample_passes")


def noisy_task(task: Task, rate: float, seed: int) -> tuple[Task, np.ndarray]:
    """``task`` with ``rate`` symmetric noise in its training labels; (task, bool [n] flipped)."""
    columns = dict(task.train.columns)
    num_classes = int(columns["labels"].max()) + 1
    columns["labels"], flipped = inject_noise(columns["labels"], num_classes, rate, seed)
    return dataclasses.replace(task, train=TensorDictDataset(**columns)), flipped


def guard_arm(guard: dict) -> ArmSpec:
    """``gekodata_guard``: the default policy with its noise guard (``guard``: overrides)."""
    return ArmSpec("gekodata_guard", "builtin", lambda: BucketPolicy(noise_guard=True, **guard))


def precision_recall(flagged: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    hits = int(np.count_nonzero(flagged & flipped))
    return {
        "flagged": int(flagged.sum()),
        "precision": hits / max(int(flagged.sum()), 1),
        "recall": hits / max(int(flipped.sum()), 1),
    }


def epoch_probe(flipped: np.ndarray):
    """on_epoch callback: share of flips among HARD (as planned) and SUSPECT precision/recall."""

    def probe(epoch: int, sampler: WeightedBucketSampler | None) -> dict:
        if sampler is None or not isinstance(sampler.policy, BucketPolicy):
            return {}
        codes = sampler.store.bucket
        hard = codes == Bucket.HARD
        out = {
            "hard": int(hard.sum()),
            "hard_flipped_share": float(flipped[hard].mean()) if hard.any() else 0.0,
        }
        if sampler.policy.noise_guard:
            out["suspect"] = precision_recall(codes == Bucket.SUSPECT, flipped)
        return out

    return probe


def final_suspects(
    sampler: WeightedBucketSampler | None, flipped: np.ndarray, guard: dict
) -> dict | None:
    """Classify the store with every report folded in (what the next plan would see)."""
    if sampler is None or not isinstance(sampler.policy, BucketPolicy):
        return None
    sampler.flush()
    policy = dataclasses.replace(sampler.policy, noise_guard=True, **guard)
    return precision_recall(policy.classify(sampler.store) == Bucket.SUSPECT, flipped)


def run_rate(task: Task, rate: float, arms: list[str], guard: dict) -> dict:
    specs = {**registry(), "gekodata_guard": guard_arm(guard)}
    result = {
        "rate": rate,
        "arms": {
            arm: {"seeds": [], "curves": [], "suspects": [], **{k: [] for k in RUN_KEYS}}
            for arm in arms
        },
    }
    for seed in task.seeds:
        noisy, flipped = noisy_task(task, rate, seed)
        init_state = copy.deepcopy(task.make_model(seed).state_dict())
        for arm in arms:
            run = run_arm(noisy, specs[arm], seed, init_state, None, on_epoch=epoch_probe(flipped))
            data = result["arms"][arm]
            data["seeds"].append(seed)
            for key in RUN_KEYS:
                data[key].append(run[key])
            data["curves"].append(run["curve"])
            data["suspects"].append(final_suspects(run["sampler"], flipped, guard))
            s = data["suspects"][-1]
            extra = (
                f"  suspects P {s['precision']:.2f} R {s['recall']:.2f} (n={s['flagged']})"
                if s
                else ""
            )
            print(
                f"  noise {rate:.0%} seed {seed} {arm:<15} acc {run['final_metric']:.4f}  "
                f"passes {run['sample_passes']:>6}  train {run['wall_clock_s']:6.1f}s{extra}",
                flush=True,
            )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["t1", "t2"], default="t2")
    parser.add_argument("--quick", action="store_true", help="T2-size smoke run: 1 seed, 4 epochs")
    parser.add_argument("--seeds", type=int, nargs="*", help="default 0 1 2 (quick: 0)")
    parser.add_argument("--epochs", type=int, help="override the task's epochs")
    parser.add_argument("--rates", type=float, nargs="*", default=list(RATES))
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: the task's)")
    parser.add_argument(
        "--suspect-streak", type=int, help="the guard arm's suspect_streak (default: the policy's)"
    )
    parser.add_argument(
        "--tag", default="", help="suffix of the result files (e.g. for a --suspect-streak variant)"
    )
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=ARMS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--render", action="store_true", help="redraw the table and PNG from the JSON"
    )
    args = parser.parse_args(argv)
    stem = args.out / (f"noise_{args.task}" + ("_quick" if args.quick else "") + args.tag)
    guard = {"suspect_streak": args.suspect_streak} if args.suspect_streak else {}
    if args.render:
        result = results.read(stem.with_suffix(".json"))
    else:
        task = TASKS[args.task](args.quick)
        task.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
        task.epochs = args.epochs or (4 if args.quick else task.epochs)
        set_threads(task)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        result = {
            "task": args.task,
            "title": task.title,
            "guard": dict(guard),
            "mode": "quick" if args.quick else "full",
            "machine": machine(),
            "date": results.today(),
            "seeds": task.seeds,
            "config": {
                "epochs": task.epochs,
                "batch_size": task.batch_size,
                "lr": task.lr,
                "noise": "symmetric, uniform over the other classes",
                **task.notes,
            },
            "rates": [],
        }
        print(
            f"noise on {args.task}: {task.title}; {len(task.train)} train; seeds {task.seeds}; {machine()}"
        )
        for rate in args.rates:
            result["rates"].append(run_rate(task, rate, args.arms, guard))
            results.write(stem.with_suffix(".json"), result)
    text = table(result)
    print("\n" + text)
    stem.with_suffix(".md").write_text(text)
    plot(result, stem.with_suffix(".png"))
    print(f"wrote {stem}.json, .md and .png")


if __name__ == "__main__":
    main()
