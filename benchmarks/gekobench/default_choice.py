"""How the default policy of ``WeightedBucketSampler(ds)`` is chosen (issue 13): the label-free
candidate grid, the issue's goal as checks, and the score and check tables (from saved JSON).

The candidates run on T2's four training-set variants with tuning seeds 100-104 next to their own
random-subset and same-budget controls; the one meeting most checks (ties: the larger mean Δ
against its random subset) becomes the default, then is checked on T2 seeds 0-4, T3 and T1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from gekodata import BucketPolicy, ForgettingPolicy, SelectionPolicy

from . import results
from .arms import ArmSpec, candidate, controls_of
from .stats import goal_check, paired, pm, summarise
from .variants import STUDY_VARIANTS as VARIANTS

TUNING_SEEDS = [100, 101, 102, 103, 104]


GRID: dict[str, Callable[[], SelectionPolicy]] = {
    "mountain": lambda: BucketPolicy(),
    "mountain_guard2": lambda: BucketPolicy(noise_guard=True),
    "mountain_guard3": lambda: BucketPolicy(noise_guard=True, suspect_streak=3),
    "mountain_guard4": lambda: BucketPolicy(noise_guard=True, suspect_streak=4),
    "balanced_guard2": lambda: BucketPolicy.preset("balanced", noise_guard=True),
    "balanced_guard3": lambda: BucketPolicy.preset("balanced", noise_guard=True, suspect_streak=3),
    "forgetting": lambda: ForgettingPolicy(),
    # second round, after the first showed the guard costing the mountain its lead on clean data: a
    # SUSPECT must also have put at most 10% (5%) of its probability on its label (--suspects: on noisy
    # seed 100, 91% of the flipped labels the guard caught were at most 0.1, 24-26% of the clean ones)
    "mountain_guard2_conf10": lambda: BucketPolicy(noise_guard=True, suspect_confidence=0.1),
    "mountain_guard2_conf05": lambda: BucketPolicy(noise_guard=True, suspect_confidence=0.05),
    "balanced_guard2_conf10": lambda: BucketPolicy.preset(
        "balanced", noise_guard=True, suspect_confidence=0.1
    ),
    # third round, after mountain_guard2_conf10 (the second round's winner) failed the T3 check: without
    # labels it took T3's rare classes for noise. The guard judges only samples of known label, each
    # against its own class; the store is given the labels (set_labels), and without them this is
    # the mountain alone
    "mountain_guard2_conf10_labels": lambda: BucketPolicy(
        noise_guard=True, suspect_confidence=0.1, suspect_needs_labels=True
    ),
}


WITH_LABELS = {
    "mountain_guard2_conf10_labels"
}  # grid candidates whose store gets the training labels


def grid_specs(names: list[str] | None = None) -> dict[str, ArmSpec]:
    """The grid (or ``names`` of it) as candidate arms ``sel_<name>``; label-free stores except
    :data:`WITH_LABELS`. Pass them to a study with :func:`.arms.registry`."""
    return {
        f"sel_{name}": candidate(f"sel_{name}", GRID[name], labels=name in WITH_LABELS)
        for name in (names or GRID)
    }


def checks(result: dict, arm: str, variant: str) -> list[bool]:
    """The issue's goal for ``arm`` on ``variant`` as booleans (module docstring)."""
    goal = goal_check(result, arm)
    ok = [goal["pass_ratio"] <= 0.5, goal["accuracy_ok"]]
    for control in controls_of(arm):
        diff = paired(result, arm, control)
        std = float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0
        mean = float(np.mean(diff))
        ok.append(mean >= -0.5 * std if variant == "clean" else mean >= std and mean > 0)
    return ok


def stem_of(out: Path, variant: str) -> Path:
    """The saved runs of one variant: ``<out>/select_default_<variant>`` (+ .json, .png, .md)."""
    return out / f"select_default_{variant}"


def candidate_arms(names: list[str]) -> list[str]:
    """Each grid candidate's arm and its random-subset and same-budget controls."""
    return [
        a for name in names for a in (f"sel_{name}", f"sel_{name}_random", f"sel_{name}_budget")
    ]


CHECK_ARMS = {
    "gekodata": "mountain",
    "guard_conf10": "mountain_guard2_conf10",
    "guard_conf10_nopred": "mountain_guard2_conf10, loop without pred",
    "guard_conf10_labels": "mountain_guard2_conf10_labels",
    "balanced_guard": "balanced_guard2",
    "guard_nolabels": "mountain_guard2",
    "forgetting_nolabels": "forgetting",
}


