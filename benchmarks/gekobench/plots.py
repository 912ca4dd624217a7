"""Plots of the time-to-quality results, drawn on demand from their JSON (PNGs are not committed)."""

from __future__ import annotations

from pathlib import Path

from .arms import ARMS, CANDIDATES, control_of

COLOURS = dict(zip(ARMS, ("black", "tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple")))


def colour(arm: str, known: tuple[str, ...] = ()) -> str:
    """An arm's line colour: a control shares its source's."""
    if arm in COLOURS:
        return COLOURS[arm]
    control = control_of(arm, known)
    base = control[1] if control else arm
    names = list(CANDIDATES)
    palette = ("tab:cyan", "tab:olive", "tab:brown", "tab:pink", "tab:gray")
    return palette[names.index(base) % len(palette)] if base in names else "tab:gray"


def time_to_quality(result: dict, path: Path) -> None:
    """Accuracy against training wall-clock and against sample passes, one line per arm and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for arm, data in result["arms"].items():
        for i, curve in enumerate(data["curves"]):
            kwargs = dict(
                color=colour(arm, tuple(result["arms"])),
                alpha=0.8,
                marker="o",
                ms=3,
                lw=1,
                label=arm if i == 0 else None,
                ls="--" if arm.endswith("_budget") else ":" if arm.endswith("_random") else "-",
            )
            axes[0].plot([p["train_s"] for p in curve], [p["metric"] for p in curve], **kwargs)
            axes[1].plot([p["passes"] for p in curve], [p["metric"] for p in curve], **kwargs)
    for ax, xlabel in zip(axes, ("training wall-clock (s)", "sample passes trained")):
        if "target" in result:
            ax.axhline(result["target"], color="grey", ls="--", lw=1, label="target")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    low = min(p["metric"] for d in result["arms"].values() for c in d["curves"] for p in c[1:] or c)
    axes[0].set_ylim(max(0.0, low - 0.02), None)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(
        f"{result['task'].upper()}: {result['title']} ({result['mode']}; one line per seed)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
