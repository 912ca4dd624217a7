"""Bucket codes, and the value checks the policies share.

A policy sorts every sample into a :class:`Bucket` once per epoch; the sampler stores the codes
in the state store's flags (3 bits) and draws each sample at its bucket's weight. What puts a
sample in which bucket is the policy's rule: :class:`~gekodata.policy.BucketPolicy` applies
GEKO's rules (its module docstring), :class:`~gekodata.policy.InfoBatchPolicy` uses only
UNSEEN, LIGHT and FOCUS.
"""

from __future__ import annotations

import math
from enum import IntEnum

from ..store.layout import MAX_VISITS


class Bucket(IntEnum):
    """Bucket codes as stored in :class:`~gekodata.store.state_store.GEKOStateStore` (3 bits)."""

    UNSEEN = 0
    FREEZE = 1
    LIGHT = 2
    FOCUS = 3
    HARD = 4
    SUSPECT = 5


NUM_BUCKETS = len(Bucket)


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight {name} must be finite and >= 0, got {value}")
    return value


def _check_max_times_seen(value: int | None) -> int | None:
    """``max_times_seen`` as an int in [1, MAX_VISITS], or None; ``ValueError`` otherwise."""
    if value is None:
        return None
    value = int(value)
    if value < 1:
        raise ValueError(f"max_times_seen must be >= 1 or None, got {value}")
    if value > MAX_VISITS:
        raise ValueError(
            f"max_times_seen must be <= {MAX_VISITS} (gekodata.store.layout.MAX_VISITS), got {value}: the store "
            f"counts visits in uint16 and saturates at {MAX_VISITS}, so a larger limit could never be reached"
        )
    return value
