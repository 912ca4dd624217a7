"""The record the planner keeps of one epoch: what it planned, and (filled in by the sampler) what
was trained. Counts are sample passes, never estimates."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class EpochRecord:
    """One epoch of a run. Counts are sample passes; ``plan_seconds`` is wall-clock.

    ``planned`` and ``reported`` include the forgetting audit's draws; ``audit_planned`` and
    ``audit_reported`` count those alone, ``audit_unfrozen`` the audited samples whose loss had
    risen past the margin (they left FREEZE / pruning). ``data``: what the store said about the
    data when the epoch was planned (:meth:`DataDiagnosis.to_dict
    <gekodata.policy.diagnosis.DataDiagnosis.to_dict>`; None before any report).
    """

    epoch: int
    phase: str
    num_samples: int
    planned: int
    unique_planned: int
    pruned: int
    buckets: dict[str, int]
    plan_seconds: float
    reported: int = 0
    audit_planned: int = 0
    audit_reported: int = 0
    audit_unfrozen: int = 0
    data: dict[str, Any] | None = None

    def copy(self) -> EpochRecord:
        return dataclasses.replace(self, buckets=dict(self.buckets))


def records_from_dicts(rows: Sequence[dict[str, Any]]) -> list[EpochRecord]:
    return [EpochRecord(**row) for row in rows]
