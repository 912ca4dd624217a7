"""Token selection inside a causal-LM batch.

The public import path; the code lives in :mod:`gekodata.gating.tokens`."""

from .gating.tokens import *  # noqa: F403
from .gating.tokens import __all__  # noqa: F401
