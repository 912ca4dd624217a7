"""The docs/benchmarks pages: one markdown page per benchmark family, rendered from the committed
JSON under benchmarks/results (``python -m benchmarks.render``); no benchmark run writes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import (
    default_choice,
    default_policy,
    report_noise,
    report_rl,
    report_rl_llm,
    report_tokens,
    results,
    tables,
)
from .stats import summarise
from .variants import STUDY_VARIANTS, VARIANTS

Renderer = Callable[[Path, str], str]  # (results folder, stem) -> markdown


def ttq_table(folder: Path, stem: str) -> str:
    """A time-to-quality or selection-study result's table."""
    result = results.read(folder / f"{stem}.json")
    summarise(result)
    return tables.time_to_quality(result)


def noise_table(folder: Path, stem: str) -> str:
    """A label-noise result's table."""
    return report_noise.table(results.read(folder / f"{stem}.json"))


def rl_table(folder: Path, stem: str) -> str:
    """The RL benchmark's table."""
    return report_rl.markdown(results.read(folder / f"{stem}.json"))


def rl_llm_table(folder: Path, stem: str) -> str:
    """The real-LLM RL benchmark's tables."""
    return report_rl_llm.markdown(results.read(folder / f"{stem}.json"))


def tokens_table(folder: Path, stem: str) -> str:
    """The token benchmark's table (figures at equal wall-clock recomputed from the curves)."""
    result = results.read(folder / f"{stem}.json")
    for part in result["parts"].values():
        report_tokens.equal_time(part)
    return report_tokens.table(result)


SUMMARY_STEMS = [
    f"{t}_{v}{q}"
    for t, q in (("t2", ""), ("t3", ""), ("t1", ""), ("t1", "_quick"))
    for v in STUDY_VARIANTS
]


def summary_table(folder: Path, stem: str) -> str:
    """The selection summary over every saved selection-study result."""
    return tables.selection_summary(folder, SUMMARY_STEMS)


def default_summary(folder: Path, stem: str) -> str:
    """The default policy against both controls, per task and variant (default_policy.json)."""
    return default_policy.table(results.read(folder / f"{stem}.json"))


def score_table(folder: Path, stem: str) -> str:
    """select_default's ranking of the label-free grid."""
    return default_choice.score_table(results.read(folder / f"{stem}.json"))


def check_table(folder: Path, stem: str) -> str:
    """select_default's checks of the candidates on the reported results."""
    return default_choice.check(folder)[0]


@dataclass(frozen=True)
class Family:
    """One docs page: its title, what it measures and the command that runs it, and its tables
    (result stem, renderer; a table whose JSON is missing is left out)."""

    page: str
    title: str
    about: str
    sections: tuple[tuple[str, Renderer], ...]


