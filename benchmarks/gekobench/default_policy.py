"""The default policy against both controls on every task and variant, and the run's own data
diagnosis against the truth (issue 21).

Per task, variant and seed (time-to-quality protocol, :mod:`.runner`): ``full``; ``auto`` (the
default, ``AutoPolicy()``, the loop reporting ``report(signals, idx)`` so labels travel);
``auto_random`` (a fresh uniform subset of auto's per-epoch sizes); ``auto_budget`` (uniform,
stopped at auto's total passes, LR decayed within them); and for reference ``gekodata`` (GEKO's
mountain, the default before) and ``infobatch``.

The goal, per task and variant (:func:`checks`):

* noisy, redundant, imbalanced, noisy+imbalanced: <= 0.6 of full's passes; ahead of the random
  subset and of the same-budget run by >= 1 paired std; not below full by more than half of
  full's seed std;
* clean: not behind either control by more than half of full's seed std;
* diagnosis: the estimated mislabeled share within 5 points of the injected flips on the noisy
  variants, at most 3 points where no label was flipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import results
from .stats import paired, std, summarise

ARMS = ("full", "auto", "auto_random", "auto_budget", "gekodata", "infobatch")
NOISY = ("noisy", "noisy_imbalanced")
TUNED_ON = {"t4": [100, 101, 102, 103, 104]}  # the tuning runs: T4 with seeds 100-104 only


def stem(out: Path, task: str, variant: str) -> Path:
    """Where one task and variant's runs are saved: ``<out>/default_<task>_<variant>``."""
    return out / f"default_{task}_{variant}"


def noise_truth(result: dict[str, Any], seed: int) -> float:
    """The share of training labels the variant flipped for ``seed`` (0 where none)."""
    notes = result.get("variant_notes", {}).get(str(seed), {})
    return notes.get("flipped", 0) / notes["train_size"] if notes.get("train_size") else 0.0


def checks(result: dict[str, Any], variant: str, arm: str = "auto") -> dict[str, Any]:
    """The goal (module docstring) for ``arm`` of one saved result: the figures and each check."""
    arms = result["arms"]
    full = np.array(arms["full"]["final_metric"], dtype=float)
    half_std = 0.5 * std(full)
    mine = np.array(arms[arm]["final_metric"], dtype=float)
    out: dict[str, Any] = {
        "seeds": len(mine),
        "pass_ratio": float(
            np.mean(arms[arm]["sample_passes"]) / np.mean(arms["full"]["sample_passes"])
        ),
        "vs_full": _delta(paired(result, arm, "full")),
        "full_std": std(full),
    }
    for name in ("random", "budget"):
        out[f"vs_{name}"] = _delta(paired(result, arm, f"{arm}_{name}"))
    ok: dict[str, bool] = {}
    if variant == "clean":
        for name in ("random", "budget"):
            ok[f"vs_{name}"] = out[f"vs_{name}"]["mean"] >= -half_std
    else:
        ok["passes"] = out["pass_ratio"] <= 0.6
        ok["vs_full"] = out["vs_full"]["mean"] >= -half_std
        for name in ("random", "budget"):
            d = out[f"vs_{name}"]
            ok[f"vs_{name}"] = d["mean"] > 0 and d["mean"] >= d["std"]
    data = [d for d in arms[arm].get("data", []) if d]
    if data:
        truth = [noise_truth(result, s) for s in arms[arm]["seeds"]]
        est = [d["mislabeled_share"] for d in data]
        error = [e - t for e, t in zip(est, truth)]
        out["noise"] = {
            "estimate": float(np.mean(est)),
            "truth": float(np.mean(truth)),
            "max_abs_error": float(np.max(np.abs(error))),
        }
        limit = 0.05 if variant in NOISY else 0.03
        ok["noise_estimate"] = out["noise"]["max_abs_error"] <= limit
    out["ok"] = ok
    return out


def _delta(d: np.ndarray | None) -> dict[str, float]:
    return (
        {"mean": float("nan"), "std": float("nan")}
        if d is None
        else {"mean": float(d.mean()), "std": std(d)}
    )


