"""Epoch plans: (store, policy, budget, seed, epoch) -> the epoch's index stream and loss weights.

:func:`plan_epoch` is the whole planning step and changes nothing: bucket weights for the
curriculum phase, the unbiased floor (optional), the budget, the forgetting audit's draws,
integer draw counts and the epoch's stream. The helpers below it are pure functions over whole
arrays, O(N) time and memory, valid for any N (no torch.multinomial 2^24 category cap).
Randomness comes only from generators seeded by (seed, epoch). The draws are laid out as a pool
of sample indices and handed out in the order of a keyed permutation (:mod:`gekodata.stream`),
so no O(S) shuffle is made.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from .audit import ForgettingAudit
from .policy import Bucket, SelectionPolicy
from .report import EpochRecord
from .state import GEKOStateStore
from .stream import EpochStream, KeyedPermutation

Budget = Union[None, int, float]


@dataclass
class EpochPlan:
    """One epoch's plan.

    ``stream``: the global index stream (:class:`~gekodata.stream.EpochStream`, int32/int64
    [S + audits] on demand; :attr:`indices` materialises it); ``loss_weights``: float32 [N]
    per-sample loss weights for this epoch, or None when the run has none; ``audits``: sorted
    int64 indices drawn once for the forgetting audit; ``record``: the epoch's counts."""

    stream: EpochStream
    loss_weights: Optional[np.ndarray]
    audits: np.ndarray
    record: EpochRecord

    @property
    def indices(self) -> np.ndarray:
        """The whole index stream as an array (materialised on each call; O(S))."""
        return self.stream.materialize()


def plan_epoch(store: GEKOStateStore, policy: SelectionPolicy, *, epoch: int, num_epochs: int, seed: int,
               budget: Budget = None, unbiased_floor: Optional[float] = None,
               audit: Optional[ForgettingAudit] = None) -> EpochPlan:
    """Plan epoch ``epoch`` from the store's bucket codes (classified beforehand); pure.

    Steps: weights ``w_i`` of the phase's bucket table (0 for FREEZE, pruned, or over
    ``max_times_seen``) -> unbiased mode (``unbiased_floor`` given): every live sample keeps at
    least that weight, and gets loss weight ``v_i = sum(w) / (N_live * w_i)`` -> the budget S
    (:func:`resolve_budget`; an explicit budget includes the audits) -> the audits -> draw counts
    (:func:`draw_counts`) with one extra draw per audit -> the stream, permuted by
    ``epoch_generator(seed, epoch)``. Audited samples carry loss weight 0 (checked, not trained).
    """
    started = time.perf_counter()
    codes = store.bucket
    phase = policy.curriculum.phase_for_epoch(epoch, num_epochs)
    weights = policy.sample_weights(store, codes, phase)
    default_budget = policy.default_budget(weights, codes)
    if unbiased_floor is not None:
        live = ~store.pruned
        if policy.max_times_seen is not None:
            live &= store.visits < policy.max_times_seen
        to_floor = live & (weights < unbiased_floor)
        # each floored sample that had weight 0 adds unbiased_floor of a pass to the budget
        default_budget += unbiased_floor * int(np.count_nonzero(to_floor & (weights == 0)))
        weights[to_floor] = unbiased_floor
    total = resolve_budget(budget, default_budget, len(store))
    audits = (audit.choose(store, codes, weights, epoch, policy.max_times_seen) if audit is not None
              else np.empty(0, dtype=np.int64))
    if budget is not None:  # an explicit budget includes the audits
        total = max(total - len(audits), 0)
    rng = epoch_generator(seed, epoch)
    counts = draw_counts(weights, total, rng)
    counts[audits] += 1
    pool = np.repeat(np.arange(len(store), dtype=index_dtype(len(store))), counts)
    stream = EpochStream(pool, KeyedPermutation(len(pool), rng), pool.dtype)
    loss_weights = unbiased_loss_weights(weights) if unbiased_floor is not None else policy.loss_weight_table(weights)
    if loss_weights is not None:
        loss_weights = np.asarray(loss_weights, dtype=np.float32)
        loss_weights[audits] = 0.0
    record = EpochRecord(
        epoch=epoch,
        phase=phase.name,
        num_samples=len(store),
        planned=len(stream),
        unique_planned=int(np.count_nonzero(counts)),
        pruned=store.num_pruned,
        buckets={b.name: int(n) for b, n in zip(Bucket, np.bincount(codes, minlength=len(Bucket)))},
        plan_seconds=time.perf_counter() - started,
        audit_planned=len(audits),
    )
    return EpochPlan(stream, loss_weights, audits, record)


def classify_epoch(store: GEKOStateStore, policy: SelectionPolicy, prune_frozen_after: Optional[int]) -> None:
    """The once-per-epoch step before planning, in place: classify every sample, write its bucket
    code and advance the frozen streaks (FREEZE grows them, other buckets reset them), then prune
    the samples frozen for ``prune_frozen_after`` consecutive epochs (None or 0: never)."""
    codes = policy.classify(store)
    store.set_buckets(codes, codes == Bucket.FREEZE)
    if prune_frozen_after:
        store.set_pruned(store.frozen_streak >= prune_frozen_after)


def unbiased_loss_weights(weights: np.ndarray) -> np.ndarray:
    """``v_i = sum(w) / (N_live * w_i)`` for ``w_i > 0``, else 0: float32 [N]. Drawing ``i``
    with probability proportional to ``w_i``, the mean of ``v * loss`` over the draws estimates
    the mean loss over the live samples."""
    positive = weights > 0
    num_live = int(np.count_nonzero(positive))
    values = np.zeros(len(weights), dtype=np.float32)
    if num_live:
        values[positive] = weights.sum() / (num_live * weights[positive])
    return values


def resolve_budget(budget: Budget, default: float, num_samples: int) -> int:
    """Number of draws S for an epoch.

    Args:
        budget: None -> ``default`` rounded (the policy's default: usually the number of samples
            with weight > 0, so that frozen or pruned samples shorten the epoch); an int ->
            exactly that many draws; a float in (0, 1] -> that fraction of ``num_samples`` (the
            full dataset), rounded.
        default: draws when ``budget`` is None (>= 0).
        num_samples: full dataset length.
    """
    if budget is None:
        return int(round(default))
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


def index_dtype(num_samples: int) -> np.dtype:
    """Smallest signed dtype that holds indices below ``num_samples`` (int32 up to 2^31-1)."""
    return np.dtype(np.int32) if num_samples <= np.iinfo(np.int32).max else np.dtype(np.int64)


def shuffled_plan(counts: np.ndarray, rng: np.random.Generator, out_dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Sample ``i`` repeated ``counts[i]`` times, in the order of a keyed permutation drawn from
    ``rng`` (:mod:`gekodata.stream`): int [sum(counts)]."""
    dtype = out_dtype or index_dtype(len(counts))
    pool = np.repeat(np.arange(len(counts), dtype=dtype), counts)
    return EpochStream(pool, KeyedPermutation(len(pool), rng), dtype).materialize()


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The private generator of one epoch, seeded by (seed, epoch)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([int(seed), int(epoch)])
