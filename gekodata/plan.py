"""Epoch plans: integer draw counts from weights, and the shuffled index stream.

Pure functions over whole arrays, O(N) time and memory, valid for any N (no torch.multinomial
2^24 category cap). Randomness comes only from the ``numpy.random.Generator`` passed in.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

Budget = Union[None, int, float]


def resolve_budget(budget: Budget, num_positive: int, num_samples: int, extra: float = 0.0) -> int:
    """Number of draws S for an epoch.

    Args:
        budget: None -> ``num_positive`` (+ ``extra``, rounded), so that frozen or pruned samples
            shorten the epoch; an int -> exactly that many draws; a float in (0, 1] -> that
            fraction of ``num_samples`` (the full dataset), rounded.
        num_positive: samples with weight > 0.
        num_samples: full dataset length.
        extra: fractional passes added to the default budget (unbiased mode's floored samples).
    """
    if budget is None:
        return int(round(num_positive + extra))
    if isinstance(budget, (bool, np.bool_)):
        raise ValueError(f"budget must be None, an int or a fraction, got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        return int(budget)
    if isinstance(budget, (float, np.floating)):
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"a fractional budget must be in (0, 1], got {budget}")
        return int(round(float(budget) * num_samples))
    raise ValueError(f"budget must be None, an int or a fraction, got {budget!r}")


def draw_counts(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Systematic (low-variance) rounding of ``total * weights / weights.sum()``.

    Returns int64 [N] counts with ``counts.sum() == total`` and every count within 1 of its
    expectation (``floor`` or ``ceil`` of it). One uniform offset ``u`` from ``rng`` places the
    grid ``u, u+1, ...`` over the cumulative expectations; a sample gets as many draws as grid
    points fall in its interval. Samples of weight 0 get 0 draws. Equal positive weights take an
    exact integer path (``total`` equal to their number gives each exactly one draw).
    """
    weights = np.asarray(weights, dtype=np.float64)
    n = len(weights)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if n and (not np.isfinite(weights).all() or weights.min() < 0):
        raise ValueError("weights must be finite and >= 0")
    positive = weights > 0
    num_positive = int(np.count_nonzero(positive))
    if total == 0 or num_positive == 0:
        return np.zeros(n, dtype=np.int64)
    offset = rng.random()
    pos_weights = weights[positive]
    if pos_weights.min() == pos_weights.max():
        base, remainder = divmod(total, num_positive)
        extra = np.zeros(num_positive, dtype=np.int64)
        if remainder:
            # systematic selection of `remainder` of `num_positive` equal slots
            grid = np.floor(offset + np.arange(remainder) * (num_positive / remainder)).astype(np.int64)
            extra[np.minimum(grid, num_positive - 1)] = 1
        counts = np.zeros(n, dtype=np.int64)
        counts[positive] = base + extra
        return counts
    cumulative = np.cumsum(weights)
    cumulative *= total / cumulative[-1]
    cumulative[-1] = total  # exact end point: sum(counts) == total
    grid_hits = np.floor(cumulative + offset).astype(np.int64)
    counts = np.diff(grid_hits, prepend=np.int64(np.floor(offset)))
    # float error can only shift a grid point by one ulp; zero-weight samples stay at zero
    counts[~positive] = 0
    np.maximum(counts, 0, out=counts)
    drift = int(total - counts.sum())
    if drift:
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


def index_dtype(num_samples: int) -> np.dtype:
    """Smallest signed dtype that holds indices below ``num_samples`` (int32 up to 2^31-1)."""
    return np.dtype(np.int32) if num_samples <= np.iinfo(np.int32).max else np.dtype(np.int64)


def shuffled_plan(counts: np.ndarray, rng: np.random.Generator, out_dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Sample ``i`` repeated ``counts[i]`` times, shuffled in place by ``rng``: int [sum(counts)]."""
    dtype = out_dtype or index_dtype(len(counts))
    plan = np.repeat(np.arange(len(counts), dtype=dtype), counts)
    rng.shuffle(plan)
    return plan


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The private generator of one epoch, seeded by (seed, epoch)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([int(seed), int(epoch)])
