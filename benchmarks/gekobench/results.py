"""Result files: JSON read / write / merge of one benchmark's runs (only the JSON is committed)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .arms import ArmSpec, control_of
from .machine import machine
from .runner import RUN_KEYS, Budget
from .tasks import Task


def result_stem(out: Path, name: str, quick: bool, variant: str | None = None) -> Path:
    """Where a task's results live, without suffix: ``<out>/<name>[_<variant>][_quick]``."""
    return out / ((name if variant is None else f"{name}_{variant}") + ("_quick" if quick else ""))


def read(path: Path) -> dict[str, Any]:
    """A saved result."""
    return json.loads(Path(path).read_text())


def write(path: Path, result: Mapping[str, Any], indent: int = 1) -> None:
    """Save ``result`` as JSON (``default=str`` for paths and dates), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=indent, default=str) + "\n")


def today() -> str:
    """The date recorded with a run."""
    return dt.date.today().isoformat()


def empty_arm() -> dict[str, list]:
    """An arm's lists before its first seed."""
    return {"seeds": [], "curves": [], **{k: [] for k in RUN_KEYS}}


def new_result(
    base: Task, key: str, quick: bool, variant: str | None, arms: Mapping[str, ArmSpec]
) -> dict[str, Any]:
    """The skeleton of a time-to-quality result for ``arms`` (a registry slice, in run order)."""
    result: dict[str, Any] = {
        "task": key,
        "title": base.title + (f", {variant} training set" if variant else ""),
        "variant": variant,
        "mode": "quick" if quick else "full",
        "machine": machine(),
        "date": today(),
        "config": {
            "epochs": base.epochs,
            "batch_size": base.batch_size,
            "lr": base.lr,
            "weight_decay": base.weight_decay,
            "lr_schedule": "linear to 0 over progress",
            **base.notes,
        },
        "arms": {arm: empty_arm() for arm in arms},
    }
    if variant:
        result["policies"] = {
            name: spec.policy().config() for name, spec in arms.items() if spec.kind == "candidate"
        }
        result["variant_notes"] = {}
    return result


def record_run(data: dict, seed: int, run: Mapping[str, Any], at: int | None = None) -> None:
    """Store one run's figures in an arm's lists (append, or replace position ``at``)."""
    if at is None:
        data["seeds"].append(seed)
        data["curves"].append(run["curve"])
        for key in RUN_KEYS:
            data.setdefault(key, []).append(run[key])
        return
    data["curves"][at] = run["curve"]
    for key in RUN_KEYS:
        data.setdefault(key, [None] * len(data["seeds"]))[at] = run[key]


def budget_of(run: Mapping[str, Any]) -> Budget:
    """What a control of this run trains: its per-epoch and total passes."""
    return {"per_epoch": run["passes_per_epoch"], "total": run["sample_passes"]}


def saved_budget(result: Mapping[str, Any], arm: str, seed: int) -> Budget | None:
    """A control arm's budget from its source arm's saved run of ``seed``; None for an arm that is
    not a control."""
    control = control_of(arm, result["arms"])
    if control is None:
        return None
    source = result["arms"][control[1]]
    j = source["seeds"].index(seed)
    return {"per_epoch": source["passes_per_epoch"][j], "total": source["sample_passes"][j]}


def write_results(
    out: Path, name: str, report: Mapping[str, Any], plot: Callable[[Path], None]
) -> None:
    """``<out>/<name>.json`` from ``report`` (indent 2) and ``<out>/<name>.png`` from ``plot(path)``."""
    write(out / f"{name}.json", report, indent=2)
    plot(out / f"{name}.png")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.png')}")
