"""Data maps and store summaries.

The public import path; the code lives in :mod:`gekodata.diagnostics.datamap`."""

from .diagnostics.datamap import *  # noqa: F403
from .diagnostics.datamap import __all__  # noqa: F401
