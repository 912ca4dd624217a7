"""The store's optional per-sample columns: allocating them, setting the user's, reading them.

:class:`OptionalColumns` is the part of :class:`~gekodata.store.state_store.GEKOStateStore` that deals with
the columns a default store does not have (:mod:`gekodata.store.layout` tables them): the group
streak of RL prompts (:meth:`~OptionalColumns.ensure_column`), the selection signals a policy
tracks (:meth:`~OptionalColumns.track`: forgetting events, learning progress) and the columns
the user sets (:meth:`~OptionalColumns.set_reference_loss`, :meth:`~OptionalColumns.set_labels`).
It reads and writes ``self.columns`` and ``self.num_samples`` of the store it is mixed into.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..arguments import check_index, in_range
from .codec import decode_loss, encode_loss
from .layout import OPTIONAL_COLUMNS, REF_LOSS_MAX, REF_LOSS_UNSET, SIGNALS, empty_column
from .validation import as_float32
from .views import ColumnViews


class OptionalColumns(ColumnViews):
    """Optional columns of a store (module docstring). Needs ``columns`` (name -> array [N]),
    ``num_samples``; reads the store's views (:class:`~gekodata.store.views.ColumnViews`)."""

    @property
    def group_streak(self) -> np.ndarray:
        """Signed run of unanimous updates, int8 [N] (a view; zeros if the column was never
        allocated, see :meth:`ensure_column`): +k = each of the last k updates had all its rows
        equal and correct (an RL prompt whose whole group of completions was right, k sync
        windows running), -k = all equal and wrong, 0 = the last update's rows disagreed (the
        group had a non-zero advantage) or the sample has no update yet."""
        if "group_streak" in self.columns:
            return self.columns["group_streak"]
        return np.zeros(self.num_samples, dtype=np.int8)

    def _signal_column(self, name: str, how: str) -> np.ndarray:
        if name not in self.columns:
            raise ValueError(f"the store has no {name!r} column: {how} first")
        return self.columns[name]

    @property
    def forget_count(self) -> np.ndarray:
        """Forgetting events per sample (correct -> wrong between consecutive observations),
        uint8 [N] (a view), saturating at 255. Needs ``track("forgetting")``."""
        return self._signal_column("forget_count", 'call track("forgetting")')

    @property
    def learned_streak(self) -> np.ndarray:
        """Consecutive correct observations up to the latest, uint8 [N] (a view), saturating at
        255. Needs ``track("forgetting")``."""
        return self._signal_column("learned_streak", 'call track("forgetting")')

    @property
    def loss_slow(self) -> np.ndarray:
        """Slow loss EMA (rate ``slow_alpha``) in loss units, float32 [N]; decoded, a new array.
        Needs ``track("progress")``."""
        return decode_loss(self._signal_column("loss_slow_code", 'call track("progress")'))

    @property
    def learning_progress(self) -> np.ndarray:
        """Slow loss EMA minus loss EMA, float32 [N], loss units: > 0 while the loss is still
        falling, about 0 when it is flat, < 0 when it rises. Needs ``track("progress")``."""
        return self.loss_slow - self.loss

    @property
    def has_reference(self) -> np.ndarray:
        """bool [N]: the sample has a reference loss (:meth:`set_reference_loss`)."""
        if "ref_loss_code" not in self.columns:
            return np.zeros(self.num_samples, dtype=bool)
        return self.columns["ref_loss_code"] != REF_LOSS_UNSET

    @property
    def reference_loss(self) -> np.ndarray:
        """Reference ("irreducible") loss per sample, float32 [N], NaN where not set; decoded,
        a new array. Needs :meth:`set_reference_loss`."""
        codes = self._signal_column("ref_loss_code", "call set_reference_loss")
        return np.where(codes == REF_LOSS_UNSET, np.float32(np.nan), decode_loss(codes))

    @property
    def reducible_loss(self) -> np.ndarray:
        """RHO-LOSS's reducible loss: loss EMA minus reference loss, float32 [N]; NaN where the
        sample is unseen or has no reference loss."""
        value = self.loss - self.reference_loss
        value[~self.seen] = np.nan
        return value

    @property
    def labels(self) -> np.ndarray:
        """The samples' given labels, int32 [N] (a view), -1 = unknown. Needs :meth:`set_labels`."""
        return self._signal_column("label", "call set_labels")

    @property
    def tracked(self) -> tuple[str, ...]:
        """Names of the signals :meth:`track` has allocated."""
        return tuple(name for name, cols in SIGNALS.items() if all(c in self.columns for c in cols))

    def track(self, *signals: str) -> None:
        """Allocate the columns of ``signals`` ("forgetting", "progress") if not there yet; from
        the next :meth:`update` on they follow every observation. Allocated mid-run, the slow
        loss EMA starts at the loss EMA (progress 0), the learned streak at 1 for samples whose
        last observation was correct, forgetting counts at 0. Unknown names raise ``ValueError``."""
        unknown = [s for s in signals if s not in SIGNALS]
        if unknown:
            raise ValueError(f"unknown signal(s) {unknown}; choose from {sorted(SIGNALS)}")
        for name in (c for s in signals for c in SIGNALS[s]):
            if name in self.columns:
                continue
            col = empty_column(name, self.num_samples)
            if name == "loss_slow_code":
                col[:] = self.columns["loss_ema_code"]
            elif name == "learned_streak":
                col[self.last_correct] = 1
            self.columns[name] = col

    def _checked_rows(self, idx: Any, values: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        """``idx`` (None = all rows) and ``values`` as int64 / numpy arrays of equal length, indices
        in range; ``ValueError`` otherwise."""
        values = np.asarray(values)
        idx = np.arange(self.num_samples) if idx is None else np.asarray(idx)
        if idx.ndim != 1 or values.shape != idx.shape:
            raise ValueError(
                f"{what} and idx must be 1-D and of equal length, got shapes {values.shape} "
                f"and {idx.shape}"
            )
        if len(idx) and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"idx must hold integers, got dtype {idx.dtype}")
        check_index("idx", idx, self.num_samples)
        return idx.astype(np.int64), values

    def set_reference_loss(self, idx: Any, values: Any) -> None:
        """Set the reference ("irreducible") loss of rows ``idx`` (None = all rows, then
        ``values`` has one entry per sample): float [k], finite, >= 0 and <= ``REF_LOSS_MAX``
        as float32, stored with the loss codec (:mod:`gekodata.store.codec`). For RHO-LOSS selection
        (:class:`~gekodata.policy.ReducibleLossPolicy`): the loss of a model trained on other data
        (held out, or the other half of a cross-fit: :mod:`gekodata.reference`). The first call
        allocates the column (2 B/sample). ``ValueError`` (nothing changed) for bad input."""
        idx, values = self._checked_rows(idx, values, "values")
        loss = as_float32(values)
        bad = ~((loss >= 0) & (loss <= np.float32(REF_LOSS_MAX)))  # NaN fails too
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"reference losses must be finite, >= 0 and <= {REF_LOSS_MAX:.4g} as float32; "
                f"entry {where} is {values[where]} (idx {idx[where]})"
            )
        if "ref_loss_code" not in self.columns:
            self.columns["ref_loss_code"] = empty_column("ref_loss_code", self.num_samples)
        self.columns["ref_loss_code"][idx] = encode_loss(loss)

    def set_labels(self, labels: Any, idx: Any = None) -> None:
        """Set the given label of rows ``idx`` (None = all rows): integers in [-1, 2^31), -1 =
        unknown. Lets the noise guard judge a sample against its own class (a rare class is not
        noise). The first call allocates the column (4 B/sample). ``ValueError`` for bad input."""
        idx, labels = self._checked_rows(idx, labels, "labels")
        if len(labels) and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if not in_range(labels, stop=int(np.iinfo(np.int32).max) + 1, start=-1):
            raise ValueError("labels must be in [-1, 2^31) (-1 = unknown)")
        if "label" not in self.columns:
            self.columns["label"] = empty_column("label", self.num_samples)
        self.columns["label"][idx] = labels

    def learn_labels(self, idx: np.ndarray, labels: np.ndarray) -> int:
        """Fold reported labels (int [B], -1 = unknown) of rows ``idx`` (int [B], in range) into
        the ``label`` column, allocated by the first known label (4 B/sample). A sample that
        arrives with a label other than the one held (or with two in one call) keeps the latest
        and is counted; a ``RuntimeWarning`` names how many and one example, since a sample with
        two labels is a data bug (a shuffled label column, a wrong index) the guard would take
        for noise. Returns that count."""
        known = labels >= 0
        if not known.any():
            return 0
        idx, labels = idx[known], labels[known].astype(np.int32)
        if "label" not in self.columns:
            self.columns["label"] = empty_column("label", self.num_samples)
        column = self.columns["label"]
        before = column[idx]
        column[idx] = labels  # duplicates in one call: the last row's label stays
        clash = ((before >= 0) & (before != labels)) | (column[idx] != labels)
        if not clash.any():
            return 0
        where = int(np.flatnonzero(clash)[0])
        clashing = np.unique(idx[clash])
        warnings.warn(
            f"gekodata: {len(clashing)} sample(s) were reported with two different labels (e.g. "
            f"idx {idx[where]}: {before[where] if before[where] >= 0 else column[idx[where]]} and "
            f"{labels[where]}); the latest is kept. Report each sample's own target: check that "
            "batch['idx'] and the labels come from the same items",
            RuntimeWarning,
            stacklevel=4,
        )
        return len(clashing)

    def ensure_column(self, name: str) -> None:
        """Allocate the optional column ``name`` (:data:`~gekodata.store.layout.OPTIONAL_COLUMNS`) if
        the store lacks it, every row at its fill value (``pred_label`` -1, ``group_streak`` 0).

        Policies name the optional columns they read (:attr:`SelectionPolicy.store_columns
        <gekodata.policy.SelectionPolicy.store_columns>`) and the sampler allocates them before
        the first report, because a column allocated later would have missed those reports.
        ``ValueError`` for a name that is not an optional column."""
        if name not in OPTIONAL_COLUMNS:
            raise ValueError(
                f"{name!r} is not an optional store column; choose one of {sorted(OPTIONAL_COLUMNS)}"
            )
        if name not in self.columns:
            self.columns[name] = empty_column(name, self.num_samples)
