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


def test_readme_default_policy_table_equals_a_fresh_render():
    from benchmarks.gekobench import default_policy
    from benchmarks.gekobench.paths import README, RESULTS
    from benchmarks.render import readme_with_table

    readme = README.read_text()
    assert default_policy.README_START in readme and default_policy.README_END in readme
    assert readme_with_table(readme, RESULTS) == readme, "README's table is stale: run python -m benchmarks.render"


def test_only_json_is_committed_under_results():
    tracked = subprocess.run(["git", "ls-files", "benchmarks/results"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked and all(p.endswith(".json") or p.endswith(".gitignore") for p in tracked), tracked
