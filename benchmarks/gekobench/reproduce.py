"""Rerun a committed result's arms for one seed through the runner and compare every figure that
does not depend on the machine's speed (accuracy and passes per epoch; not wall-clock)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import results, study
from .arms import registry
from .runner import run_arm


def _curve(curve: list[dict], like: list[dict]) -> list[tuple]:
    """(metric, passes[, macro]) per epoch; macro only where the committed curve has it."""
    return [
        (p["metric"], p["passes"]) + ((p["macro"],) if "macro" in q else ())
        for p, q in zip(curve, like, strict=False)
    ]


def reproduce(path: Path, seed: int, arms: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per arm of ``path`` (a time-to-quality JSON) that ran ``seed``: the committed and
    the rerun final accuracy and passes, and whether every epoch matched exactly."""
    saved = results.read(path)
    variant = saved.get("variant")
    name = saved["task"].removesuffix(f"_{variant}") if variant else saved["task"]
    base = study.load_task(name, saved["mode"] == "quick", epochs=saved["config"]["epochs"])
    task = study.variant_task(base, variant, seed)
    init_state = copy.deepcopy(task.make_model(seed).state_dict())
    specs, rows = registry(), []
    for arm in arms or list(saved["arms"]):
        data = saved["arms"][arm]
        if seed not in data["seeds"]:
            continue
        i = data["seeds"].index(seed)
        run = run_arm(task, specs[arm], seed, init_state, results.saved_budget(saved, arm, seed))
        committed = data["curves"][i]
        exact = (
            run["passes_per_epoch"] == data["passes_per_epoch"][i]
            and len(run["curve"]) == len(committed)
            and _curve(run["curve"], committed) == _curve(committed, committed)
        )
        rows.append(
            {
                "arm": arm,
                "committed": (data["final_metric"][i], data["sample_passes"][i]),
                "rerun": (run["final_metric"], run["sample_passes"]),
                "exact": exact,
            }
        )
    return rows
