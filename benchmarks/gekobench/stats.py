"""Paired statistics of a time-to-quality result: target, time to target, paired deltas, goals.

The target is fixed before looking at the other arms: the full arm's mean final accuracy minus one
standard deviation over seeds (minus 0.01 with a single seed). Time to target is the training
wall-clock at the first epoch end whose test accuracy reaches it. Every comparison between arms is
paired by seed.
"""

from __future__ import annotations

import numpy as np

from .arms import control_of, controls_of


def target_of(full_finals: list[float]) -> float:
    """Fixed rule: full arm's mean final metric minus one std (ddof=1); minus 0.01 for one seed."""
    if len(full_finals) > 1:
        return float(np.mean(full_finals) - np.std(full_finals, ddof=1))
    return float(full_finals[0] - 0.01)


def summarise(result: dict) -> None:
    """Add target and per-arm time to target / means to ``result`` in place."""
    arms = result["arms"]
    if not arms.get("full", {}).get("final_metric"):
        return
    target = result["target"] = target_of(arms["full"]["final_metric"])
    for data in arms.values():
        data["time_to_target_s"] = [
            next((p["train_s"] for p in curve if p["metric"] >= target), None)
            for curve in data["curves"]
        ]
    if result.get("variant"):
        result["goals"] = {
            arm: goal_check(result, arm)
            for arm in arms
            if control_of(arm, arms) is None and arm not in ("full", "infobatch")
        }


def paired(result: dict, arm: str, other: str) -> np.ndarray | None:
    """Per-seed differences ``arm - other`` of the final metric over the seeds both ran."""
    arms = result["arms"]
    if other not in arms or arm not in arms:
        return None
    mine = dict(zip(arms[arm]["seeds"], arms[arm]["final_metric"]))
    theirs = dict(zip(arms[other]["seeds"], arms[other]["final_metric"]))
    common = [s for s in mine if s in theirs]
    return np.array([mine[s] - theirs[s] for s in common], dtype=float) if common else None


def std(a: np.ndarray) -> float:
    """Sample standard deviation (ddof=1); 0 for one value."""
    return float(np.std(a, ddof=1)) if len(a) > 1 else 0.0


def pm_of(mean: float | None, std: float | None, fmt: str) -> str:
    """``mean ± std`` of already summarised figures in ``fmt`` (the std without its sign flag);
    — when either is missing."""
    return "—" if mean is None or std is None else f"{mean:{fmt}} ± {std:{fmt.lstrip('+')}}"


def pm(a: np.ndarray | None) -> str:
    """``mean ± std`` of paired differences; — when there are none."""
    return "—" if a is None else f"{a.mean():+.4f} ± {std(a):.4f}"


def ratio(value: float, reference: float | None) -> str:
    """``value`` relative to ``reference`` as a signed percentage."""
    return "—" if not reference else f"{value / reference - 1:+.1%}"


def goal_check(result: dict, arm: str) -> dict[str, object]:
    """The issue's goal for a selection arm: <= 0.5 of full's passes; final accuracy >= full - 0.5 x
    full's seed std; ahead of its random subset and same-budget controls by >= 1 paired std."""
    arms = result["arms"]
    full = np.array(arms["full"]["final_metric"], dtype=float)
    mine = np.array(arms[arm]["final_metric"], dtype=float)
    out: dict[str, object] = {
        "pass_ratio": float(
            np.mean(arms[arm]["sample_passes"]) / np.mean(arms["full"]["sample_passes"])
        ),
        "accuracy_ok": bool(mine.mean() >= full.mean() - 0.5 * std(full)),
    }
    for name, control in zip(("random", "budget"), controls_of(arm)):
        d = paired(result, arm, control)
        out[f"vs_{name}"] = (
            None
            if d is None
            else {
                "mean": float(d.mean()),
                "std": std(d),
                "ahead_by_1_std": bool(d.mean() >= max(std(d), 1e-12)),
            }
        )
    return out
