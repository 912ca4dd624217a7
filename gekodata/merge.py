"""Combining the repeated indices of one store update into one observation per index.

The store folds one update as one EMA step per sample, so rows that share an index are merged
first, deterministically and independently of their order (:func:`merge_duplicates`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class Merged(NamedTuple):
    """One observation per distinct index of an update (all arrays [U], U distinct indices)."""

    idx: np.ndarray
    """int64 [U], sorted ascending."""
    loss: np.ndarray
    """float32 [U]: mean of the rows' losses."""
    conf: np.ndarray
    """float32 [U]: mean confidence."""
    correct: np.ndarray
    """float32 [U]: mean correctness."""
    pred: Optional[np.ndarray]
    """int64 [U]: largest known predicted label (-1 if none), or None without labels."""
    multiplicity: np.ndarray
    """int64 [U]: rows merged into each."""
    wandered: Optional[np.ndarray]
    """bool [U]: the rows carried different known labels (None without labels)."""
    unanimous: Optional[np.ndarray] = None
    """bool [U]: every row of the index reported the same correctness (None unless asked for)."""


def has_duplicates(idx: np.ndarray, num_samples: int) -> bool:
    """Whether ``idx`` (int [B] in [0, num_samples)) repeats an index: a bitmap for large
    updates, a sort for small ones."""
    if len(idx) < 2:
        return False
    if len(idx) * 16 >= num_samples:
        mark = np.zeros(num_samples, dtype=np.bool_)
        mark[idx] = True
        return int(np.count_nonzero(mark)) != len(idx)
    ordered = np.sort(idx)
    return bool((ordered[1:] == ordered[:-1]).any())


def merge_duplicates(idx: np.ndarray, loss: np.ndarray, conf: np.ndarray, correct: np.ndarray,
                     pred: Optional[np.ndarray], *, unanimity: bool = False) -> Merged:
    """Merge rows that share an index (arrays [B]): losses, confidences and correctness are
    averaged; of the predicted labels the largest known one is kept, and ``wandered`` marks
    indices whose rows named different known labels. With ``unanimity``, ``unanimous`` marks
    indices whose rows all reported exactly the same correctness (an RL prompt's group of
    completions with zero reward variance)."""
    raw_correct = correct
    idx, inverse, multiplicity = np.unique(idx, return_inverse=True, return_counts=True)
    loss, conf, correct = ((np.bincount(inverse, x) / multiplicity).astype(np.float32)
                           for x in (loss, conf, correct))
    wandered = None
    if pred is not None:
        pred = pred.astype(np.int64)
        merged = np.full(len(idx), -1, dtype=np.int64)
        np.maximum.at(merged, inverse, pred)
        unknown = np.iinfo(np.int64).max
        lowest = np.full(len(idx), unknown, dtype=np.int64)
        np.minimum.at(lowest, inverse, np.where(pred >= 0, pred, unknown))
        wandered = (merged >= 0) & (lowest != merged)
        pred = merged
    unanimous = None
    if unanimity:  # min == max of the rows' correctness per index: sort rows by index, reduce runs
        order = np.argsort(inverse, kind="stable")
        starts = np.zeros(len(idx), dtype=np.int64)
        np.cumsum(multiplicity[:-1], out=starts[1:])
        ordered = raw_correct[order]
        unanimous = np.minimum.reduceat(ordered, starts) == np.maximum.reduceat(ordered, starts)
    return Merged(idx, loss, conf, correct, pred, multiplicity, wandered, unanimous)
