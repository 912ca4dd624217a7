"""Every ```python block in README.md and docs/**/*.md runs, and the Example sections of the main
public classes' docstrings pass as doctests.

A page's blocks run in order in one namespace (a later block may use what an earlier one defined),
in a fresh temporary working directory, so that files a snippet writes land there. A block that
cannot run in a test (a multi-process launch, a GPU) is preceded by the line
``<!-- notest: why -->``; the reason is required. Other languages (bash, text) are not run.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
NOTEST = re.compile(r"^<!--\s*notest:\s*(.*?)\s*-->\s*$")
# what a page's examples may import from the optional extras (.ci/run installs them all)
OPTIONAL = {"pytorch_lightning", "transformers", "torchdata", "matplotlib", "datasets", "trl"}


def code_blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """(first line number, language, code, notest reason or None) of each top-level fenced block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.groups()
        start = i + 1
        j = start
        while j < len(lines) and lines[j].strip() != fence:
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: fence {fence}{lang} is never closed")
        prev = lines[i - 1] if i > 0 else ""
        reason = NOTEST.match(prev)
        blocks.append((start, lang, "\n".join(lines[start:j]), reason.group(1) if reason else None))
        i = j + 1
    return blocks


def test_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/getting-started.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for line, lang, code, reason in code_blocks(page.read_text()):
        if lang != "python":
            continue
        if reason is not None:
            assert reason, (
                f"{page.name}:{line}: a notest mark needs a reason (<!-- notest: why -->)"
            )
            continue
        compiled = compile(code, f"{page.relative_to(ROOT)}:{line}", "exec")
        try:
            exec(compiled, namespace)
        except ModuleNotFoundError as err:
            if err.name not in OPTIONAL:
                raise
            pytest.skip(f"{page.name}:{line} needs {err.name} (an optional extra; CI has it)")


def test_which_policy_table_stays_in_the_readme():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Which policy for which data\n", 1)
    assert len(section) == 2, "README needs the section '## Which policy for which data'"
    body = section[1].split("\n## ", 1)[0]
    assert "| your case | pick |" in body and "default-policy table" in body


# the Example sections of the main public classes' docstrings (rendered by mkdocstrings)
DOCTESTED = ["WeightedBucketSampler", "PruningDataset", "GEKOStateStore", "BucketPolicy"]


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples(name, tmp_path, monkeypatch):
    import gekodata

    monkeypatch.chdir(tmp_path)
    obj = getattr(gekodata, name)
    finder = doctest.DocTestFinder(recurse=False)
    tests = [t for t in finder.find(obj, name, globs={}) if t.examples]
    assert tests, f"{name}'s docstring has no Examples section"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
