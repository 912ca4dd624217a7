"""Forgetting audit: re-check a few frozen or pruned samples each epoch, restart forgotten ones.

Frozen (FREEZE) and pruned samples are never planned, so nothing would notice if the model
forgot them (Toneva et al., ICLR 2019: forgetting events). Each epoch the audit draws a random
fraction of them once; when such a sample's reported loss exceeds its loss EMA by more than a
margin it counts as forgotten and its state restarts from that report (not pruned, EMAs and
streaks reset, visits kept), so the next epoch classifies it afresh.

Two steps, both pure given their inputs: :meth:`ForgettingAudit.choose` at planning time (a
private generator seeded by (seed, epoch, 1), so switching audits on leaves the plan's own
randomness as it was) and :meth:`ForgettingAudit.check` when a sync window is folded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..arguments import check_unit_interval
from ..policy import Bucket
from ..store.state_store import GEKOStateStore

_AUDIT_STREAM = 1  # third seed word of the audit generator: independent of the plan's draws


@dataclass(frozen=True)
class AuditResult:
    """What one window's audit rows showed: ``reported`` rows re-checked audited samples;
    ``forgotten`` (int64 [k], sorted) must restart from this window (the store's
    ``update(..., restart=forgotten)``: EMAs and streaks start afresh, visits keep counting)."""

    reported: int
    forgotten: np.ndarray


class ForgettingAudit:
    """Audit settings and the samples still waiting for their audit report.

    Args:
        fraction: share (rounded up) of the eligible samples drawn each epoch; 0 disables.
        margin: loss units (nats for cross-entropy) by which an audited report must exceed the
            sample's loss EMA to count as forgotten.
        seed: the run's seed.
    """

    def __init__(self, fraction: float, margin: float, seed: int) -> None:
        check_unit_interval("audit_fraction", fraction)
        if not (math.isfinite(float(margin)) and float(margin) >= 0):
            raise ValueError(f"audit_margin must be finite and >= 0, got {margin}")
        self.fraction = float(fraction)
        self.margin = float(margin)
        self.seed = int(seed)
        self.pending: np.ndarray | None = None  # sorted int64: audits not yet reported

    def with_settings(
        self, *, fraction: float | None = None, margin: float | None = None
    ) -> ForgettingAudit:
        """A validated copy with new settings and the same pending audits."""
        other = ForgettingAudit(
            self.fraction if fraction is None else fraction,
            self.margin if margin is None else margin,
            self.seed,
        )
        other.pending = self.pending
        return other

    @property
    def enabled(self) -> bool:
        return self.fraction > 0

    def choose(
        self,
        store: GEKOStateStore,
        codes: np.ndarray,
        weights: np.ndarray,
        epoch: int,
        max_times_seen: int | None,
    ) -> np.ndarray:
        """This epoch's audits: sorted int64 indices, one draw each (does not change ``pending``).

        Candidates: seen samples that are frozen or pruned, have weight 0 (so the plan would not
        draw them) and are under ``max_times_seen``.
        """
        if not self.enabled:
            return np.empty(0, dtype=np.int64)
        eligible = ((codes == Bucket.FREEZE) | store.pruned) & (weights == 0) & store.seen
        if max_times_seen is not None:
            eligible &= store.visits < max_times_seen
        candidates = np.flatnonzero(eligible)
        num = min(len(candidates), math.ceil(self.fraction * len(candidates) - 1e-9))
        rng = np.random.default_rng([self.seed, int(epoch), _AUDIT_STREAM])
        chosen = (
            np.sort(candidates[rng.choice(len(candidates), num, replace=False)])
            if num
            else candidates[:0]
        )
        return chosen.astype(np.int64)

    def check(self, store: GEKOStateStore, idx: np.ndarray, loss: np.ndarray) -> AuditResult:
        """Audit the rows of a window before the window updates ``store`` (which it only
        reads): find the forgotten samples and drop every reported one from ``pending``."""
        none = AuditResult(0, np.empty(0, dtype=np.int64))
        if self.pending is None or len(self.pending) == 0:
            return none
        rows = np.isin(idx, self.pending)
        if not rows.any():
            return none
        audit_idx, audit_loss = idx[rows], loss[rows]
        # audit_idx may repeat a sample (reported twice in the window): no assume_unique here
        self.pending = self.pending[~np.isin(self.pending, audit_idx)]
        before = store.loss_of(audit_idx)
        forgotten = np.unique(audit_idx[audit_loss > before + np.float32(self.margin)])
        return AuditResult(int(rows.sum()), forgotten)
