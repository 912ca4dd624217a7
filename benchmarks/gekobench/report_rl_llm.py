"""The real-LLM RL prompt-selection benchmark (``rl_llm.json``): its summary, tables and plot.

One run per (arm, seed) is ``examples/grpo_reasoning.py``'s summary with ``--eval-every-epoch``
reduced to the figures below; :func:`summarise` pairs every arm with uniform's run of the same seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .report_rl import COLOURS
from .rl_grpo import rollouts_to_reach

ARMS = ("uniform", "gekodata")


def run_record(arm: str, seed: int, summary: dict[str, Any]) -> dict[str, Any]:
    """One run's figures from the example's summary (``--eval-every-epoch``): held-out exact match
    before and after every epoch against the rollouts generated so far, the zero-advantage share of
    the groups each epoch rolled out (TRL's ``frac_reward_zero_std``, one value per optimizer step
    of whole groups), optimizer steps and training seconds (held-out evaluations excluded)."""
    before = summary["eval_before"]
    epochs = [
        {
            "epoch": e["epoch"],
            "rollouts": e["rollouts"],
            "held_out_exact_match": e["exact_match"],
            "held_out_score": e["score"],
            "zero_advantage_fraction": e["frac_reward_zero_std"],
            "reward": e["reward"],
            "optimizer_steps": e["optimizer_steps"],
            "train_seconds": e["train_seconds"],
        }
        for e in summary["epochs"]
    ]
    zero = [z for z in summary["frac_reward_zero_std"] if z is not None]
    record: dict[str, Any] = {
        "arm": arm,
        "seed": seed,
        "held_out_before": before["exact_match"],
        "held_out_score_before": before["score"],
        "final_exact_match": summary["eval_after"]["exact_match"],
        "final_score": summary["eval_after"]["score"],
        "rollouts": summary["rollouts"],
        "full_data_rollouts": summary["full_data_rollouts"],
        "optimizer_steps": summary["optimizer_steps"],
        "zero_advantage_fraction": float(np.mean(zero)) if zero else None,
        "wall_clock_s": summary["seconds"]["train"],
        "total_s": summary["seconds"]["total"],
        "seconds_per_step": summary["seconds"]["train"] / max(summary["optimizer_steps"], 1),
        "epochs": epochs,
        "examples_after": summary["eval_after"]["examples"],
    }
    if "efficiency_report" in summary:
        record["planned_per_epoch"] = [e["planned"] for e in summary["efficiency_report"]["epochs"]]
    return record


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm and seed, against uniform's run of the same seed: rollouts and their ratio, final
    held-out exact match and the difference, rollouts to reach uniform's final exact match (the
    first epoch end at or above it; None when no epoch does) and uniform's own, wall-clock and its
    ratio, zero-advantage share."""
    base = {r["seed"]: r for r in runs if r["arm"] == "uniform"}
    out: dict[str, Any] = {}
    for r in runs:
        u = base.get(r["seed"])
        paired: dict[str, Any] = dict.fromkeys(
            (
                "rollouts_vs_uniform",
                "delta_vs_uniform",
                "uniform_final",
                "rollouts_to_uniform_final",
                "uniform_rollouts_to_its_final",
                "wall_clock_vs_uniform",
            )
        )
        if u is not None:
            level = float(u["final_exact_match"])
            paired = {
                "rollouts_vs_uniform": r["rollouts"] / u["rollouts"],
                "delta_vs_uniform": r["final_exact_match"] - level,
                "uniform_final": level,
                "rollouts_to_uniform_final": rollouts_to_reach(r, level),
                "uniform_rollouts_to_its_final": rollouts_to_reach(u, level),
                "wall_clock_vs_uniform": r["wall_clock_s"] / u["wall_clock_s"],
            }
        out.setdefault(r["arm"], {})[str(r["seed"])] = {
            "rollouts": r["rollouts"],
            "held_out_before": r["held_out_before"],
            "final_exact_match": r["final_exact_match"],
            "wall_clock_s": r["wall_clock_s"],
            **paired,
            "zero_advantage_fraction": r["zero_advantage_fraction"],
            "optimizer_steps": r["optimizer_steps"],
            "seconds_per_step": r["seconds_per_step"],
        }
    return out


def _opt(value: float | None, fmt: str) -> str:
    return "—" if value is None else f"{value:{fmt}}"


