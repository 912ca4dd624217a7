"""Selective backward over the rows of a batch: the public import path; the code lives in :mod:`gekodata.gating.selective`."""
from .gating.selective import *  # noqa: F403
from .gating.selective import __all__  # noqa: F401
