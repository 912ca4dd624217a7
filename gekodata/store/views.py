"""Named, vectorized reads of the store's columns: what a policy or the planner asks of a store.

:class:`ColumnViews` is the part of :class:`~gekodata.store.state_store.GEKOStateStore` that
answers questions in the units of what was observed (a loss, a confidence in [0, 1], a bucket
code, a streak), so that no caller needs the column layout (:mod:`gekodata.store.layout`: packed
flag bits, quantised confidence codes, the loss codec, float16 Q-values). Two kinds of read:

* **whole-store views** (properties such as :attr:`~ColumnViews.bucket`, :attr:`~ColumnViews.
  last_correct`, :attr:`~ColumnViews.wrong_streak`, :attr:`~ColumnViews.pruned`): arrays of N
  rows, decoded where the column is coded;
* **block reads** (methods taking ``lo, hi``): the same facts for rows ``lo..hi-1`` only, so a
  pass over 1e8 samples can run a block at a time (:mod:`gekodata.store.blocks`) without N-sized
  temporaries. Threshold tests (:meth:`~ColumnViews.confidence_above`,
  :meth:`~ColumnViews.loss_std_below`, :meth:`~ColumnViews.q_value_at_least`, ...) compare the
  *stored* values exactly, with one integer comparison on the raw column per row: the threshold
  is turned into a code once (cached), not each row into a float.
"""

from __future__ import annotations

import numpy as np

from .codec import decode_loss, loss_codes_below
from .layout import (
    BUCKET_MASK,
    CORRECT_BIT,
    FLOAT16_INF_BITS,
    PRUNED_BIT,
    STREAK_MASK,
    STREAK_SHIFT,
    dequantize_u8,
    float16_at_least_bits,
    u8_code_above,
    u8_code_below,
)


