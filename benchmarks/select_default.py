"""How the default policy of ``WeightedBucketSampler(ds)`` is chosen (issue 13).

A bare ``WeightedBucketSampler(ds)`` has no training labels, so the candidates are label-free,
except those of ``WITH_LABELS``: their guard acts only where the store knows the labels, and
without them they are the mountain alone. Each is run on T2's four training-set variants (clean, noisy,
redundant, imbalanced; ``gekobench/variants.py``) with **tuning seeds** 100-104, which the reported tables
(seeds 0-4) never use, next to its own random-subset and same-budget controls
(the time-to-quality protocol; the grid and the checks are ``gekobench/default_choice.py``).
The candidates are scored by the issue's goal per variant:

* every variant: <= 0.5 of full's sample passes, accuracy >= full - 0.5 x full's seed std;
* noisy, redundant, imbalanced: ahead of its random subset and of its same-budget run by >= 1
  paired std; clean: not behind either by more than 0.5 paired std.

The candidate meeting most of these 16 checks (ties: the larger mean Δ against its random subset)
becomes the default; it is then reported on T2's seeds 0-4 and checked on T3 (UCI digits, never
used to choose) and T1 (``python -m benchmarks.time_to_quality --task t3 / t1 --variant all``).

    python -m benchmarks.select_default                      # 4 variants x 5 tuning seeds, ~25 min on 2 cores
    python -m benchmarks.select_default --variant noisy      # one variant
    python -m benchmarks.select_default --score              # no training: score the saved runs
    python -m benchmarks.select_default --add NAME ...       # add grid candidates to the saved runs
    python -m benchmarks.select_default --check              # no training: the checks on T2 0-4, T3, T1
    python -m benchmarks.select_default --suspects           # what the plain guard catches, by confidence

Writes ``benchmarks/results/select_default_<variant>.json`` / ``.png`` per variant and
``select_default.json`` / ``.md`` with the scores (.png and .md are not committed;
``python -m benchmarks.render`` writes the docs page).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from .gekobench import results, study
from .gekobench.arms import registry
from .gekobench.default_choice import (
    GRID,
    TUNING_SEEDS,
    WITH_LABELS,
    candidate_arms,
    check,
    checks,
    grid_specs,
    score,
    score_table,
    stem_of,
)
from .gekobench.paths import RESULTS
from .gekobench.runner import run_arm
from .gekobench.variants import STUDY_VARIANTS as VARIANTS

__all__ = ["GRID", "TUNING_SEEDS", "WITH_LABELS", "checks", "main"]


def suspects(
    out: Path, seed: int = TUNING_SEEDS[0], epochs=(3, 6, 9, 12), at_most: float = 0.1
) -> dict:
    """What the plain guard (``BucketPolicy(noise_guard=True)``, no labels) holds SUSPECT on T2's
    noisy and clean variants at some epochs' ends, and how many of them have a confidence EMA of at
    most ``at_most``: flipped labels against correctly labeled samples. Writes
    ``select_default_suspects.json``."""
    from gekodata.policy import Bucket

    base = study.load_task("t2", False)
    spec = grid_specs(["mountain_guard2"])["sel_mountain_guard2"]
    report: dict = {"seed": seed, "at_most": at_most, "variants": {}}
    for variant in ("noisy", "clean"):
        task = study.variant_task(base, variant, seed)
        flipped_all = task.labels != base.train.columns["labels"].numpy()
        rows = report["variants"][variant] = []

        def on_epoch(
            epoch: int, sampler, task=task, flipped_all=flipped_all, rows=rows, variant=variant
        ) -> dict:
            if epoch in epochs:
                held = sampler.policy.classify(sampler.store) == Bucket.SUSPECT
                low = sampler.store.columns["conf_ema"] <= int(at_most * 255)
                flipped = held & flipped_all
                clean = held & ~flipped_all
                rows.append(
                    {
                        "epoch": epoch,
                        "suspect": int(held.sum()),
                        "flipped": int(flipped.sum()),
                        "flipped_low_conf": int((flipped & low).sum()),
                        "clean": int(clean.sum()),
                        "clean_low_conf": int((clean & low).sum()),
                    }
                )
                print(variant, rows[-1], flush=True)
            return {}

        init_state = copy.deepcopy(task.make_model(seed).state_dict())
        run_arm(task, spec, seed, init_state, None, on_epoch=on_epoch)
    results.write(out / "select_default_suspects.json", report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="*", default=TUNING_SEEDS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--score", action="store_true", help="no training: score the saved runs")
    parser.add_argument(
        "--add",
        nargs="*",
        choices=list(GRID),
        help="run these candidates (and their controls) "
        "for every seed of the saved variant results and add them",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="no training: the label-free candidates' checks on the reported T2, T3 and T1 results",
    )
    parser.add_argument(
        "--suspects",
        action="store_true",
        help="what the plain guard holds SUSPECT on T2 noisy/clean (seed 100), by confidence",
    )
    args = parser.parse_args(argv)
    if args.suspects:
        suspects(args.out)
        return
    if args.check:
        text, summary = check(args.out)
        (args.out / "select_default_check.md").write_text(text)
        results.write(args.out / "select_default_check.json", summary)
        print(text)
        return
    specs = registry(grid_specs())  # the grid passed explicitly; nothing global is changed
    if args.add:
        for variant in args.variant:
            study.extend(
                "t2",
                False,
                args.out,
                candidate_arms(args.add),
                variant,
                stem=stem_of(args.out, variant),
                specs=specs,
            )
    elif not args.score:
        for variant in args.variant:
            study.run_task(
                "t2",
                False,
                args.seeds,
                args.out,
                ["full", *candidate_arms(list(GRID))],
                variant=variant,
                stem=stem_of(args.out, variant),
                specs=specs,
            )
    scored = score(args.out)
    text = score_table(scored)
    (args.out / "select_default.json").write_text(json.dumps(scored, indent=1) + "\n")
    (args.out / "select_default.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