FAMILIES = (
    Family(
        "default_policy.md",
        "The default policy against both controls",
        "`python -m benchmarks.default_policy --task t4 t3 t2` (issue 21): `AutoPolicy()`, the "
        "default of `WeightedBucketSampler(ds)`, with the loop reporting `report(signals, idx)`, "
        "against a random subset of its own epoch sizes and a same-budget run on five training "
        "sets per task (clean, 20% flipped labels, redundant, imbalanced, noisy and imbalanced), "
        "seeds 0-4, paired by seed; its settings were chosen on T4 with seeds 100-104 only. "
        "`gekodata` (GEKO's mountain, the default before) and `infobatch` run beside it.",
        (
            ("default_policy", default_summary),
            *((f"default_{t}_{v}", ttq_table) for t in ("t4", "t3", "t2") for v in VARIANTS),
        ),
    ),
    Family(
        "time_to_quality.md",
        "Time to quality",
        "`python -m benchmarks.time_to_quality` (DESIGN.md §4): every arm from the same init, "
        "same optimizer and LR rule; final test accuracy after the last step, training wall-clock, "
        "sample passes, time to the target fixed from the full arm.",
        tuple((s, ttq_table) for s in ("t1", "t2", "t1_quick", "t2_quick")),
    ),
    Family(
        "selection.md",
        "Selection study (noisy, redundant, imbalanced training sets)",
        "`python -m benchmarks.time_to_quality --task t2 --variant all` (and t3, t1): each selection "
        "arm against full, its random subset of the same epoch sizes and its same-budget run, "
        "paired by seed.",
        (("selection_summary", summary_table), *((s, ttq_table) for s in SUMMARY_STEMS)),
    ),
    Family(
        "select_default.md",
        "Choosing the default policy",
        "`python -m benchmarks.select_default` (T2 variants, tuning seeds 100-104), then "
        "`--check` on the reported results.",
        (
            ("select_default", score_table),
            ("select_default_check", check_table),
            *((f"select_default_{v}", ttq_table) for v in STUDY_VARIANTS),
        ),
    ),
    Family(
        "noise.md",
        "Label noise",
        "`python -m benchmarks.noise --task t2` / `--task t1`: symmetric noise in the training "
        "labels, clean test labels; SUSPECT precision and recall against the injected flips.",
        (("noise_t2", noise_table), ("noise_t1", noise_table)),
    ),
    Family(
        "rl.md",
        "RL prompt selection",
        "`python -m benchmarks.rl --jobs 2` (issue 23): GRPO on reasoning-gym chain_sum and "
        "basic_arithmetic with a 2-layer Llama from a warm start; uniform, DAPO-style filtering, "
        "GRESO-style pre-rollout skipping and gekodata's PromptPolicy (defaults, and `recheck=0`), 3 seeds, "
        "paired by seed.",
        (("rl", rl_table),),
    ),
    Family(
        "rl_llm.md",
        "RL prompt selection on a real LLM",
        "`python -m benchmarks.rl_llm --jobs 2` (issue 23): SmolLM2-135M-Instruct with LoRA through "
        "TRL's `GRPOTrainer` (uniform: every prompt every epoch) and `GekoGRPOTrainer` "
        "(`PromptPolicy` defaults), `examples/grpo_reasoning.py` with `--eval-every-epoch`, same "
        "seed, data and hyperparameters (the header line gives the committed run's seeds, device "
        "and sizes; the 3-seed comparisons with a 2-layer model are on the "
        "[RL prompt selection](rl.md) page).",
        (("rl_llm", rl_llm_table),),
    ),
    Family(
        "tokens.md",
        "Token gating and selective backward",
        "`python -m benchmarks.tokens`: SmolLM2-135M LoRA; token gating and selective backward "
        "against full and random controls.",
        (("tokens", tokens_table),),
    ),
    Family(
        "rl_sim.md",
        "RL prompt selection: simulation",
        "`python -m benchmarks.rl_sim` (issue 23): a numpy GRPO world of 2,000 prompts in topics "
        "(too easy, learnable, out of reach, and out-of-reach prompts that become learnable as the "
        "model progresses; `benchmarks/gekobench/rl_sim.py` documents the learning model), G = 8, "
        "10 epochs, seeds 0-2, paired by seed; PromptPolicy's settings were chosen on seeds "
        "100-102. Arms: uniform, DAPO-style dynamic sampling, GRESO-style pre-rollout skipping, "
        "PromptPolicy before issue 23, its defaults after, and with `tags=` the topics.",
        (("rl_sim", __import__(f"{__package__}.report_rl_sim", fromlist=["table"]).table),),
    ),
)
HEADER = (
    "<!-- rendered by `python -m benchmarks.render` from benchmarks/results/*.json; do not edit -->"
)


def page(family: Family, folder: Path) -> str:
    """The markdown of one family's page."""
    parts = [f"# {family.title}", HEADER, family.about]
    for stem, render in family.sections:
        if (folder / f"{stem}.json").exists() or render in (summary_table, check_table):
            parts.append(f"## {stem}\n\n{render(folder, stem).rstrip()}")
    return "\n\n".join(parts) + "\n"


def pages(folder: Path) -> dict[str, str]:
    """Every page, by file name."""
    return {family.page: page(family, folder) for family in FAMILIES}


def write(folder: Path, docs: Path) -> list[Path]:
    """Write every page under ``docs``; the paths written."""
    docs.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages(folder).items():
        (docs / name).write_text(text)
        written.append(docs / name)
    return written
