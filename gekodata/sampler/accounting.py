"""The sampler's running account of its epochs: one :class:`EpochRecord` per planned epoch, with
folded reports counted into the current one."""

from __future__ import annotations

from collections.abc import Sequence

from ..diagnostics.efficiency import EfficiencyReport
from ..planning.record import EpochRecord


class EpochLedger:
    """A run's epoch records, one per planned epoch in planning order; the last is the current
    epoch's. The sampler adds a record per plan and counts folded reports into the current one."""

    def __init__(self, records: Sequence[EpochRecord] = ()) -> None:
        self.records: list[EpochRecord] = list(records)

    def adopt(self, record: EpochRecord) -> None:
        """Make ``record`` the current one, replacing an earlier record of the same epoch."""
        self.records = [r for r in self.records if r.epoch != record.epoch] + [record]

    def count(
        self,
        reported: int,
        audit_reported: int = 0,
        audit_unfrozen: int = 0,
        unplanned: int = 0,
    ) -> None:
        """Add folded reports (sample passes) to the current epoch; nothing before a first plan.
        ``unplanned``: of ``reported``, the passes for samples not in the epoch's plan."""
        if self.records:
            record = self.records[-1]
            record.reported += reported
            record.audit_reported += audit_reported
            record.audit_unfrozen += audit_unfrozen
            record.unplanned += unplanned

    def count_extra_pass(self) -> int:
        """Count one more pass over the current epoch's plan (iteration started again after a
        complete one); returns the epoch's extra passes so far (0 before a first plan)."""
        if not self.records:
            return 0
        self.records[-1].extra_passes += 1
        return self.records[-1].extra_passes

    def current(self, unfolded: int = 0) -> EpochRecord:
        """A copy of the current record with ``unfolded`` reports not yet folded added."""
        record = self.records[-1].copy()
        record.reported += unfolded
        return record

    def report(self, unfolded: int = 0) -> EfficiencyReport:
        """Every record (copies) as an :class:`EfficiencyReport`, see :meth:`current`."""
        return EfficiencyReport(
            [r.copy() for r in self.records[:-1]] + [self.current(unfolded)], pending=unfolded
        )
