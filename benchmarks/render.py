"""Render the benchmark docs from the committed results: one page per family under docs/benchmarks.

    python -m benchmarks.render            # write docs/benchmarks/*.md from benchmarks/results/*.json
    python -m benchmarks.render --check    # exit 1 if a committed page differs from a fresh render
    python -m benchmarks.render --plots    # also draw the PNGs beside the JSON (not committed)

No benchmark run writes README.md or docs/benchmarks; this is the only step that writes the pages
and README.md's default-policy table (between its markers, from ``default_policy.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .gekobench import default_policy, docs, plots, report_noise, report_rl, report_tokens, results
from .gekobench.paths import DOCS, README, RESULTS
from .gekobench.stats import summarise


def _cost_plot(result: dict, png: Path) -> None:
    """The overhead / scale plots (their drawing code stays with those CLIs)."""
    from .gekobench import overhead_cost as overhead
    from .gekobench import scale_cost as scale
    from .gekobench import tiny_loop

    if result["benchmark"] == "scale":
        scale.plot(result["summary"], png)
    elif result["benchmark"] == "overhead":
        overhead.plot(result["rows"], png)
    else:
        tiny_loop.plot_rows(result["rows"], png)


def draw_plots(folder: Path) -> list[Path]:
    """A PNG beside every result JSON whose family has a plot."""
    drawn = []
    for path in sorted(folder.glob("*.json")):
        result = results.read(path)
        png = path.with_suffix(".png")
        if "arms" in result and "curves" in next(iter(result["arms"].values()), {}):
            summarise(result)
            plots.time_to_quality(result, png)
        elif "rates" in result:
            report_noise.plot(result, png)
        elif "regimes" in result:
            report_rl.plot(result, png)
        elif "parts" in result and "eval_before" in result:
            report_tokens.plot(result, png)
        elif result.get("benchmark") in ("overhead", "overhead_tiny", "scale"):
            _cost_plot(result, png)
        else:
            continue
        drawn.append(png)
    return drawn


def readme_with_table(readme: str, folder: Path) -> str:
    """README.md's text with its default-policy table rendered from ``default_policy.json``."""
    path = folder / "default_policy.json"
    return default_policy.with_readme_block(readme, results.read(path)) if path.exists() else readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the result JSON")
    parser.add_argument("--docs", type=Path, default=DOCS, help="folder of the rendered pages")
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--plots", action="store_true", help="also draw PNGs beside the JSON")
    args = parser.parse_args(argv)
    readme = README.read_text()
    fresh_readme = readme_with_table(readme, args.results)
    if args.check:
        stale = [
            name
            for name, text in docs.pages(args.results).items()
            if not (args.docs / name).exists() or (args.docs / name).read_text() != text
        ] + (["README.md"] if fresh_readme != readme else [])
        print(
            "up to date"
            if not stale
            else f"stale: {', '.join(stale)} (run python -m benchmarks.render)"
        )
        return 1 if stale else 0
    for path in docs.write(args.results, args.docs):
        print(f"wrote {path}")
    if fresh_readme != readme:
        README.write_text(fresh_readme)
        print(f"wrote the default-policy table in {README}")
    if args.plots:
        for path in draw_plots(args.results):
            print(f"drew {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
