"""Selective backward over the rows of a batch.

The public import path; the code lives in :mod:`gekodata.gating.selective`."""

from .gating.selective import *  # noqa: F403
from .gating.selective import __all__  # noqa: F401
