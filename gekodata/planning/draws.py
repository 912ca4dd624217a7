"""Per-sample draw counts: integer draws per sample from arbitrary weights (the planner's general
path, :func:`draw_counts`), and the index dtype of a plan."""

from __future__ import annotations

import numpy as np


def index_dtype(num_samples: int) -> np.dtype:
    """Smallest signed dtype that holds indices below ``num_samples`` (int32 up to 2^31-1)."""
    return np.dtype(np.int32) if num_samples <= np.iinfo(np.int32).max else np.dtype(np.int64)


def draw_counts(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer draw counts with ``counts.sum() == total`` and expectation ``total * w / sum(w)``.

    Every sample gets the floor of its expectation ``e_i`` plus at most one extra draw; the extra
    draws go to a systematic (low-variance) sample over the fractional parts ``e_i - floor(e_i)``
    taken in a random order, so sample ``i`` gets its extra draw with probability exactly its
    fractional part and *which* samples get one is random (a systematic grid over index order
    would only ever pick a few fixed stripes, e.g. all even or all odd indices at half the data).
    Samples of weight 0 get 0 draws. Equal positive weights take an exact integer path (``total``
    equal to their number gives each exactly one draw; fewer draws pick a uniform random subset).
    Randomness from ``rng`` only: a shuffle of the samples with a fractional part and one grid
    offset (equal weights: one choice without replacement). O(N) time and memory.
    """
    weights = np.asarray(weights, dtype=np.float64)
    n = len(weights)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if n and (not np.isfinite(weights).all() or weights.min() < 0):
        raise ValueError("weights must be finite and >= 0")
    positive = np.flatnonzero(weights > 0)
    num_positive = len(positive)
    counts = np.zeros(n, dtype=np.int64)
    if total == 0 or num_positive == 0:
        return counts
    pos_weights = weights[positive]
    if pos_weights.min() == pos_weights.max():
        base, remainder = divmod(total, num_positive)
        counts[positive] = base
        if remainder:
            counts[positive[rng.choice(num_positive, remainder, replace=False, shuffle=False)]] += 1
        return counts
    expected = pos_weights * (total / pos_weights.sum())
    base = np.floor(expected)
    counts[positive] = base.astype(np.int64)
    remainder = int(total - counts.sum())
    if remainder > 0:
        # extra draws: a systematic grid over the fractional parts, walked in a random order
        fraction = expected - base
        candidates = np.flatnonzero(fraction > 0)
        order = np.arange(len(candidates), dtype=index_dtype(len(candidates)))
        rng.shuffle(order)
        cumulative = np.cumsum(fraction[candidates][order])
        cumulative *= remainder / cumulative[-1]
        cumulative[-1] = remainder  # exact end point
        hits = np.floor(cumulative + rng.random()).astype(np.int64)
        chosen = order[np.diff(hits, prepend=np.int64(0)) > 0]  # at most one extra draw each
        counts[positive[candidates[chosen]]] += 1
    drift = int(total - counts.sum())
    if drift:  # float error only (a fractional part scaled past 1, or floors summing past total)
        _repair_drift(counts, weights, drift)
    return counts


def _repair_drift(counts: np.ndarray, weights: np.ndarray, drift: int) -> None:
    """Fix a sum off by float error (never seen in practice) on the heaviest samples."""
    order = np.argsort(-weights, kind="stable")
    step = 1 if drift > 0 else -1
    i = 0
    while drift:
        j = order[i % len(order)]
        if weights[j] > 0 and counts[j] + step >= 0:
            counts[j] += step
            drift -= step
        i += 1