def summary(out: Path, tasks: list[str], variants: list[str]) -> dict[str, Any]:
    """Every saved task x variant's checks."""
    rows: dict[str, Any] = {}
    for task in tasks:
        for variant in variants:
            path = stem(out, task, variant).with_suffix(".json")
            if not path.exists():
                continue
            result = results.read(path)
            summarise(result)
            rows[f"{task}_{variant}"] = {
                "task": task,
                "variant": variant,
                "title": result.get("title", task),
                **checks(result, variant),
                "tuned_on": sorted(
                    set(result["arms"]["full"]["seeds"]) & set(TUNED_ON.get(task, []))
                ),
            }
    return rows


def _pm(d: dict[str, float]) -> str:
    return f"{d['mean']:+.4f} ± {d['std']:.4f}"


def table(rows: dict[str, Any]) -> str:
    """Markdown: one row per task and variant (the README's and the docs' table)."""
    lines = [
        "| task | data | passes vs full | Δ vs full (full's std) | Δ vs random subset | Δ vs same budget "
        "| mislabeled: estimate / truth | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows.values():
        noise = row.get("noise")
        noise_text = "—" if noise is None else f"{noise['estimate']:.1%} / {noise['truth']:.1%}"
        ok = row["ok"]
        failed = [k for k, v in ok.items() if not v]
        verdict = "met" if not failed else "missed: " + ", ".join(failed)
        lines.append(
            f"| {row['task']} | {row['variant'].replace('_', '+')} | {row['pass_ratio']:.2f} | "
            f"{_pm(row['vs_full'])} ({row['full_std']:.4f}) | {_pm(row['vs_random'])} | "
            f"{_pm(row['vs_budget'])} | {noise_text} | {verdict} |"
        )
    return "\n".join(lines) + (
        "\n\nΔ: mean ± std of per-seed differences of final test accuracy (paired by seed). Goal "
        "(issue 21): noisy, redundant, imbalanced, noisy+imbalanced: <= 0.6 of full's passes, ahead "
        "of both controls by >= 1 paired std, not below full by more than half of full's std; clean: "
        "not behind either control by more than half of full's std; mislabeled estimate within 5 "
        "points of the truth on noisy data, at most 3 points elsewhere."
    )


README_START = (
    "<!-- default-policy table: rendered by `python -m benchmarks.render`; do not edit -->"
)
README_END = "<!-- end of default-policy table -->"
TASK_NAMES = {
    "t4": "T4 tabular (settings chosen on its seeds 100-104)",
    "t3": "T3 UCI digits",
    "t2": "T2 MNIST CNN",
}


def readme_table(rows: dict[str, Any]) -> str:
    """The README's compact table: per task and variant, the default's passes, Δ against its
    random subset / its same-budget run, and whether the goal was met (the docs page has the rest)."""
    from .variants import VARIANTS

    tasks = [t for t in TASK_NAMES if any(r["task"] == t for r in rows.values())]
    lines = [
        "| task | " + " | ".join(v.replace("_", " + ") for v in VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for task in tasks:
        cells = []
        for variant in VARIANTS:
            row = rows.get(f"{task}_{variant}")
            if row is None:
                cells.append("—")
                continue
            failed = [k for k, ok in row["ok"].items() if not ok]
            cells.append(
                f"{row['pass_ratio']:.2f}× passes; {row['vs_random']['mean']:+.3f} / "
                f"{row['vs_budget']['mean']:+.3f}; "
                + ("met" if not failed else "**missed**: " + ", ".join(failed))
            )
        lines.append(f"| {TASK_NAMES[task]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_block(rows: dict[str, Any]) -> str:
    """The README's rendered block, markers included."""
    return f"{README_START}\n{readme_table(rows)}\n{README_END}"


def with_readme_block(readme: str, rows: dict[str, Any]) -> str:
    """``readme`` with its block between the markers replaced by a fresh render (unchanged
    without the markers)."""
    if README_START not in readme or README_END not in readme:
        return readme
    head, rest = readme.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return head + readme_block(rows) + tail
