"""Columnar per-sample training state.

`GEKOStateStore` keeps one row per sample of the user's dataset, as plain numpy columns, and
updates them with vectorized operations over index arrays. It holds what the training loop
observed and how those observations are averaged (loss, loss std, confidence and correctness
EMAs, Q-value, visits, the last correctness and the wrong streak, optional signals and the user's
labels and reference losses), plus two things the sampler writes back each epoch: every sample's
bucket code (a small integer the store keeps but does not interpret: the codes' meaning is the
policy's, :class:`~gekodata.policy.Bucket`) with the frozen streak it advances, and the pruned
flag. It knows no thresholds, curricula or samplers.

Read it through its named views (:mod:`gekodata.store.views`): whole-store arrays such as
:attr:`~GEKOStateStore.loss`, :attr:`~GEKOStateStore.bucket`, :attr:`~GEKOStateStore.last_correct`,
:attr:`~GEKOStateStore.wrong_streak`, :attr:`~GEKOStateStore.pruned`, and block reads with exact
threshold tests (:meth:`~GEKOStateStore.confidence_above`, :meth:`~GEKOStateStore.q_value_at_least`,
:meth:`~GEKOStateStore.bucket_codes`, ...) for passes a block at a time. The columns, their dtypes
and the packed flag bits are tabled in :mod:`gekodata.store.layout`; only the store and its views
read them raw. The loss codec (stated error bound, range, refusals) is documented in
:mod:`gekodata.store.codec`.

**Loss scale** (GEKO's lmax): the ``loss_scale_quantile`` quantile of a histogram of every loss
ever reported, at least ``min_loss_scale``; its stated outlier tolerance is in :mod:`gekodata.store.codec`.

Units: losses are in the user's loss units (nats for cross-entropy); confidences and
correctness are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np

from .blocks import blocks
from .codec import (
    LOSS_HIST_BINS,
    add_to_hist,
    hist_quantile_max,
)
from .grouping import group_rows
from .kernels import (
    fold_flags,
    fold_forgetting,
    fold_fraction,
    fold_group_streak,
    fold_loss_ema,
    fold_loss_moments,
    fold_q_value,
)
from .layout import (
    BUCKET_MASK,
    COLUMNS,
    CORRECT_BIT,
    MAX_FROZEN_STREAK,
    MAX_VISITS,
    OPTIONAL_FILL,
    PRUNED_BIT,
    USER_COLUMNS,
)
from .signal_columns import OptionalColumns
from .snapshot import StoreState, checked_config
from .validation import as_float32, row_checks

__all__ = ["GEKOStateStore"]


def _part(values: np.ndarray | None, lo: int, hi: int) -> np.ndarray | None:
    return None if values is None else values[lo:hi]


class GEKOStateStore(OptionalColumns, StoreState):
    """Per-sample state for ``num_samples`` samples, 12 bytes each by default; optional columns
    (predicted labels, the group streak of RL prompts, the selection signals, reference losses,
    labels) add bytes only when used (:mod:`gekodata.store.layout`).

    Args:
        num_samples: rows in the store, i.e. the length of the user's original dataset.
        ema_alpha: weight of a new observation in the loss, loss-std, confidence and
            correctness EMAs (1.0 = keep only the latest). The first observation of a sample
            initialises its EMAs. Default 0.5: a half-life of one visit.
        q_rate: rate of GEKO's Q-value EMA, ``q += q_rate * (reward - q)`` with
            ``reward = 1 - min(loss / loss_scale, 1)``. The first visit sets ``q = reward``.
        loss_scale_quantile: q: ``loss_scale`` (GEKO's lmax, fixed there at 10) is the
            q-quantile of every loss ever reported, read from a log-binned histogram (module
            docstring), at least ``min_loss_scale``. A fraction of reported losses below 1 - q
            cannot raise it above the largest other loss (to within one bin, a factor 1.09).
        min_loss_scale: floor of ``loss_scale`` (loss units; default 1.0 nat), so that a run
            whose losses are all tiny does not read tiny absolute losses as Q-value 0.
        slow_alpha: rate of the slow loss EMA of the ``"progress"`` signal (:meth:`track`);
            learning progress is the slow EMA minus the (fast, ``ema_alpha``) loss EMA.

    Duplicate indices in one :meth:`update` are combined deterministically: their losses,
    confidences and correctness are averaged into a single observation (one EMA step, one step
    of the wrong streak, the "last correct" bit set when the mean correctness is >= 0.5, the
    largest predicted label kept, and the streak restarted at 1 if the predicted labels
    differ), and ``visits`` grows by the multiplicity. The result does not depend on the order
    of the rows. The sampler folds one sync window (by default an epoch) per update, so the
    wrong streak counts consecutive windows with a wrong observation. With the ``group_streak``
    column (:meth:`ensure_column`) an update also records whether all of a sample's rows agreed:
    an RL prompt reported once per completion (:func:`gekodata.prompts.report_groups`) gets one
    step of its zero-variance run per window, taken over every completion of the window.

    Examples:
        >>> import numpy as np
        >>> from gekodata import GEKOStateStore
        >>> store = GEKOStateStore(4)
        >>> idx, loss = np.array([0, 2]), np.array([0.1, 2.5])
        >>> store.update(idx, loss, np.array([0.9, 0.1]), np.array([1.0, 0.0]))
        >>> store.visits.tolist(), store.nbytes // len(store)
        ([1, 0, 1, 0], 12)
    """

    def __init__(
        self,
        num_samples: int,
        *,
        ema_alpha: float = 0.5,
        q_rate: float = 0.1,
        loss_scale_quantile: float = 0.99,
        min_loss_scale: float = 1.0,
        slow_alpha: float = 0.25,
    ) -> None:
        num_samples = int(num_samples)
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.num_samples = num_samples
        for key, value in checked_config(
            ema_alpha, q_rate, loss_scale_quantile, min_loss_scale, slow_alpha
        ).items():
            setattr(self, key, value)
        self.loss_scale = self.min_loss_scale
        self.total_updates = 0
        self.loss_hist_counts = np.zeros(LOSS_HIST_BINS, dtype=np.int64)
        """Reported losses per histogram bin, int64 [LOSS_HIST_BINS] (see the module docstring)."""
        self.loss_hist_max = np.zeros(LOSS_HIST_BINS, dtype=np.float32)
        """Largest loss reported in each histogram bin, float32 [LOSS_HIST_BINS] (0 if empty)."""
        self.columns: dict[str, np.ndarray] = {
            name: np.zeros(num_samples, dtype=dtype) for name, dtype in COLUMNS.items()
        }

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return self.num_samples

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-sample columns."""
        return sum(col.nbytes for col in self.columns.values())

    def __repr__(self) -> str:
        """Size, samples seen and pruned, samples per bucket code (nonzero only; the codes'
        names are the policy's, :class:`gekodata.policy.Bucket`: 0 UNSEEN, 1 FREEZE, ...),
        reported rows folded, loss scale, bytes and optional columns. O(N): a few passes over two
        small columns (visits, flags)."""
        codes = np.bincount(self.columns["flags"] & BUCKET_MASK, minlength=8)
        buckets = {int(code): int(n) for code, n in enumerate(codes) if n}
        optional = [name for name in self.columns if name not in COLUMNS]
        return (
            f"GEKOStateStore(num_samples={self.num_samples}, "
            f"seen={int(np.count_nonzero(self.columns['visits']))}, pruned={self.num_pruned}, "
            f"bucket_codes={buckets}, reports_folded={self.total_updates}, "
            f"loss_scale={self.loss_scale:.4g}, nbytes={self.nbytes}"
            + (f", optional_columns={optional}" if optional else "")
            + ")"
        )

    # ---------------------------------------------------------------- writing

    def invalid_rows(
        self,
        idx: np.ndarray,
        loss: np.ndarray,
        conf: np.ndarray | None = None,
        correct: np.ndarray | None = None,
        pred: np.ndarray | None = None,
    ) -> np.ndarray:
        """bool [B]: True where :meth:`validate` would refuse the row (idx out of range; loss
        non-finite as float32, negative or above ``LOSS_MAX``; conf/correct outside [0, 1] or
        NaN; pred outside [-1, 2^31)), so a caller can drop exactly the bad rows of a window.

        Raises ``ValueError`` for problems of whole arrays (not 1-D, unequal lengths, non-integer
        ``idx`` or ``pred`` dtype). Touches nothing.
        """
        bad = np.zeros(len(idx), dtype=bool)
        for mask, _ in row_checks(self.num_samples, idx, loss, conf, correct, pred):
            bad |= mask
        return bad

    def validate(
        self,
        idx: np.ndarray,
        loss: np.ndarray,
        conf: np.ndarray | None = None,
        correct: np.ndarray | None = None,
        pred: np.ndarray | None = None,
    ) -> None:
        """Raise ``ValueError`` naming the first problem with an update's arrays (and the entry).

        Checks: 1-D, equal lengths, integer indices in ``[0, num_samples)``, then values as the
        store keeps them (cast to float32 first: a float64 1e39 is inf): finite losses in
        ``[0, LOSS_MAX]``, confidences and correctness in ``[0, 1]``, integer predicted labels in
        ``[-1, 2^31)``. The same checks as :meth:`invalid_rows`. Touches nothing.
        """
        for mask, message in row_checks(self.num_samples, idx, loss, conf, correct, pred):
            if mask.any():
                raise ValueError(message(int(np.flatnonzero(mask)[0])))

    def update(
        self,
        idx: np.ndarray,
        loss: np.ndarray,
        conf: np.ndarray,
        correct: np.ndarray,
        pred: np.ndarray | None = None,
        *,
        validated: bool = False,
        restart: np.ndarray | None = None,
    ) -> None:
        """Fold one batch of observations into the store.

        Args:
            idx: int [B], positions in the original dataset.
            loss: float [B], per-sample loss (>= 0, finite).
            conf: float [B] in [0, 1], confidence (probability of the target).
            correct: float or bool [B] in [0, 1], correctness.
            pred: optional int [B], predicted label (e.g. argmax class), -1 = unknown. The first
                update with ``pred`` allocates the ``pred_label`` column.
            validated: the caller has already passed these exact arrays through
                :meth:`validate` (or dropped the rows :meth:`invalid_rows` flags): skip the second
                pass. Invalid arrays then corrupt the store; default False re-validates.
            restart: optional int64 [k], samples (among ``idx``) whose learned state restarts
                from this update, as if first observed now, while ``visits`` keeps counting (the
                forgetting audit's forgotten samples).

        Raises ``ValueError`` (store unchanged) if the arrays are invalid.
        """
        idx = np.asarray(idx)
        pred = None if pred is None else np.asarray(pred)
        if not validated:
            self.validate(idx, loss, conf, correct, pred)
        loss, conf, correct = (as_float32(x) for x in (loss, conf, correct))
        if len(idx) == 0:
            return
        idx = idx.astype(np.int64, copy=False)
        add_to_hist(
            self.loss_hist_counts, self.loss_hist_max, loss
        )  # every row, duplicates included
        self.loss_scale = self._scale_from_hist()
        rows = group_rows(
            idx, self.num_samples
        )  # one observation per index, merged one value at a time
        del idx
        cols, target = self.columns, rows.idx
        first = cols["visits"][target] == 0
        if restart is not None and len(restart):
            self._clear(restart, keep=("visits",))
            first |= np.isin(target, restart)
        means = (
            None if rows.multiplicity is None else np.empty(len(rows), dtype=np.float32)
        )  # reused per value
        self._fold_loss(target, rows.mean(loss, out=means), first)
        self._fold_fraction("conf_ema", target, rows.mean(conf, out=means), first)
        merged, wandered = rows.labels(pred) if pred is not None else (None, None)
        unanimous = (
            rows.unanimous(correct) if "group_streak" in cols else None
        )  # same correctness in every row
        correct = rows.mean(correct, out=means)
        self._fold_fraction("correct_ema", target, correct, first)
        if pred is not None and "pred_label" not in cols:
            cols["pred_label"] = np.full(self.num_samples, -1, dtype=np.int32)
        for lo, hi in blocks(len(target)):
            at = target[lo:hi]
            last_pred = None
            if merged is not None:
                last_pred = cols["pred_label"][at]
                known = merged[lo:hi] >= 0
                cols["pred_label"][at[known]] = merged[lo:hi][known]
            if "forget_count" in cols:  # before fold_flags moves the last-correct bit
                was_correct = (cols["flags"][at] & CORRECT_BIT) != 0
                cols["forget_count"][at], cols["learned_streak"][at] = fold_forgetting(
                    cols["forget_count"][at],
                    cols["learned_streak"][at],
                    was_correct,
                    first[lo:hi],
                    correct[lo:hi],
                )
            cols["flags"][at] = fold_flags(
                cols["flags"][at],
                correct[lo:hi],
                _part(merged, lo, hi),
                last_pred,
                _part(wandered, lo, hi),
            )
            step = 1 if rows.multiplicity is None else rows.multiplicity[lo:hi]
            cols["visits"][at] = np.minimum(cols["visits"][at].astype(np.int64) + step, MAX_VISITS)
            if unanimous is not None and rows.multiplicity is not None:
                # a group is judged only on two or more rows in the window: one scored
                # completion says nothing about its group's reward variance
                streak = cols["group_streak"][at]
                judged = rows.multiplicity[lo:hi] >= 2
                cols["group_streak"][at] = np.where(
                    judged,
                    fold_group_streak(streak, unanimous[lo:hi], correct[lo:hi] >= 0.5),
                    streak,
                )
        self.total_updates += len(loss)

    def _fold_loss(self, target: np.ndarray, loss: np.ndarray, first: np.ndarray) -> None:
        """Loss EMA and std codes and the Q-value of rows ``target`` after observing ``loss``."""
        cols = self.columns
        for lo, hi in blocks(len(target)):
            at, observed, new = target[lo:hi], loss[lo:hi], first[lo:hi]
            cols["loss_ema_code"][at], cols["loss_std_code"][at] = fold_loss_moments(
                cols["loss_ema_code"][at], cols["loss_std_code"][at], observed, new, self.ema_alpha
            )
            cols["q_value"][at] = fold_q_value(
                cols["q_value"][at], observed, self.loss_scale, new, self.q_rate
            )
            if "loss_slow_code" in cols:
                cols["loss_slow_code"][at] = fold_loss_ema(
                    cols["loss_slow_code"][at], observed, new, self.slow_alpha
                )

    def _fold_fraction(
        self, name: str, target: np.ndarray, value: np.ndarray, first: np.ndarray
    ) -> None:
        """EMA column ``name`` (uint8 fraction codes) of rows ``target`` after observing ``value``."""
        column = self.columns[name]
        for lo, hi in blocks(len(target)):
            at = target[lo:hi]
            column[at] = fold_fraction(column[at], value[lo:hi], first[lo:hi], self.ema_alpha)

    def _scale_from_hist(self) -> float:
        """``max(min_loss_scale, largest loss in the bin holding the q-quantile)``; O(bins)."""
        return max(
            self.min_loss_scale,
            hist_quantile_max(self.loss_hist_counts, self.loss_hist_max, self.loss_scale_quantile),
        )

    def set_buckets(self, codes: np.ndarray, frozen: np.ndarray) -> None:
        """Write bucket codes (uint8 [N], each < 8) and advance the frozen streak.

        ``frozen`` (bool [N]) marks samples in the frozen bucket this epoch: their streak grows
        by one (saturating at 255), every other streak resets to 0. A block at a time.
        """
        codes = np.asarray(codes)
        frozen = np.asarray(frozen, dtype=bool)
        if codes.shape != (self.num_samples,) or frozen.shape != (self.num_samples,):
            raise ValueError(f"codes and frozen must have shape ({self.num_samples},)")
        if codes.size and (int(codes.max()) > int(BUCKET_MASK) or int(codes.min()) < 0):
            raise ValueError(
                f"bucket codes must be in [0, 8), got {int(codes.min())}..{int(codes.max())}"
            )
        flags, streak = self.columns["flags"], self.columns["frozen_streak"]
        keep = ~BUCKET_MASK
        for lo, hi in blocks(self.num_samples):
            flags[lo:hi] &= keep
            flags[lo:hi] |= codes[lo:hi].astype(np.uint8, copy=False)
            run = streak[lo:hi]
            run += (run < MAX_FROZEN_STREAK).view(np.uint8)
            run *= frozen[lo:hi].view(np.uint8)  # min(streak + 1, 255) if frozen, else 0

    def set_pruned(self, idx: np.ndarray | slice | None, value: bool = True) -> None:
        """Set (or with ``value=False`` clear) the pruned flag of ``idx`` (None = all; a bool
        [N] mask is applied a block at a time)."""
        target = slice(None) if idx is None else idx
        flags = self.columns["flags"]
        if (
            isinstance(target, np.ndarray)
            and target.dtype == np.bool_
            and target.shape == (self.num_samples,)
        ):
            for lo, hi in blocks(self.num_samples):
                bits = target[lo:hi].view(np.uint8) * PRUNED_BIT
                if value:
                    flags[lo:hi] |= bits
                else:
                    flags[lo:hi] &= ~bits
        elif value:
            flags[target] |= PRUNED_BIT
        else:
            flags[target] &= ~PRUNED_BIT

    def reset(self, idx: np.ndarray) -> None:
        """Return rows ``idx`` to the never-seen state (all columns 0, not pruned; predicted
        label -1); the columns the user sets (reference loss, label) are kept."""
        self._clear(idx)

    def _clear(self, idx: np.ndarray, keep: tuple[str, ...] = ()) -> None:
        for name, col in self.columns.items():
            if name not in USER_COLUMNS and name not in keep:
                col[idx] = OPTIONAL_FILL.get(name, 0)