class ColumnViews:
    """Read views of a store's columns (module docstring). Needs ``columns`` (name -> array [N])
    and ``num_samples`` of the store it is mixed into."""

    columns: dict[str, np.ndarray]
    num_samples: int

    def _rows(self, name: str, lo: int, hi: int | None) -> np.ndarray:
        return self.columns[name][lo:hi]

    # ---------------------------------------------------------------- counts and losses
    @property
    def visits(self) -> np.ndarray:
        """Reported passes per sample, uint16 [N] (a view)."""
        return self.columns["visits"]

    @property
    def seen(self) -> np.ndarray:
        """bool [N]: sample has at least one report."""
        return self.columns["visits"] > 0

    @property
    def loss(self) -> np.ndarray:
        """Loss EMA in loss units, float32 [N] (0 for unseen samples); decoded, a new array."""
        return decode_loss(self.columns["loss_ema_code"])

    def loss_of(self, idx: np.ndarray) -> np.ndarray:
        """Loss EMA of rows ``idx`` (int [k]) in loss units, float32 [k]; 0 for unseen rows.
        O(k): reads only those rows."""
        return decode_loss(self.columns["loss_ema_code"][np.asarray(idx)])

    @property
    def loss_std(self) -> np.ndarray:
        """Exponential moving standard deviation of the loss in loss units, float32 [N]
        (0 for unseen samples and after a single report); decoded, a new array."""
        return decode_loss(self.columns["loss_std_code"])

    def loss_std_below(self, value: float, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """bool [hi - lo]: the stored loss std of rows ``lo..hi-1`` is below ``value`` (loss
        units, compared as float32; exact on the stored values)."""
        return self._rows("loss_std_code", lo, hi) < loss_codes_below(float(value))

    @property
    def stability(self) -> np.ndarray:
        """1 - std of the loss (exponential moving estimate, :attr:`loss_std`), float32 [N];
        1 for unseen."""
        return np.float32(1.0) - self.loss_std

    # ---------------------------------------------------------------- fractions
    @property
    def confidence(self) -> np.ndarray:
        """Confidence EMA in [0, 1], float32 [N]."""
        return dequantize_u8(self.columns["conf_ema"])

    def confidence_above(self, value: float, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """bool [hi - lo]: the stored confidence (a multiple of 1/255) of rows ``lo..hi-1`` is
        above ``value`` (in [0, 1]): ``code > floor(value * 255)``. Its negation is "at most
        ``value``"."""
        return self._rows("conf_ema", lo, hi) > u8_code_above(float(value))

    def confidence_below(self, value: float, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """bool [hi - lo]: the stored confidence of rows ``lo..hi-1`` is below ``value`` (in
        [0, 1]): ``code < ceil(value * 255)``."""
        return self._rows("conf_ema", lo, hi) < u8_code_below(float(value))

    @property
    def correctness(self) -> np.ndarray:
        """Correctness EMA in [0, 1], float32 [N]."""
        return dequantize_u8(self.columns["correct_ema"])

    @property
    def q_value(self) -> np.ndarray:
        """Q-value in [0, 1], float32 [N]."""
        return self.columns["q_value"].astype(np.float32)

    def q_value_at_least(self, value: float, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """bool [hi - lo]: the stored Q-value of rows ``lo..hi-1`` is at least ``value`` (in
        [0, 1], compared as float32; NaN never passes). Integer compares on the float16 bits."""
        q = self._rows("q_value", lo, hi)
        bits = float16_at_least_bits(float(value))
        if bits is None:  # value 0: every non-NaN Q-value passes
            return ~np.isnan(q)
        # non-negative float16 bits order like the values; NaN bits lie above inf's
        q_bits = q.view(np.int16)
        passed = q_bits >= bits
        passed &= q_bits <= FLOAT16_INF_BITS
        return passed

    # ---------------------------------------------------------------- flags
    @property
    def last_correct(self) -> np.ndarray:
        """bool [N]: correctness of the most recent report."""
        return self.last_correct_rows()

    def last_correct_rows(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """bool [hi - lo]: the latest observation of rows ``lo..hi-1`` was correct (>= 0.5)."""
        return (self._rows("flags", lo, hi) & CORRECT_BIT) != 0

    @property
    def wrong_streak(self) -> np.ndarray:
        """Consecutive wrong updates (the sampler folds one sync window per update), uint8 [N],
        saturating at ``MAX_WRONG_STREAK`` (7). A correct update resets it to 0; with predicted
        labels a wrong update whose label differs from the last one, or whose duplicate rows
        disagree, restarts it at 1."""
        return (self.columns["flags"] & STREAK_MASK) >> STREAK_SHIFT

    def wrong_streak_at_least(self, streak: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """bool [hi - lo]: the wrong streak (:attr:`wrong_streak`) of rows ``lo..hi-1`` is at
        least ``streak`` (0 to 7)."""
        return (self._rows("flags", lo, hi) & STREAK_MASK) >= np.uint8(streak << STREAK_SHIFT)

    @property
    def bucket(self) -> np.ndarray:
        """Bucket code per sample, uint8 [N] (0 = never classified; codes are < 8)."""
        return self.bucket_codes()

    def bucket_codes(
        self, lo: int = 0, hi: int | None = None, *, mark_pruned: bool = False
    ) -> np.ndarray:
        """Bucket codes of rows ``lo..hi-1``, uint8 [hi - lo] (a new array). With
        ``mark_pruned`` a pruned row's code is raised by ``NUM_BUCKET_CODES`` (8), so that one
        byte tells a row's bucket and whether it is pruned (the planner's draw classes)."""
        mask = BUCKET_MASK | PRUNED_BIT if mark_pruned else BUCKET_MASK
        return self._rows("flags", lo, hi) & mask

    @property
    def pruned(self) -> np.ndarray:
        """bool [N]: sample is pruned (never planned until unpruned)."""
        return (self.columns["flags"] & PRUNED_BIT) != 0

    @property
    def num_pruned(self) -> int:
        return int(np.count_nonzero(self.columns["flags"] & PRUNED_BIT))

    # ---------------------------------------------------------------- rows of a few samples
    def rows_of(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """What the store holds of samples ``idx`` (int [k], in range), decoded, each an array
        [k]: ``visits`` int64, ``loss`` float32 (EMA, loss units; 0 if unseen), ``confidence``
        and ``correctness`` float32 (EMAs in [0, 1]), ``last_correct`` bool, ``wrong_streak``
        and ``frozen_streak`` int64, ``bucket`` uint8 (the code), ``pruned`` bool, ``predicted``
        and ``label`` int64 (-1 = unknown). O(k): reads only those rows."""
        idx = np.asarray(idx, dtype=np.int64)
        flags = self.columns["flags"][idx]
        unknown = np.full(len(idx), -1, dtype=np.int64)
        return {
            "visits": self.columns["visits"][idx].astype(np.int64),
            "loss": self.loss_of(idx),
            "confidence": dequantize_u8(self.columns["conf_ema"][idx]),
            "correctness": dequantize_u8(self.columns["correct_ema"][idx]),
            "last_correct": (flags & CORRECT_BIT) != 0,
            "wrong_streak": ((flags & STREAK_MASK) >> STREAK_SHIFT).astype(np.int64),
            "frozen_streak": self.columns["frozen_streak"][idx].astype(np.int64),
            "bucket": flags & BUCKET_MASK,
            "pruned": (flags & PRUNED_BIT) != 0,
            "predicted": (
                self.columns["pred_label"][idx].astype(np.int64)
                if "pred_label" in self.columns
                else unknown
            ),
            "label": (
                self.columns["label"][idx].astype(np.int64) if "label" in self.columns else unknown
            ),
        }

    # ---------------------------------------------------------------- other columns
    @property
    def predicted(self) -> np.ndarray:
        """Last reported predicted label, int32 [N]; -1 where unknown (never reported)."""
        if "pred_label" in self.columns:
            return self.columns["pred_label"]
        return np.full(self.num_samples, -1, dtype=np.int32)

    @property
    def frozen_streak(self) -> np.ndarray:
        """Consecutive epochs in the frozen bucket, uint8 [N] (a view)."""
        return self.columns["frozen_streak"]

    def has_column(self, name: str) -> bool:
        """Whether the store holds the (optional) column ``name`` (:mod:`gekodata.store.layout`)."""
        return name in self.columns

    @property
    def has_labels(self) -> bool:
        """Whether the store holds the samples' given labels (:meth:`set_labels`)."""
        return "label" in self.columns
