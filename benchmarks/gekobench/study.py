"""Run, rerun and extend a time-to-quality study: every arm of a registry for every seed of a task,
saved after each seed (:mod:`.results`); the table and plot beside the JSON are rendered from it."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import plots, results, tables
from .arms import ArmSpec, all_arms, registry
from .machine import machine
from .runner import Budget, run_arm, set_threads
from .stats import summarise
from .tasks import TASKS, Task


def variant_task(base: Task, variant: str | None, seed: int) -> Task:
    """The task itself, or its selection-study ``variant`` for ``seed``."""
    if variant is None:
        return base
    from .variants import make_variant

    return make_variant(base, variant, seed)


def load_task(
    name: str, quick: bool, seeds: Sequence[int] | None = None, epochs: int | None = None
) -> Task:
    """Task ``name`` with its seeds and epochs overridden where given; sets torch's threads."""
    base = TASKS[name](quick)
    if seeds:
        base.seeds = list(seeds)
    if epochs:
        base.epochs = epochs
    set_threads(base)
    return base


def _line(seed: int, arm: str, run: Mapping[str, Any], tail: str) -> str:
    """One printed progress line of a run."""
    return (
        f"  seed {seed} {arm:<18} acc {run['final_metric']:.4f}  passes {run['sample_passes']:>6}  "
        f"train {run['wall_clock_s']:7.1f}s{tail}"
    )


def run_task(
    name: str,
    quick: bool,
    seeds: Sequence[int] | None,
    out: Path,
    arms: Sequence[str],
    epochs: int | None = None,
    variant: str | None = None,
    stem: Path | None = None,
    specs: Mapping[str, ArmSpec] | None = None,
) -> dict[str, Any]:
    """Train ``arms`` (names in ``specs``, default :func:`.arms.registry`) for every seed of task
    ``name`` (``variant``: a selection-study training set built per seed) and save the result
    after each seed to ``stem`` (default :func:`.results.result_stem`) + ``.json``; then the
    table (``.md``) and plot (``.png``) beside it."""
    specs = specs or registry()
    base = load_task(name, quick, seeds, epochs)
    key = name if variant is None else f"{name}_{variant}"
    result = results.new_result(base, key, quick, variant, {a: specs[a] for a in arms})
    stem = stem or results.result_stem(out, name, quick, variant)
    print(
        f"{key}: {result['title']}; {len(base.train)} train / {len(base.test)} test; "
        f"seeds {base.seeds}; {machine()}"
    )
    for seed in base.seeds:
        task = variant_task(base, variant, seed)
        if variant:
            result["variant_notes"][str(seed)] = task.notes
            result["config"]["train_size"] = task.notes["train_size"]
        init_state = copy.deepcopy(task.make_model(seed).state_dict())
        budgets: dict[str, Budget] = {}
        for arm in arms:
            spec = specs[arm]
            if spec.source is not None and spec.source not in budgets:
                raise SystemExit(f"arm {arm} needs the {spec.source} arm first (its budget)")
            run = run_arm(task, spec, seed, init_state, budgets.get(spec.source))
            if spec.source is None:
                budgets[arm] = results.budget_of(run)
            results.record_run(result["arms"][arm], seed, run)
            print(_line(seed, arm, run, f"  (selection {run['selection_s']:.2f}s)"), flush=True)
        summarise(result)
        results.write(stem.with_suffix(".json"), result)
    publish(result, stem)
    return result


def rerun(
    name: str,
    quick: bool,
    out: Path,
    pairs: Sequence[str],
    reason: str,
    variant: str | None = None,
    specs: Mapping[str, ArmSpec] | None = None,
) -> dict[str, Any]:
    """Train ``arm:seed`` pairs again and replace them in the saved JSON (e.g. a run that
    overlapped other jobs on the machine); the replaced figures and the reason are kept under
    ``"reruns"``. A control arm reuses its source arm's saved passes."""
    specs = specs or registry()
    stem = results.result_stem(out, name, quick, variant)
    result = results.read(stem.with_suffix(".json"))
    base = load_task(name, quick, epochs=result["config"]["epochs"])
    for pair in pairs:
        arm, seed_text = pair.split(":")
        seed = int(seed_text)
        data = result["arms"][arm]
        i = data["seeds"].index(seed)
        task = variant_task(base, variant, seed)
        init_state = copy.deepcopy(task.make_model(seed).state_dict())
        run = run_arm(task, specs[arm], seed, init_state, results.saved_budget(result, arm, seed))
        replaced = {k: data[k][i] for k in ("final_metric", "wall_clock_s", "sample_passes")}
        result.setdefault("reruns", []).append(
            {
                "arm": arm,
                "seed": seed,
                "reason": reason,
                "date": results.today(),
                "replaced": replaced,
            }
        )
        results.record_run(data, seed, run, at=i)
        print(_line(seed, arm, run, f" (was {replaced['wall_clock_s']:.1f}s)"))
    summarise(result)
    results.write(stem.with_suffix(".json"), result)
    publish(result, stem)
    return result


def extend(
    name: str,
    quick: bool,
    out: Path,
    arms: Sequence[str],
    variant: str | None = None,
    seeds: Sequence[int] | None = None,
    stem: Path | None = None,
    specs: Mapping[str, ArmSpec] | None = None,
) -> dict[str, Any]:
    """Train ``arms`` for every seed of the saved result (or for ``seeds``, which may be new) where
    they have not run yet, and add them (a control arm reuses its source arm's saved passes; list a
    new seed's ``full`` and source arms first). Paired figures use the seeds both arms ran."""
    specs = specs or registry()
    stem = stem or results.result_stem(out, name, quick, variant)
    result = results.read(stem.with_suffix(".json"))
    base = load_task(name, quick, epochs=result["config"]["epochs"])
    order = all_arms([s.name for s in specs.values() if s.kind == "candidate"])
    for seed in seeds or list(result["arms"]["full"]["seeds"]):
        task = variant_task(base, variant, seed)
        if variant:
            result.setdefault("variant_notes", {})[str(seed)] = task.notes
        init_state = copy.deepcopy(task.make_model(seed).state_dict())
        for arm in arms:
            data = result["arms"].setdefault(arm, results.empty_arm())
            if seed in data["seeds"]:
                continue
            budget = results.saved_budget(result, arm, seed)
            run = run_arm(task, specs[arm], seed, init_state, budget)
            results.record_run(data, seed, run)
            print(_line(seed, arm, run, " (added)"), flush=True)
        result["arms"] = {a: result["arms"][a] for a in order if a in result["arms"]}
        results.write(stem.with_suffix(".json"), result)
    result.setdefault("added", []).append(
        {"arms": list(arms), "date": results.today(), "machine": machine()}
    )
    summarise(result)
    results.write(stem.with_suffix(".json"), result)
    publish(result, stem)
    return result


def publish(result: dict[str, Any], stem: Path) -> None:
    """Print the result's table; write it (``.md``) and its plot (``.png``) beside the JSON."""
    text = tables.time_to_quality(result)
    print("\n" + text)
    stem.with_suffix(".md").write_text(text)
    plots.time_to_quality(result, stem.with_suffix(".png"))
    print(f"wrote {stem}.json, .md and .png")
