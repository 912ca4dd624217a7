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

    Two counts that are 0 in a correct loop (the sampler warns when they are not):
    ``unplanned``: of ``reported``, the passes for samples that were not in the epoch's plan (an
    evaluation pass reported as training, indices of another split), counted at sync points.
    ``extra_passes``: how many times iteration over this epoch's plan started again after a
    pass had run to its end with reports in between (a loop that never calls ``set_epoch``).
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
    unplanned: int = 0
    extra_passes: int = 0

    def copy(self) -> EpochRecord:
        return dataclasses.replace(self, buckets=dict(self.buckets))


def records_from_dicts(rows: Sequence[dict[str, Any]]) -> list[EpochRecord]:
    return [EpochRecord(**row) for row in rows]
