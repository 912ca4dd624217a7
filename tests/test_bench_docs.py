"""The docs/benchmarks pages are exactly what ``python -m benchmarks.render`` makes of the committed
JSON under benchmarks/results (so tables and results never drift apart); only JSON is committed."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_pages_equal_a_fresh_render_of_the_committed_json():
    from benchmarks.gekobench import docs
    from benchmarks.gekobench.paths import DOCS, RESULTS

    pages = docs.pages(RESULTS)
    assert set(pages) == {p.name for p in DOCS.glob("*.md")}
    for name, text in pages.items():
        assert (DOCS / name).read_text() == text, f"{name} is stale: run python -m benchmarks.render"


def test_only_json_is_committed_under_results():
    tracked = subprocess.run(["git", "ls-files", "benchmarks/results"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked and all(p.endswith(".json") or p.endswith(".gitignore") for p in tracked), tracked
