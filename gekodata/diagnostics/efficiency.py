"""Efficiency report: what each epoch planned and what was really trained.

Every figure is counted, never estimated: ``planned`` is the length of the epoch's index stream,
``reported`` the number of per-sample signals the training loop reported while that epoch was
current (sample passes actually trained), and the full-data baseline is ``num_samples`` passes
per epoch.

Two counts are 0 in a correct loop and the table shows them only when they are not:
``unplanned`` (reported passes for samples not in the epoch's plan, e.g. an evaluation pass) and
the epoch's ``extra_passes`` (its plan iterated again without ``set_epoch``); an epoch with extra
passes has no saving to state (``saved`` shows ``n/a``), and the summary says what went wrong
instead of printing a negative saving.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..planning.record import EpochRecord, records_from_dicts
from ..policy.diagnosis import DataDiagnosis

BUCKET_ORDER = ("UNSEEN", "FREEZE", "LIGHT", "FOCUS", "HARD", "SUSPECT")
BUCKET_COLORS = {
    "UNSEEN": "#9e9e9e",
    "FREEZE": "#3498db",
    "LIGHT": "#2ecc71",
    "FOCUS": "#f39c12",
    "HARD": "#e74c3c",
    "SUSPECT": "#8e44ad",
}  # plots of buckets


@dataclass
class EfficiencyReport:
    """Per-epoch records with totals. ``str()`` gives a table; :meth:`to_dict` a JSON-able dict.

    ``pending``: reported sample passes counted here but not yet folded into the store (the store, and a
    data map of it, show the state before them until the next sync point). ``data``: what the
    store says about the data now (:class:`~gekodata.policy.diagnosis.DataDiagnosis`; each
    epoch's record holds the same as of its plan)."""

    epochs: list[EpochRecord] = field(default_factory=list)
    pending: int = 0
    data: DataDiagnosis | None = None

    @property
    def full_data_passes(self) -> int:
        """Passes a full-data run of the same epochs would train: sum of num_samples."""
        return sum(r.num_samples for r in self.epochs)

    @property
    def trained_passes(self) -> int:
        """Sample passes actually reported."""
        return sum(r.reported for r in self.epochs)

    @property
    def planned_passes(self) -> int:
        return sum(r.planned for r in self.epochs)

    @property
    def audit_passes(self) -> int:
        """Passes spent re-checking frozen and pruned samples (included in trained_passes)."""
        return sum(r.audit_reported for r in self.epochs)

    @property
    def unplanned_passes(self) -> int:
        """Reported passes for samples not in their epoch's plan (included in trained_passes)."""
        return sum(r.unplanned for r in self.epochs)

    @property
    def repeated_epochs(self) -> list[EpochRecord]:
        """The epochs whose plan was iterated again without ``set_epoch`` (extra_passes > 0)."""
        return [r for r in self.epochs if r.extra_passes]

    @property
    def fraction_saved(self) -> float:
        """1 - trained / full-data passes over the epochs recorded (0.0 if none)."""
        full = self.full_data_passes
        return 1.0 - self.trained_passes / full if full else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": [dataclasses.asdict(r) for r in self.epochs],
            "full_data_passes": self.full_data_passes,
            "planned_passes": self.planned_passes,
            "trained_passes": self.trained_passes,
            "audit_passes": self.audit_passes,
            "unplanned_passes": self.unplanned_passes,
            "fraction_saved": self.fraction_saved,
            "pending": self.pending,
            "data": None if self.data is None else self.data.to_dict(),
        }

    def __str__(self) -> str:
        audits = any(r.audit_planned for r in self.epochs)
        unplanned = bool(self.unplanned_passes)
        header = [
            "epoch",
            "phase",
            "planned",
            "unique",
            "trained",
            *(("unplanned",) if unplanned else ()),
            "full",
            "saved",
            "pruned",
            *(b.lower() for b in BUCKET_ORDER),
            *(("audit", "unfrozen") if audits else ()),
        ]
        rows = [header]
        for r in self.epochs:
            saved = 1.0 - r.reported / r.num_samples if r.num_samples else 0.0
            rows.append(
                [
                    str(r.epoch),
                    r.phase,
                    str(r.planned),
                    str(r.unique_planned),
                    str(r.reported),
                    *((str(r.unplanned),) if unplanned else ()),
                    str(r.num_samples),
                    "n/a" if r.extra_passes else f"{saved:.1%}",
                    str(r.pruned),
                    *(str(r.buckets.get(b, 0)) for b in BUCKET_ORDER),
                    *((str(r.audit_reported), str(r.audit_unfrozen)) if audits else ()),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
        if self.planned_passes and not self.trained_passes:
            lines.append(
                f"nothing was reported: {self.planned_passes} sample passes were planned and "
                "none reported, so nothing can be said about savings. Call sampler.report(loss, "
                "conf, correct, idx) after each training step (a Trainer subclass with its own "
                "compute_loss must call super().compute_loss or pass signals=)"
            )
            return "\n".join(lines)
        repeated = self.repeated_epochs
        for r in repeated:
            lines.append(
                f"more passes reported than planned for epoch {r.epoch}: {r.reported} reported, "
                f"{r.planned} planned, its plan iterated {r.extra_passes + 1} times: did the loop "
                "forget set_epoch? Call sampler.set_epoch(epoch) before each epoch; until then "
                "nothing is learned and no saving can be stated"
            )
        if not repeated:
            lines.append(
                f"trained {self.trained_passes} of {self.full_data_passes} full-data sample "
                f"passes: {self.fraction_saved:.1%} saved (counted from reports"
                + (f"; {self.audit_passes} of them forgetting audits)" if audits else ")")
            )
        if unplanned:
            lines.append(
                f"{self.unplanned_passes} reported passes were for samples not in their epoch's "
                "plan (evaluation passes reported as training?): report training passes only"
            )
        if self.pending:
            lines.append(
                f"{self.pending} reported sample passes are not yet in the store (sampler.store and data "
                "maps show the state before them): sampler.flush() folds them"
            )
        if self.data is not None:
            lines.extend(self.data.lines())
        return "\n".join(lines)

    def plot(self, path: str, title: str | None = None) -> None:
        """Write a PNG: bucket shares per epoch (stacked) and planned vs full epoch size.

        Needs matplotlib (``pip install gekodata[plot]``).
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "EfficiencyReport.plot needs matplotlib: pip install 'gekodata[plot]'"
            ) from exc
        epochs = [r.epoch for r in self.epochs]
        fig, (ax_b, ax_s) = plt.subplots(1, 2, figsize=(11, 4))
        bottom = [0.0] * len(epochs)
        for name in BUCKET_ORDER:
            shares = [
                r.buckets.get(name, 0) / r.num_samples if r.num_samples else 0.0
                for r in self.epochs
            ]
            ax_b.bar(epochs, shares, bottom=bottom, color=BUCKET_COLORS[name], label=name.lower())
            bottom = [b + s for b, s in zip(bottom, shares)]
        ax_b.set_xlabel("epoch")
        ax_b.set_ylabel("share of samples")
        ax_b.set_title("buckets at each epoch's plan")
        ax_b.legend(fontsize=8)
        ax_s.plot(epochs, [r.num_samples for r in self.epochs], "k--", label="full data")
        ax_s.plot(
            epochs, [r.planned for r in self.epochs], "o-", markersize=9, label="planned draws"
        )
        ax_s.plot(
            epochs,
            [r.reported for r in self.epochs],
            "s--",
            markersize=4,
            label="trained (reported)",
        )
        ax_s.set_xlabel("epoch")
        ax_s.set_ylabel("sample passes")
        ax_s.set_ylim(bottom=0)
        ax_s.set_title(f"epoch size: {self.fraction_saved:.1%} saved")
        ax_s.legend(fontsize=8)
        labels = [f"{r.epoch}\n{r.phase.lower()}" for r in self.epochs]
        for ax in (ax_b, ax_s):
            ax.set_xticks(epochs)
            ax.set_xticklabels(labels, fontsize=8)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


__all__ = ["BUCKET_COLORS", "BUCKET_ORDER", "EfficiencyReport", "EpochRecord", "records_from_dicts"]
