"""Why a sample was (or was not) drawn this epoch: :class:`SampleExplanation`, built by
:meth:`WeightedBucketSampler.explain <gekodata.WeightedBucketSampler.explain>`.

For a few indices it puts side by side what the store knows of each sample (bucket by name,
visits, loss and confidence EMAs, last correctness, label), what the policy makes of it in the
current phase (its draw weight) and what the plan did (its draws this epoch), with a one-line
reason. Read-only: it never plans, folds or communicates.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..diagnostics.datamap import bucket_name


@dataclass(frozen=True)
class SampleExplanation:
    """The state and this epoch's treatment of ``k`` samples, as parallel arrays [k].

    ``idx`` int64: positions in the original dataset. ``bucket``: bucket names (str) as of the
    epoch's plan (for rate policies such as ``ForgettingPolicy`` ``FREEZE`` means "skipped this
    epoch"). ``pruned`` bool. ``draws`` int64: times drawn in this epoch's plan (forgetting
    audits included; 0 = skipped). ``weight`` float64: the policy's draw weight in this epoch's
    phase (0 for pruned samples and those at ``max_times_seen``; in unbiased mode the plan
    floors live samples' weights, see ``unbiased_floor``). ``visits`` int64: reported passes
    folded so far. ``last_correct`` bool. ``confidence`` and ``loss`` float32: EMAs (probability
    of the target in [0, 1]; loss units), 0 for unseen samples. ``wrong_streak``,
    ``frozen_streak`` int64: consecutive wrong sync windows, consecutive epochs frozen.
    ``label``, ``predicted`` int64: the given and last predicted label, -1 = unknown. ``epoch``
    and ``phase``: the epoch explained.

    ``str()`` is a table with a reason per row; :meth:`rows` gives one dict per sample.
    """

    epoch: int
    phase: str
    idx: np.ndarray
    bucket: np.ndarray
    pruned: np.ndarray
    draws: np.ndarray
    weight: np.ndarray
    visits: np.ndarray
    last_correct: np.ndarray
    confidence: np.ndarray
    loss: np.ndarray
    wrong_streak: np.ndarray
    frozen_streak: np.ndarray
    label: np.ndarray
    predicted: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def reason(self) -> list[str]:
        """One line per sample: drawn how often, or why not (pruned, weight 0 in this phase,
        or a positive weight that got no draw in this epoch's budget)."""
        out = []
        for i in range(len(self.idx)):
            bucket, draws = str(self.bucket[i]), int(self.draws[i])
            if self.pruned[i]:
                out.append(f"pruned (frozen {int(self.frozen_streak[i])} epochs)")
            elif draws:
                out.append(f"drawn {draws}x ({bucket}, weight {self.weight[i]:g})")
            elif self.weight[i] == 0:
                out.append(f"skipped: {bucket} weighs 0 in {self.phase}")
            else:
                out.append(f"skipped: no draw at weight {self.weight[i]:g} within the budget")
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One dict per sample (Python scalars), the reason included."""
        names = [f.name for f in fields(self) if f.name not in ("epoch", "phase")]
        columns = [getattr(self, name).tolist() for name in names]
        return [
            dict(zip(names, values), reason=reason)
            for values, reason in zip(zip(*columns), self.reason)
        ]

    def __str__(self) -> str:
        header = ["idx", "bucket", "draws", "weight", "visits", "last", "conf", "loss", "label"]
        table = [header]
        for i in range(len(self.idx)):
            table.append(
                [
                    str(int(self.idx[i])),
                    str(self.bucket[i]) + (" (pruned)" if self.pruned[i] else ""),
                    str(int(self.draws[i])),
                    f"{self.weight[i]:g}",
                    str(int(self.visits[i])),
                    ("right" if self.last_correct[i] else "wrong") if self.visits[i] else "-",
                    f"{self.confidence[i]:.2f}",
                    f"{self.loss[i]:.3f}",
                    str(int(self.label[i])) if self.label[i] >= 0 else "-",
                ]
            )
        widths = [max(len(row[c]) for row in table) for c in range(len(header))]
        lines = [f"epoch {self.epoch} ({self.phase}):"]
        for row, reason in zip(table, ["why", *self.reason]):
            lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) + "  " + reason)
        return "\n".join(lines)


def explanation(
    epoch: int,
    phase: str,
    idx: np.ndarray,
    state: dict[str, np.ndarray],
    draws: np.ndarray,
    weight: np.ndarray,
) -> SampleExplanation:
    """Assemble a :class:`SampleExplanation` from the store's rows (``state``, as
    :meth:`~gekodata.store.views.ColumnViews.rows_of` returns them), the draws and the weights."""
    codes = state["bucket"]
    names = {int(code): bucket_name(int(code)) for code in np.unique(codes)}
    return SampleExplanation(
        epoch=epoch,
        phase=phase,
        idx=idx,
        bucket=np.array([names[int(c)] for c in codes], dtype=object),
        pruned=state["pruned"],
        draws=draws,
        weight=weight,
        visits=state["visits"],
        last_correct=state["last_correct"],
        confidence=state["confidence"],
        loss=state["loss"],
        wrong_streak=state["wrong_streak"],
        frozen_streak=state["frozen_streak"],
        label=state["label"],
        predicted=state["predicted"],
    )


__all__ = ["SampleExplanation", "explanation"]
