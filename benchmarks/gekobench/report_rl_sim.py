"""The GRPO prompt-selection simulation's table and plot, rendered from its JSON (``rl_sim.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .report_rl import COLOURS
from .stats import pm_of as _pm


def markdown(report: dict[str, Any]) -> str:
    """One row per arm: rollouts and final pass rate against uniform (paired by seed), the share
    of zero-advantage groups trained, and how fast prompts that turned learnable came back."""
    cfg = report["config"]
    lines = [
        f"**GRPO prompt-selection simulation** ({cfg['prompts']} prompts in topics of 20, G = "
        f"{cfg['group']}, {cfg['epochs']} epochs, seeds {cfg['seeds']}; settings chosen on seeds "
        f"{cfg['tuning_seeds']}; {report['date']})",
        "",
        "| arm | rollouts vs uniform | final mean pass rate | Δ vs uniform (paired) | "
        "zero-advantage share of groups trained | zero-advantage groups generated | "
        "turned learnable while skipped: rolled out within 2 epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, s in report["summary"].items():
        lines.append(
            f"| {arm} | {_pm(s['rollouts_vs_uniform_mean'], s['rollouts_vs_uniform_std'], '.3f')} | "
            f"{s['final_pass_rate_mean']:.4f} | "
            f"{_pm(s['delta_vs_uniform_mean'], s['delta_vs_uniform_std'], '+.4f')} | "
            f"{s['zero_advantage_trained_share_mean']:.1%} | {s['zero_advantage_generated_mean']:.0f} | "
            f"{_pm(s['back_within_2_epochs_mean'], s['back_within_2_epochs_std'], '.2f')} "
            f"(of {s['unlocked_while_skipped_mean']:.0f}) |"
        )
    return "\n".join(lines) + "\n"


def table(folder: Path, stem: str) -> str:
    """The docs page's table (a :class:`~benchmarks.gekobench.docs.Family` renderer)."""
    import json

    return markdown(json.loads((folder / f"{stem}.json").read_text()))


def plot(report: dict[str, Any], path: Path) -> None:
    """Mean pass rate against rollouts, and groups rolled out per epoch, per arm (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_g) = plt.subplots(1, 2, figsize=(12, 4.2))
    for arm in report["summary"]:
        rs = [r for r in report["runs"] if r["arm"] == arm]
        x = np.mean([[e["rollouts"] for e in r["epochs"]] for r in rs], axis=0)
        y = np.mean([[e["pass_rate"] for e in r["epochs"]] for r in rs], axis=0)
        g = np.mean([[e["groups"] for e in r["epochs"]] for r in rs], axis=0)
        ax_p.plot(x, y, "o-", color=COLOURS.get(arm), label=arm, markersize=3)
        ax_g.plot(np.arange(len(g)), g, "o-", color=COLOURS.get(arm), label=arm, markersize=3)
    ax_p.set_xlabel("rollouts generated (completions)")
    ax_p.set_ylabel("mean pass rate over all prompts")
    ax_g.set_xlabel("epoch")
    ax_g.set_ylabel("prompt groups rolled out")
    for ax in (ax_p, ax_g):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
