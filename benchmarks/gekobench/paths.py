"""Where the benchmarks keep their results (JSON, committed) and their rendered pages."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"  # JSON only is committed; .md/.png beside it are rendered
DOCS = (
    ROOT / "docs" / "benchmarks"
)  # one markdown page per benchmark family (python -m benchmarks.render)
README = (
    ROOT / "README.md"
)  # its default-policy table is rendered too (python -m benchmarks.render)