def markdown(report: dict[str, Any]) -> str:
    """Markdown: one row per (seed, arm), then the per-epoch curves."""
    cfg, m = report["config"], report["machine"]
    heads = dict.fromkeys(str(r.get("git_head", cfg["git_head"]))[:10] for r in report["runs"])
    lines = [
        f"**RL prompt selection on a real LLM — {cfg['model']} + LoRA (r = {cfg['lora_r']}) through "
        f"TRL's GRPOTrainer (uniform) and GekoGRPOTrainer (gekodata), reasoning-gym {cfg['task']} "
        f"{cfg['task_config']}** ({'quick' if cfg['quick'] else 'full'} mode, seed"
        f"{'s' * (len(cfg['seeds']) > 1)} {', '.join(map(str, cfg['seeds']))}, {cfg['epochs']} epochs "
        f"over {cfg['train_size']} prompts, G = {cfg['num_generations']}, {cfg['batch_size']} "
        f"completions per step, up to {cfg['max_completion_length']} new tokens, lr {cfg['lr']:g}, "
        f"held-out {cfg['eval_size']} questions; {report['date']}, {cfg['device']}, "
        f"{m['platform'].split('-')[0]} {m['processor']}, {m['cpu_count']} CPU cores, torch "
        f"{m['torch']} ({cfg['threads']} thread per arm, {cfg['jobs']} arm"
        f"{'s' * (cfg['jobs'] > 1)} at a time); gekodata at {', '.join(heads)})",
        "",
        "Every arm of a seed starts from the same weights, data and hyperparameters; they differ only "
        "in which prompts are rolled out. *Held-out*: greedy exact match (`score_answer` = 1). "
        "*To reach uniform's final*: rollouts by the first epoch end whose held-out exact match is at "
        "or above uniform's last one (uniform's own in brackets). *Zero-advantage share*: TRL's "
        "`frac_reward_zero_std`, the groups whose completions were all rewarded alike, averaged over "
        "optimizer steps. *Wall-clock*: training only (rollouts, rewards, updates, selection; the "
        "held-out evaluations excluded), with the seconds per optimizer step.",
        "",
        *(
            [
                f"One seed: one run per arm and no spread to judge differences by; one held-out "
                f"question is {1 / cfg['eval_size']:.3f} of exact match.",
                "",
            ]
            if len(cfg["seeds"]) == 1
            else []
        ),
        "| seed | arm | held-out before | held-out after | Δ vs uniform | rollouts | vs uniform | "
        "to reach uniform's final | zero-advantage share | wall-clock | vs uniform | s / step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, seeds in report["summary"].items():
        for seed, s in seeds.items():
            base = arm == "uniform"
            reach = s["rollouts_to_uniform_final"]
            own = "" if base else f" ({_opt(s['uniform_rollouts_to_its_final'], 'd')})"
            lines.append(
                f"| {seed} | {arm} | {s['held_out_before']:.3f} | {s['final_exact_match']:.3f} | "
                f"{'—' if base else _opt(s['delta_vs_uniform'], '+.3f')} | {s['rollouts']} | "
                f"{'—' if base else _opt(s['rollouts_vs_uniform'], '.3f')} | "
                f"{'not reached' if reach is None else reach}{own}"
                f"{' (uniform ended at or below the start)' if reach == 0 else ''} | "
                f"{_opt(s['zero_advantage_fraction'], '.1%')} | {s['wall_clock_s']:.0f} s | "
                f"{'—' if base else _opt(s['wall_clock_vs_uniform'], '.3f')} | "
                f"{s['seconds_per_step']:.1f} |"
            )
    epochs = cfg["epochs"]
    lines += [
        "",
        "Per epoch: held-out exact match after the epoch, in brackets the rollouts generated so far "
        "and the epoch's zero-advantage share.",
        "",
        "| seed | arm | start | " + " | ".join(f"epoch {e + 1}" for e in range(epochs)) + " |",
        "|---|---|---|" + "---|" * epochs,
    ]
    for r in report["runs"]:
        cells = [
            f"{e['held_out_exact_match']:.3f} ({e['rollouts']}, "
            f"{_opt(e['zero_advantage_fraction'], '.0%')})"
            for e in r["epochs"]
        ]
        cells += ["—"] * (epochs - len(cells))
        lines.append(
            f"| {r['seed']} | {r['arm']} | {r['held_out_before']:.3f} | " + " | ".join(cells) + " |"
        )
    plans = [r for r in report["runs"] if "planned_per_epoch" in r]
    if plans:
        lines += ["", "Prompts gekodata planned per epoch (of " + f"{cfg['train_size']}):", ""]
        lines += [
            f"* seed {r['seed']}: {', '.join(map(str, r['planned_per_epoch']))}" for r in plans
        ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Held-out exact match against rollouts (uniform's final level dashed) and against training
    wall-clock, one line per arm and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_t) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    labelled: set[str] = set()
    for r in report["runs"]:
        colour = COLOURS.get(r["arm"], "tab:gray")
        y = [r["held_out_before"]] + [e["held_out_exact_match"] for e in r["epochs"]]
        label = None if r["arm"] in labelled else f"{r['arm']} (one line per seed)"
        labelled.add(r["arm"])
        ax_r.plot([0] + [e["rollouts"] for e in r["epochs"]], y, "o-", color=colour, label=label)
        ax_t.plot(
            [0] + [e["train_seconds"] for e in r["epochs"]], y, "o-", color=colour, label=label
        )
        if r["arm"] == "uniform":
            for ax in (ax_r, ax_t):
                ax.axhline(r["final_exact_match"], color=colour, linestyle="--", linewidth=0.8)
    cfg = report["config"]
    ax_r.set_xlabel("rollouts generated (completions)")
    ax_t.set_xlabel("training wall-clock (s)")
    ax_r.set_ylabel("held-out exact match")
    for ax in (ax_r, ax_t):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"GRPO, {cfg['model']} + LoRA, {cfg['task']}: uniform (GRPOTrainer) vs gekodata "
        f"(GekoGRPOTrainer), {cfg['device']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