CHECK_STEMS = ("t2_{v}", "t3_{v}", "t1_{v}_quick")


def score(out: Path) -> dict:
    """The grid's checks per variant from the saved ``select_default_<variant>.json`` runs:
    ``{"ranked": [names, best first], "rows": {name: ...}}`` (saved as ``select_default.json``)."""
    rows: dict[str, dict] = {
        name: {"checks": 0, "of": 0, "vs_random": [], "per_variant": {}} for name in GRID
    }
    for variant in VARIANTS:
        path = stem_of(out, variant).with_suffix(".json")
        if not path.exists():
            continue
        result = results.read(path)
        summarise(result)
        for name in GRID:
            arm = f"sel_{name}"
            ok = checks(result, arm, variant)
            rnd = float(np.mean(paired(result, arm, f"{arm}_random")))
            rows[name]["checks"] += sum(ok)
            rows[name]["of"] += len(ok)
            rows[name]["vs_random"].append(rnd)
            versus = (("full", "full"), ("random", f"{arm}_random"), ("budget", f"{arm}_budget"))
            rows[name]["per_variant"][variant] = {
                "checks": ok,
                "pass_ratio": goal_check(result, arm)["pass_ratio"],
                **{f"vs_{kind}": pm(paired(result, arm, other)) for kind, other in versus},
            }

    def rank(n: str) -> tuple:
        return rows[n]["checks"], np.mean(rows[n]["vs_random"] or [0])

    return {"ranked": sorted(rows, key=rank, reverse=True), "rows": rows}


def score_table(scored: dict) -> str:
    """Markdown of :func:`score`'s result (``select_default.json``)."""
    ranked, rows = scored["ranked"], scored["rows"]
    head = " | ".join(f"{v}: passes; Δ full; Δ random; Δ budget" for v in VARIANTS)
    lines = [f"| candidate | checks met | {head} |", "|---|---|" + "---|" * len(VARIANTS)]
    for name in ranked:
        cells = []
        for v in VARIANTS:
            pv = rows[name]["per_variant"].get(v)
            cells.append(
                ""
                if pv is None
                else f"{pv['pass_ratio']:.2f}; {pv['vs_full']}; {pv['vs_random']}; "
                f"{pv['vs_budget']} ({sum(pv['checks'])}/4)"
            )
        lines.append(
            f"| {name} | {rows[name]['checks']}/{rows[name]['of']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + (
        f"\n\nT2, tuning seeds {TUNING_SEEDS}, label-free stores (but {sorted(WITH_LABELS)}); "
        f"ranked first: **{ranked[0]}** (then checked on T2 seeds 0-4, T3 and T1: README).\n"
    )


def check(out: Path) -> tuple[str, dict]:
    """The label-free candidates on the reported results (T2 seeds 0-4, T3, T1 quick), as far as
    they were run there: the goal's checks per task and variant, as :func:`score` counts them.
    Returns (markdown, ``{name: {"met", "of"}}``)."""
    stems = [s.format(v=v) for s in CHECK_STEMS for v in VARIANTS]
    lines = [
        "| candidate | " + " | ".join(stems) + " | checks met |",
        "|---|" + "---|" * (len(stems) + 1),
    ]
    summary = {}
    for arm, name in CHECK_ARMS.items():
        cells, met, of = [], 0, 0
        for stem in CHECK_STEMS:
            for variant in VARIANTS:
                path = out / f"{stem.format(v=variant)}.json"
                result = results.read(path) if path.exists() else None
                if result is None or any(a not in result["arms"] for a in (arm, *controls_of(arm))):
                    cells.append("")
                    continue
                summarise(result)
                ok = checks(result, arm, variant)
                met, of = met + sum(ok), of + len(ok)
                rnd = paired(result, arm, controls_of(arm)[0])
                seeds = len(result["arms"][arm]["seeds"])
                few = (
                    ""
                    if seeds >= len(result["arms"]["full"]["seeds"])
                    else f" ({seeds} seed{'s' * (seeds > 1)})"
                )
                cells.append(f"{sum(ok)}/4, {float(np.mean(rnd)):+.4f}{few}")
        summary[name] = {"met": met, "of": of}
        lines.append(f"| {name} (`{arm}`) | " + " | ".join(cells) + f" | {met}/{of} |")
    text = "\n".join(lines) + (
        "\n\nEach cell: the goal's checks met (passes <= 0.5 x full; accuracy >= full - "
        "0.5 x full's std; vs its random subset and its same-budget run: ahead by >= 1 paired std, "
        "or on clean data not behind by more than 0.5 std), then the mean Δ against its random subset.\n"
    )
    return text, summary
