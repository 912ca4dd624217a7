"""Markdown tables of the time-to-quality and selection-study results (rendered from their JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import results
from .arms import ARMS, all_arms, control_of, controls_of
from .stats import paired, pm, ratio, std, summarise


def time_to_quality(result: dict) -> str:
    """The table of a result: :func:`selection_table` for a selection study, else :func:`table`."""
    return selection_table(result) if result.get("variant") else table(result)


def rerun_notes(result: dict) -> str:
    """One line per rerun (``--rerun``) for the foot of a table."""
    return "".join(
        f"Rerun: {r['arm']} seed {r['seed']} ({r['reason']}; first run "
        f"{r['replaced']['wall_clock_s']:.1f} s).\n"
        for r in result.get("reruns", [])
    )


def table(result: dict) -> str:
    """Markdown table of the result (mean ± std over seeds)."""
    arms = result["arms"]
    full = arms.get("full")
    ref_passes = np.mean(full["sample_passes"]) if full else None
    ref_time = np.mean(full["wall_clock_s"]) if full else None
    lines = [
        "| arm | final accuracy | Δ vs full (paired) | wall-clock s | vs full | sample passes | vs full "
        "| time to target s (reached) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        if arm not in arms or not arms[arm]["final_metric"]:
            continue
        d = arms[arm]
        acc, sec, passes = (
            np.array(d[k], dtype=float) for k in ("final_metric", "wall_clock_s", "sample_passes")
        )
        reached = [t for t in d.get("time_to_target_s", []) if t is not None]
        ttt = (
            f"{np.mean(reached):.1f} ({len(reached)}/{len(acc)})"
            if reached
            else f"— (0/{len(acc)})"
        )
        delta = (
            acc - np.array(full["final_metric"][: len(acc)], dtype=float) if full else np.zeros(1)
        )
        lines.append(
            f"| {arm} | {acc.mean():.4f} ± {std(acc):.4f} | {delta.mean():+.4f} ± {std(delta):.4f} | "
            f"{sec.mean():.1f} ± {std(sec):.1f} | "
            f"{sec.mean() / ref_time - 1:+.1%} | {passes.mean():.0f} | {passes.mean() / ref_passes - 1:+.1%} | {ttt} |"
        )
    head = (
        f"**{result['task'].upper()} — {result['title']}** ({result['mode']} mode, "
        f"{len(arms.get('full', {}).get('seeds', []))} seeds, {result['config']['epochs']} epochs, "
        f"target accuracy {result.get('target', float('nan')):.4f}; {result['date']}, {result['machine']})"
    )
    return head + "\n\n" + "\n".join(lines) + "\n" + rerun_notes(result)


def selection_table(result: dict) -> str:
    """Markdown table of a selection-study result: every arm, paired deltas against full and, for
    the selection arms, against their own random-subset and same-budget controls."""
    arms = result["arms"]
    full = arms.get("full")
    ref_passes = np.mean(full["sample_passes"]) if full else None
    ref_time = np.mean(full["wall_clock_s"]) if full else None
    lines = [
        "| arm | accuracy | Δ vs full | macro accuracy | Δ vs its random subset | Δ vs its same budget "
        "| sample passes | vs full | wall-clock s | vs full |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = [a for a in all_arms() if a in arms] + [a for a in arms if a not in all_arms()]
    for arm in order:
        d = arms[arm]
        if not d["final_metric"]:
            continue
        acc, sec, passes = (
            np.array(d[k], dtype=float) for k in ("final_metric", "wall_clock_s", "sample_passes")
        )
        macro = [m for m in d.get("final_macro", []) if m is not None]
        random_arm, budget_arm = controls_of(arm)
        selects = control_of(arm, arms) is None and arm not in ("full", "infobatch")
        ref = np.array(d.get("reference_s") or [0.0], dtype=float)
        sec_text = f"{sec.mean():.1f} ± {std(sec):.1f}" + (
            f" (ref {ref.mean():.1f})" if ref.mean() > 0 else ""
        )
        label = (
            arm
            if not full or len(d["seeds"]) == len(full["seeds"])
            else f"{arm} (seeds {d['seeds']})"
        )
        lines.append(
            f"| {label} | {acc.mean():.4f} ± {std(acc):.4f} | {pm(paired(result, arm, 'full'))} | "
            f"{(f'{np.mean(macro):.4f}' if macro else '—')} | "
            f"{pm(paired(result, arm, random_arm)) if selects else ''} | "
            f"{pm(paired(result, arm, budget_arm)) if selects else ''} | {passes.mean():.0f} | "
            f"{ratio(passes.mean(), ref_passes)} | {sec_text} | {ratio(sec.mean(), ref_time)} |"
        )
    seeds = len(full["seeds"]) if full else 0
    head = (
        f"**{result['task'].upper()} — {result['title']}** ({result['mode']} mode, {seeds} seeds "
        f"{full['seeds'] if full else ''}, {result['config']['epochs']} epochs, "
        f"{result['config'].get('train_size', '?')} training samples; {result['date']}, {result['machine']})"
    )
    return head + "\n\n" + "\n".join(lines) + "\n" + rerun_notes(result)


def selection_summary(out: Path, stems: Sequence[str]) -> str:
    """One row per (task, selection arm) over the saved selection results ``stems``: pass ratio and
    the paired Δ against full, the arm's random subset and its same-budget run; the best arm per
    task (highest mean accuracy) first."""
    lines = [
        "| task | best arm (accuracy) | arm | passes vs full | Δ vs full | Δ vs its random subset "
        "| Δ vs its same budget | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stem in stems:
        path = out / f"{stem}.json"
        if not path.exists():
            continue
        result = results.read(path)
        summarise(result)
        arms = result["arms"]
        best = max(arms, key=lambda a: np.mean(arms[a]["final_metric"]))
        best_text = f"{best} ({np.mean(arms[best]['final_metric']):.4f})"
        for arm, goal in result.get("goals", {}).items():
            random_arm, budget_arm = controls_of(arm)
            ok = [goal["pass_ratio"] <= 0.5, goal["accuracy_ok"]] + [
                bool(goal[k] and goal[k]["ahead_by_1_std"]) for k in ("vs_random", "vs_budget")
            ]
            lines.append(
                f"| {stem} | {best_text} | {arm} | {goal['pass_ratio'] - 1:+.1%} | "
                f"{pm(paired(result, arm, 'full'))} | {pm(paired(result, arm, random_arm))} | "
                f"{pm(paired(result, arm, budget_arm))} | {sum(ok)}/4 |"
            )
            best_text = ""
    return "\n".join(lines) + (
        "\n\ngoal: passes <= 0.5 x full; accuracy >= full - 0.5 x full's seed std; "
        "ahead of the random subset by >= 1 paired std; ahead of the same-budget run "
        "by >= 1 paired std (the issue's bar for noisy, redundant and imbalanced data).\n"
    )
