"""Combining the repeated indices of one store update into one observation per index.

The store folds one update as one EMA step per sample, so rows that share an index are merged
first, deterministically and independently of their order: a value's merged observation is the
float64 sum of its rows (added in row order) divided by their number, as float32; of the
predicted labels the largest known one is kept. :func:`group_rows` groups the rows by index once
and hands out each value's merged column on demand (:class:`Grouped`), so only one value is
being merged at any time. How it groups depends on the window's size against the store's:

* small windows (``rows * 16 < num_samples``): a sort (``np.unique``), O(B log B);
* large ones, e.g. an epoch of reports: per-sample counts and sums over the store's index range
  (``np.bincount``, ``np.add.at`` in row order), O(B + N) with no sort of B rows.

Both give the same floats bit for bit (the same additions in the same order).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .blocks import BLOCK, blocks

_LABEL_UNKNOWN = np.iinfo(np.int32).max  # above every known label (labels are < 2^31)


class Grouped:
    """The rows of one update grouped by index (see the module docstring).

    ``idx``: the distinct indices, int [U] (sorted when rows were merged; the rows' own order
    when no index repeats); ``multiplicity``: rows per index, int [U], or None when every index
    occurs once. :meth:`mean`, :meth:`labels` and :meth:`unanimous` merge one value at a time;
    grouped by counts, they reuse one float64 buffer over the store's index range (8 bytes per
    sample).
    """

    def __init__(
        self,
        idx: np.ndarray,
        multiplicity: np.ndarray | None,
        *,
        inverse: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        scratch: np.ndarray | None = None,
    ) -> None:
        self.idx, self.multiplicity = idx, multiplicity
        self._inverse, self._rows, self._scratch = inverse, rows, scratch

    def __len__(self) -> int:
        return len(self.idx)

    def _by_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, scratch)`` of a grouping by counts (no ``inverse``): each row's index and
        the float64 buffer over the store's index range."""
        if self._rows is None or self._scratch is None:
            raise RuntimeError("grouped by sort: no per-sample buffer")
        return self._rows, self._scratch

    def mean(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 [U]: ``float32(sum(rows' values as float64, in row order) / multiplicity)``
        (into ``out`` when given); ``values`` (float32 [B]) itself when no index repeats."""
        if self.multiplicity is None:
            return values
        if self._inverse is not None:
            merged = (np.bincount(self._inverse, values) / self.multiplicity).astype(np.float32)
            if out is None:
                return merged
            out[...] = merged
            return out
        row_idx, sums = self._by_counts()
        sums.fill(0.0)
        _add_rows(sums, row_idx, values)
        out = np.empty(len(self.idx), dtype=np.float32) if out is None else out
        for lo, hi in blocks(len(self.idx)):
            out[lo:hi] = sums[self.idx[lo:hi]] / self.multiplicity[lo:hi]
        return out

    def unanimous(self, values: np.ndarray) -> np.ndarray:
        """bool [U]: every row of the index reported exactly the same value (all True when no
        index repeats), e.g. an RL prompt's group of completions with zero reward variance."""
        if self.multiplicity is None:
            return np.ones(len(self.idx), dtype=bool)
        if self._inverse is not None:
            low = np.full(len(self.idx), np.inf, dtype=values.dtype)
            high = np.full(len(self.idx), -np.inf, dtype=values.dtype)
            np.minimum.at(low, self._inverse, values)
            np.maximum.at(high, self._inverse, values)
            return low == high
        row_idx, scratch = self._by_counts()
        low, high = scratch.view(np.float32).reshape(2, -1)  # float32 extremes share its bytes
        low.fill(np.inf)
        high.fill(-np.inf)
        for lo, hi in _row_chunks(len(row_idx)):
            rows, chunk = row_idx[lo:hi], values[lo:hi].astype(np.float32, copy=False)
            np.minimum.at(low, rows, chunk)
            np.maximum.at(high, rows, chunk)
        return low[self.idx] == high[self.idx]

    def labels(self, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(merged, wandered)``: the largest known label of each index's rows (int [U], -1 if
        none) and bool [U], True where its rows named different known labels (None when no index
        repeats, ``merged`` then being ``pred``)."""
        if self.multiplicity is None:
            return pred, None
        if self._inverse is not None:
            pred = pred.astype(np.int64)
            merged = np.full(len(self.idx), -1, dtype=np.int64)
            np.maximum.at(merged, self._inverse, pred)
            unknown = np.iinfo(np.int64).max
            lowest = np.full(len(self.idx), unknown, dtype=np.int64)
            np.minimum.at(lowest, self._inverse, np.where(pred >= 0, pred, unknown))
        else:  # labels fit int32: the per-sample extremes share the float64 buffer's bytes
            row_idx, scratch = self._by_counts()
            highest, least = scratch.view(np.int32).reshape(2, -1)
            highest.fill(-1)
            least.fill(_LABEL_UNKNOWN)
            for lo, hi in _row_chunks(len(row_idx)):
                rows, chunk = row_idx[lo:hi], pred[lo:hi].astype(np.int32)
                np.maximum.at(highest, rows, chunk)
                np.minimum.at(least, rows, np.where(chunk >= 0, chunk, _LABEL_UNKNOWN))
            merged, lowest = highest[self.idx], least[self.idx]
        return merged, (merged >= 0) & (lowest != merged)


def _row_chunks(num_rows: int) -> Iterator[tuple[int, int]]:
    """Row ranges of a few blocks each: float64 copies of a chunk stay small."""
    for lo in range(0, num_rows, 16 * BLOCK):
        yield lo, min(lo + 16 * BLOCK, num_rows)


def _add_rows(sums: np.ndarray, rows: np.ndarray, values: np.ndarray | None) -> None:
    """``sums[rows[i]] += float64(values[i])`` (1.0 when ``values`` is None), in row order."""
    for lo, hi in _row_chunks(len(rows)):
        np.add.at(sums, rows[lo:hi], 1.0 if values is None else values[lo:hi].astype(np.float64))


def group_rows(idx: np.ndarray, num_samples: int, method: str | None = None) -> Grouped:
    """Group the rows of an update by index (int [B] in ``[0, num_samples)``).

    ``method``: ``"sort"`` (``np.unique``), ``"counts"`` (per-sample counts and sums over
    ``num_samples``) or None: counts when ``B * 16 >= num_samples``, else sort. The result
    does not depend on the method (see the module docstring)."""
    if method is None:
        method = "counts" if len(idx) * 16 >= num_samples else "sort"
    if method not in ("sort", "counts"):
        raise ValueError(f"method must be 'sort', 'counts' or None, got {method!r}")
    if method == "sort":
        if len(idx) < 2 or not _sorted_repeats(idx):
            return Grouped(idx, None)
        distinct, inverse, multiplicity = np.unique(idx, return_inverse=True, return_counts=True)
        return Grouped(distinct, multiplicity, inverse=inverse)
    counts = np.zeros(num_samples, dtype=np.float64)  # exact integer counts; later the sums
    _add_rows(counts, idx, None)
    num_distinct = int(np.count_nonzero(counts))
    if num_distinct == len(idx):
        return Grouped(idx, None)
    distinct = np.empty(
        num_distinct, dtype=np.int32 if num_samples <= np.iinfo(np.int32).max else np.int64
    )
    multiplicity = np.empty(
        num_distinct, dtype=np.uint32 if len(idx) <= np.iinfo(np.uint32).max else np.int64
    )
    at = 0
    for lo, hi in blocks(num_samples):
        found = np.flatnonzero(counts[lo:hi])
        distinct[at : at + len(found)] = found + lo
        multiplicity[at : at + len(found)] = counts[lo:hi][found]
        at += len(found)
    return Grouped(distinct, multiplicity, rows=idx, scratch=counts)


def _sorted_repeats(idx: np.ndarray) -> bool:
    ordered = np.sort(idx)
    return bool((ordered[1:] == ordered[:-1]).any())
