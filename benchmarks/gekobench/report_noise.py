"""The label-noise benchmark's table and plot, rendered from its JSON (``noise_<task>.json``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ARMS = ("full", "gekodata", "gekodata_guard", "infobatch")


COLOURS = dict(zip(ARMS, ("black", "tab:red", "tab:purple", "tab:blue")))


def table(result: dict) -> str:
    """Markdown: one row per noise rate and arm (mean ± std over seeds, Δ paired against full)."""
    std = lambda a: float(np.std(a, ddof=1)) if len(a) > 1 else 0.0  # noqa: E731
    lines = [
        f"**Label noise on {result['task'].upper()} — {result['title']}** ({result['mode']} mode, "
        f"{len(result['seeds'])} seeds, {result['config']['epochs']} epochs, clean test accuracy; "
        f"{result['date']}, {result['machine']})",
        "",
        "| noise | arm | clean test accuracy | Δ vs full (paired) | sample passes | vs full "
        "| SUSPECT precision | SUSPECT recall | flips among HARD (last plan) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rate_result in result["rates"]:
        arms = rate_result["arms"]
        full = arms.get("full")
        for arm in ARMS:
            if arm not in arms:
                continue
            d = arms[arm]
            acc = np.array(d["final_metric"], dtype=float)
            passes = np.array(d["sample_passes"], dtype=float)
            delta = acc - np.array(full["final_metric"], dtype=float) if full else np.zeros(1)
            ref = np.mean(full["sample_passes"]) if full else passes.mean()
            sus = [s for s in d["suspects"] if s and arm == "gekodata_guard"]
            prec = f"{np.mean([s['precision'] for s in sus]):.2f}" if sus else "—"
            rec = f"{np.mean([s['recall'] for s in sus]):.2f}" if sus else "—"
            shares = [
                c[-1]["hard_flipped_share"]
                for c in d["curves"]
                if c and "hard_flipped_share" in c[-1]
            ]
            share = f"{np.mean(shares):.2f}" if shares else "—"
            lines.append(
                f"| {rate_result['rate']:.0%} | {arm} | {acc.mean():.4f} ± {std(acc):.4f} | "
                f"{delta.mean():+.4f} ± {std(delta):.4f} | {passes.mean():.0f} | "
                f"{passes.mean() / ref - 1:+.1%} | {prec} | {rec} | {share} |"
            )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Clean test accuracy against passes, and SUSPECT precision / recall per epoch, per rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = result["rates"]
    fig, axes = plt.subplots(2, len(rates), figsize=(6 * len(rates), 8), squeeze=False)
    for col, rate_result in enumerate(rates):
        ax_acc, ax_pr = axes[0][col], axes[1][col]
        for arm, data in rate_result["arms"].items():
            for i, curve in enumerate(data["curves"]):
                ax_acc.plot(
                    [p["passes"] for p in curve],
                    [p["metric"] for p in curve],
                    color=COLOURS[arm],
                    marker="o",
                    ms=3,
                    lw=1,
                    alpha=0.8,
                    label=arm if i == 0 else None,
                )
                if arm == "gekodata_guard":
                    epochs = [p["epoch"] for p in curve]
                    ax_pr.plot(
                        epochs,
                        [p["suspect"]["precision"] for p in curve],
                        color="tab:purple",
                        lw=1,
                        label="SUSPECT precision" if i == 0 else None,
                    )
                    ax_pr.plot(
                        epochs,
                        [p["suspect"]["recall"] for p in curve],
                        color="tab:purple",
                        ls="--",
                        lw=1,
                        label="SUSPECT recall" if i == 0 else None,
                    )
                if arm == "gekodata":
                    ax_pr.plot(
                        [p["epoch"] for p in curve],
                        [p["hard_flipped_share"] for p in curve],
                        color="tab:red",
                        lw=1,
                        label="flips among HARD (no guard)" if i == 0 else None,
                    )
        ax_acc.set_title(f"{rate_result['rate']:.0%} label noise")
        ax_acc.set_xlabel("sample passes trained")
        ax_acc.set_ylabel("clean test accuracy")
        ax_acc.grid(alpha=0.3)
        ax_acc.legend(fontsize=8, loc="lower right")
        ax_pr.axhline(0.7, color="grey", ls=":", lw=1)
        ax_pr.set_xlabel("epoch (at its plan)")
        ax_pr.set_ylim(0, 1.02)
        ax_pr.grid(alpha=0.3)
        ax_pr.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"{result['task'].upper()} with label noise: {result['title']} (one line per seed)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
