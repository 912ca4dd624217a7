"""Load a script of ``examples/`` as a module (they are not a package), without touching sys.path."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
from types import ModuleType

from .paths import ROOT


def load_example(name: str) -> ModuleType:
    """``examples/<name>.py`` as module ``name`` (imported once; its prints at import are hidden)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    with contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
    return module
