"""The RL prompt-selection benchmark's table and plot, rendered from its JSON (``rl.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("uniform", "dapo", "gekodata")
COLOURS = {"uniform": "black", "dapo": "tab:blue", "gekodata": "tab:red"}


def markdown(report: dict[str, Any]) -> str:
    """Markdown: one row per warm start and arm (held-out exact match, rollouts, zero-advantage groups)."""
    cfg, m = report["config"], report["machine"]
    lines = [
        f"**RL prompt selection — GRPO on reasoning-gym chain_sum, 2-layer Llama from a warm start** "
        f"({'quick' if cfg['quick'] else 'full'} mode, {len(cfg['seeds'])} seeds, {cfg['epochs']} epochs over "
        f"{cfg['train_size']} prompts, G = {cfg['group']}, held-out {cfg['eval_size']} questions; "
        f"{report['date']}, {m['platform'].split('-')[0]} {m['processor']}, {m['cpu_count']} CPU cores, "
        f"torch {m['torch']} ({cfg['threads']} thread))",
        "",
        "| warm start | arm | held-out exact match (last epoch) | Δ vs uniform (paired) | rollouts | vs uniform | "
        "zero-advantage groups, share per epoch | zero-advantage groups generated | wall-clock |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for regime in report["regimes"]:
        warm = f"{regime['held_out_before']:.2f}"
        for arm, s in regime["summary"].items():
            delta = (
                "—"
                if arm == "uniform" or s["delta_vs_uniform_mean"] is None
                else f"{s['delta_vs_uniform_mean']:+.4f} ± {s['delta_vs_uniform_std']:.4f}"
            )
            saved = (
                "—"
                if arm == "uniform" or s["rollouts_saved_vs_uniform"] is None
                else f"{-s['rollouts_saved_vs_uniform']:+.1%}"
            )
            lines.append(
                f"| {warm} | {arm} | {s['final_exact_match_mean']:.4f} ± {s['final_exact_match_std']:.4f} | "
                f"{delta} | {s['rollouts_mean']:.0f} | {saved} | {s['zero_advantage_fraction_mean']:.1%} | "
                f"{s['zero_advantage_groups_total_mean']:.0f} | {s['wall_clock_s_mean']:.0f} s |"
            )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Per warm start: accuracy against rollouts, zero-advantage share and groups rolled out per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = report["regimes"]
    fig, axes = plt.subplots(len(regimes), 3, figsize=(15, 4.2 * len(regimes)), squeeze=False)
    for (ax_c, ax_z, ax_r), regime in zip(axes, regimes):
        for arm in report["config"]["arms"]:
            rs = [r for r in regime["runs"] if r["arm"] == arm]
            if not rs:
                continue
            x = np.mean([[0] + [e["rollouts"] for e in r["epochs"]] for r in rs], axis=0)
            y = np.array(
                [
                    [r["held_out_before"]] + [e["held_out_exact_match"] for e in r["epochs"]]
                    for r in rs
                ]
            )
            ax_c.plot(x, y.mean(0), "o-", color=COLOURS[arm], label=arm, markersize=4)
            ax_c.fill_between(
                x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), color=COLOURS[arm], alpha=0.15
            )
            epochs = np.arange(len(rs[0]["epochs"]))
            z = np.array([[e["zero_advantage_fraction"] for e in r["epochs"]] for r in rs])
            ax_z.plot(epochs, z.mean(0), "o-", color=COLOURS[arm], label=arm, markersize=4)
            g = np.array([[e["groups"] for e in r["epochs"]] for r in rs])
            ax_r.plot(epochs, g.mean(0), "o-", color=COLOURS[arm], label=arm, markersize=4)
        name = f"warm start {regime['held_out_before']:.2f}"
        ax_c.set_xlabel("rollouts generated (completions)")
        ax_c.set_ylabel("held-out exact match")
        ax_c.set_title(f"{name}: accuracy vs rollouts (mean ± std)")
        ax_z.set_xlabel("epoch")
        ax_z.set_ylabel("share of groups with zero advantage")
        ax_z.set_title(f"{name}: zero-advantage groups generated")
        ax_r.set_xlabel("epoch")
        ax_r.set_ylabel("prompt groups rolled out")
        ax_r.set_ylim(bottom=0)
        ax_r.set_title(f"{name}: groups rolled out per epoch")
        for ax in (ax_c, ax_z, ax_r):
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
