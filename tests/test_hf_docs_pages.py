"""The Trainer and accelerate pages' examples run as written: every ```python block of each page,
in order, in one namespace per page (pytest-markdown-docs conventions: ```python notest is
skipped), in a temporary working directory."""

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

DOCS = Path(__file__).resolve().parent.parent / "docs" / "integrations"
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    """The runnable Python blocks of a markdown page: fences ``python`` / ``py`` / ``python3``
    (with modifiers such as ``continuation``), without ``notest``."""
    blocks = []
    for match in FENCE.finditer(page.read_text()):
        words = match["info"].split()
        if words and words[0] in ("python", "py", "python3") and "notest" not in words[1:]:
            blocks.append(match["code"])
    return blocks


@pytest.mark.parametrize("name", ["trainer.md", "accelerate.md"])
def test_page_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    page = DOCS / name
    blocks = python_blocks(page)
    assert blocks, f"{name} has no runnable python block"
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(blocks, 1):
        exec(compile(code, f"{page}:block{number}", "exec"), namespace)
