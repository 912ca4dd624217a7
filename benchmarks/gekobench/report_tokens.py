"""The token-gating / selective-backward benchmark's table and plot, from its JSON (``tokens.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {
    "full": "black",
    "gekodata_topk": "tab:red",
    "random_tokens": "tab:green",
    "cggr_loss": "tab:blue",
    "sb_topk": "tab:red",
    "sb_random": "tab:green",
    "sb_store": "tab:orange",
    "cggr_model": "tab:blue",
}


METRICS = ("eval_loss", "exact_match", "token_accuracy")


def interpolate(curve: list[dict[str, Any]], t: float, key: str) -> float:
    """``key`` at training time ``t`` along the curve (linear between evaluations)."""
    xs = [p["train_s"] for p in curve]
    ys = [p[key] for p in curve]
    return float(np.interp(t, xs, ys))


def equal_time(part: dict[str, Any]) -> None:
    """Per seed: metrics of every arm at the shortest total training time among the arms."""
    arms = part["arms"]
    seeds = sorted(
        {s for a in arms.values() for s, r in zip(a["seeds"], a["runs"]) if r["status"] == "ok"}
    )
    for seed in seeds:
        runs = [
            r
            for a in arms.values()
            for s, r in zip(a["seeds"], a["runs"])
            if s == seed and r["status"] == "ok"
        ]
        t_star = min(r["wall_clock_s"] for r in runs)
        for r in runs:
            r["at_equal_time"] = {
                "train_s": t_star,
                **{k: interpolate(r["curve"], t_star, k) for k in METRICS},
            }


def mean_std(values: list[float], digits: int = 3) -> str:
    """``mean ± std`` (ddof=1; 0 for one value) with ``digits`` decimals."""
    a = np.array(values, dtype=float)
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """Markdown: one table per part (mean ± std over seeds; Δ are paired per seed against full)."""
    out = [
        (
            f"**Token gating and selective backward** ({result['mode']} mode, {result['config']['model']}, "
            f"{len(result['config']['seeds'])} seeds; {result['date']}; {result['machine_line']}). "
            "Wall-clock is noisy (2 shared CPU cores); CPU s = this process's `process_time`."
        )
    ]
    for name, part in result["parts"].items():
        unit = "tokens" if name == "token_gating" else "samples"
        cfg = result["config"]
        if name == "token_gating":
            out.append(
                f"\n*Part A, token gating*: batch {cfg['batch_a']}, {cfg['steps_a']} steps, ratio 1.0 → "
                f"{cfg['floor']} over {cfg['warmup']} steps. Backward cost is the same in every arm.\n"
            )
        else:
            out.append(
                f"\n*Part B, selective backward*: batch {cfg['batch_b']}, keep {cfg['keep']}, "
                f"{cfg['steps_b']} steps.\n"
            )
        out.append(
            f"| arm | {unit} back-propagated | vs full | train wall-clock s | vs full | CPU s "
            "| scoring / fwd / bwd s | eval loss, same steps | Δ loss | exact match, same steps "
            "| eval loss, same wall-clock | exact match, same wall-clock |"
        )
        out.append("|---" * 12 + "|")
        arms = part["arms"]
        full_runs = {
            s: r for s, r in zip(arms["full"]["seeds"], arms["full"]["runs"]) if r["status"] == "ok"
        }
        key = "tokens_backpropagated" if name == "token_gating" else "samples_backpropagated"
        for arm, data in arms.items():
            ok = [(s, r) for s, r in zip(data["seeds"], data["runs"]) if r["status"] == "ok"]
            if not ok:
                reason = next((r["status"] for r in data["runs"]), "not run")
                out.append(f"| {arm} | {reason} |" + " |" * 10)
                continue
            runs = [r for _, r in ok]
            count = np.mean([r[key] for r in runs])
            wall = [r["wall_clock_s"] for r in runs]
            ref_count = np.mean([full_runs[s][key] for s, _ in ok if s in full_runs] or [np.nan])
            ref_wall = np.mean(
                [full_runs[s]["wall_clock_s"] for s, _ in ok if s in full_runs] or [np.nan]
            )
            delta = [
                r["final"]["eval_loss"] - full_runs[s]["final"]["eval_loss"]
                for s, r in ok
                if s in full_runs
            ]
            split = " / ".join(
                f"{np.mean([r[k] for r in runs]):.1f}"
                for k in ("scoring_s", "forward_s", "backward_s")
            )
            eq = [r.get("at_equal_time") or {} for r in runs]
            out.append(
                f"| {arm} | {count:.0f} | {count / ref_count - 1:+.0%} | {mean_std(wall, 1)} | "
                f"{np.mean(wall) / ref_wall - 1:+.0%} | {np.mean([r['process_time_s'] for r in runs]):.1f} | {split} | "
                f"{mean_std([r['final']['eval_loss'] for r in runs])} | {mean_std(delta) if delta else '—'} | "
                f"{mean_std([r['final']['exact_match'] for r in runs])} | "
                f"{mean_std([e.get('eval_loss', np.nan) for e in eq])} | "
                f"{mean_std([e.get('exact_match', np.nan) for e in eq])} |"
            )
    out.append(
        f"\nBefore training: eval loss {result['eval_before']['eval_loss']:.3f}, exact match "
        f"{result['eval_before']['exact_match']:.3f}. Same wall-clock = each seed's shortest training "
        "time among the part's arms, metrics interpolated between evaluations."
    )
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Eval loss against optimizer steps and against wall-clock, one line per arm and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for row, (name, part) in enumerate(result["parts"].items()):
        for arm, data in part["arms"].items():
            for i, run in enumerate(r for r in data["runs"] if r["status"] == "ok"):
                kw = {
                    "color": COLOURS.get(arm, "grey"),
                    "alpha": 0.8,
                    "marker": "o",
                    "ms": 3,
                    "lw": 1,
                    "label": arm if i == 0 else None,
                }
                axes[row, 0].plot(
                    [p["step"] for p in run["curve"]], [p["eval_loss"] for p in run["curve"]], **kw
                )
                axes[row, 1].plot(
                    [p["train_s"] for p in run["curve"]],
                    [p["eval_loss"] for p in run["curve"]],
                    **kw,
                )
        for col, xlabel in enumerate(("optimizer steps", "training wall-clock (s)")):
            axes[row, col].set_xlabel(xlabel)
            axes[row, col].set_ylabel("eval loss (answer tokens, log scale)")
            axes[row, col].set_yscale("log")
            axes[row, col].set_title(name)
            axes[row, col].grid(alpha=0.3)
        axes[row, 0].legend(fontsize=8)
    fig.suptitle(
        f"tokens benchmark ({result['mode']}, {result['config']['model']}; one line per seed)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
