"""Epoch plans: (store, policy, budget, seed, epoch) -> the epoch's index stream and loss weights.

:func:`plan_epoch` is the whole planning step and changes nothing: bucket weights for the
curriculum phase, the unbiased floor (optional), the budget, the forgetting audit's draws,
integer draw counts and the epoch's stream. Everything is O(N) and valid for any N (no
torch.multinomial 2^24 category cap); randomness comes only from generators seeded by
(seed, epoch).

Two paths give the draw counts. When the policy declares it
(:attr:`~gekodata.policy.SelectionPolicy.per_class_plan`: :class:`~gekodata.policy.BucketPolicy`
and :class:`~gekodata.policy.InfoBatchPolicy`, unbiased mode included) and every live sample's
weight is its bucket's (:meth:`~gekodata.policy.SelectionPolicy.bucket_weights`) the planner
works per *class* (bucket code, and whether the sample is dead: pruned or
over ``max_times_seen``; :mod:`gekodata.planning.class_draws`): exact counts per class and each class's
extra draws a uniform choice among its members. Otherwise it works per sample
(:func:`gekodata.planning.draws.draw_counts`): user policies by default, the rate policies
(their plans were always made there; :class:`~gekodata.policy.RatePolicy` says why they stay) and
:class:`~gekodata.policy.PromptPolicy` (weights vary within a bucket). Either way the draws are
laid out as a pool of sample indices and handed out in the order of a keyed permutation
(:mod:`gekodata.planning.stream`), so no O(S) shuffle is made.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Callable, NamedTuple, Union

import numpy as np

from ..arguments import check_unit_interval
from ..policy import NUM_BUCKETS, Bucket, Phase, SelectionPolicy
from ..policy.diagnosis import diagnose
from ..store.state_store import GEKOStateStore
from .audit import ForgettingAudit
from .class_draws import (
    DEAD,
    NUM_CLASSES,
    class_pool,
    class_sizes,
    expand,
    store_classes,
)
from .draws import draw_counts, index_dtype
from .record import EpochRecord
from .stream import EpochStream, KeyedPermutation

__all__ = [
    "Budget",
    "EpochPlan",
    "classify_epoch",
    "epoch_generator",
    "plan_epoch",
    "resolve_budget",
    "shuffled_plan",
    "unbiased_loss_weights",
]

Budget = Union[None, int, float]


@dataclass
class EpochPlan:
    """One epoch's plan.

    ``stream``: the global index stream (:class:`~gekodata.planning.stream.EpochStream`, int32/int64
    [S + audits] on demand; :attr:`indices` materialises it); ``loss_weights``: float32 [N]
    per-sample loss weights for this epoch, or None when the run has none; ``audits``: sorted
    int64 indices drawn once for the forgetting audit; ``record``: the epoch's counts."""

    stream: EpochStream
    loss_weights: np.ndarray | None
    audits: np.ndarray
    record: EpochRecord

    @property
    def indices(self) -> np.ndarray:
        """The whole index stream as an array (materialised on each call; O(S))."""
        return self.stream.materialize()


class _Draws(NamedTuple):
    """What either path hands to the end of :func:`plan_epoch`."""

    pool: np.ndarray | None  # sample index per draw, audits included; None: arange(N)
    loss_weights: np.ndarray | None  # float32 [N] or None
    bucket_counts: np.ndarray  # samples per bucket code, int64 [NUM_BUCKETS]
    unique_planned: int  # samples with at least one draw, audits excluded
    pruned: int


def plan_epoch(
    store: GEKOStateStore,
    policy: SelectionPolicy,
    *,
    epoch: int,
    num_epochs: int,
    seed: int,
    budget: Budget = None,
    unbiased_floor: float | None = None,
    audit: ForgettingAudit | None = None,
) -> EpochPlan:
    """Plan epoch ``epoch`` from the store's bucket codes (classified beforehand); pure.

    Steps: weights ``w_i`` of the phase's bucket table (0 for FREEZE, pruned, or over
    ``max_times_seen``) -> unbiased mode (``unbiased_floor`` given): every live sample keeps at
    least that weight, and gets loss weight ``v_i = sum(w) / (N_live * w_i)`` -> the budget S
    (:func:`resolve_budget`; an explicit budget includes the audits) -> the audits -> draw counts
    (per class, :func:`class_pool`, or per sample, :func:`draw_counts`) with one extra draw per
    audit -> the stream, permuted by ``epoch_generator(seed, epoch)``. Audited samples carry loss
    weight 0 (checked, not trained).
    """
    started = time.perf_counter()
    phase = policy.curriculum.phase_for_epoch(epoch, num_epochs)
    rng = epoch_generator(seed, epoch)
    table = policy.bucket_weights(phase) if policy.per_class_plan else None
    if table is None:
        draws, audits = _per_sample(
            store, policy, phase, table, budget, unbiased_floor, audit, epoch, rng
        )
    else:
        draws, audits = _per_class(
            store, policy, phase, table, budget, unbiased_floor, audit, epoch, rng
        )
    size = len(store) if draws.pool is None else len(draws.pool)
    stream = EpochStream(draws.pool, KeyedPermutation(size, rng), index_dtype(len(store)))
    loss_weights = draws.loss_weights
    if loss_weights is not None:
        loss_weights[audits] = 0.0
    data = diagnose(store).to_dict() if store.total_updates else None  # counted in plan_seconds
    record = EpochRecord(
        epoch=epoch,
        phase=phase.name,
        num_samples=len(store),
        planned=size,
        unique_planned=draws.unique_planned + len(audits),
        pruned=draws.pruned,
        buckets={b.name: int(n) for b, n in zip(Bucket, draws.bucket_counts)},
        plan_seconds=time.perf_counter() - started,
        audit_planned=len(audits),
        data=data,
    )
    return EpochPlan(stream, loss_weights, audits, record)


def _choose_audits(
    store: GEKOStateStore,
    policy: SelectionPolicy,
    audit: ForgettingAudit | None,
    weights_of: Callable[[], np.ndarray],
    epoch: int,
) -> np.ndarray:
    if audit is None or not audit.enabled:
        return np.empty(0, dtype=np.int64)
    return audit.choose(store, store.bucket, weights_of(), epoch, policy.max_times_seen)


def _explicit_total(budget: Budget, default: float, num_samples: int, audits: np.ndarray) -> int:
    total = resolve_budget(budget, default, num_samples)
    if budget is not None:  # an explicit budget includes the audits
        total = max(total - len(audits), 0)
    return total


def _per_sample(
    store: GEKOStateStore,
    policy: SelectionPolicy,
    phase: Phase,
    table: np.ndarray | None,
    budget: Budget,
    unbiased_floor: float | None,
    audit: ForgettingAudit | None,
    epoch: int,
    rng: np.random.Generator,
) -> tuple[_Draws, np.ndarray]:
    """Draws from per-sample weights (:meth:`SelectionPolicy.sample_weights`, :func:`draw_counts`)."""
    codes = store.bucket
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
    audits = _choose_audits(store, policy, audit, lambda: weights, epoch)
    total = _explicit_total(budget, default_budget, len(store), audits)
    counts = draw_counts(weights, total, rng)
    unique = int(np.count_nonzero(counts))
    counts[audits] += 1
    pool = np.repeat(np.arange(len(store), dtype=index_dtype(len(store))), counts)
    loss_weights = (
        unbiased_loss_weights(weights)
        if unbiased_floor is not None
        else policy.loss_weight_table(weights, codes)
    )
    if loss_weights is not None:
        loss_weights = np.asarray(loss_weights, dtype=np.float32)
    draws = _Draws(
        pool,
        loss_weights,
        np.bincount(codes, minlength=NUM_BUCKETS)[:NUM_BUCKETS],
        unique,
        store.num_pruned,
    )
    return draws, audits


def _per_class(
    store: GEKOStateStore,
    policy: SelectionPolicy,
    phase: Phase,
    table: np.ndarray,
    budget: Budget,
    unbiased_floor: float | None,
    audit: ForgettingAudit | None,
    epoch: int,
    rng: np.random.Generator,
) -> tuple[_Draws, np.ndarray]:
    """Draws from per-bucket weights, a class at a time (:func:`class_pool`)."""
    classes = store_classes(store, policy.max_times_seen)
    sizes = class_sizes(classes, len(store))
    totals = sizes.sum(axis=0)
    weights = np.zeros(NUM_CLASSES, dtype=np.float64)
    weights[: len(table)] = table  # live classes; dead ones (DEAD and above) keep 0
    codes = np.arange(NUM_CLASSES) % DEAD
    default_budget = policy.default_budget(weights, codes, counts=totals)
    if unbiased_floor is not None:
        to_floor = np.arange(NUM_CLASSES) < DEAD
        to_floor &= weights < unbiased_floor
        default_budget += unbiased_floor * int(totals[to_floor & (weights == 0)].sum())
        weights[to_floor] = unbiased_floor
    audits = _choose_audits(
        store, policy, audit, lambda: expand(classes, weights.astype(np.float32), len(store)), epoch
    )
    total = _explicit_total(budget, default_budget, len(store), audits)
    pool = class_pool(
        classes, sizes, weights, total, rng, index_dtype(len(store)), extra_indices=audits
    )
    values: np.ndarray | None
    if unbiased_floor is not None:
        values = unbiased_loss_weights(weights, totals)
    else:
        values = policy.loss_weight_table(weights, codes)  # per class: codes[k] is class k's bucket
    loss_weights = (
        None
        if values is None
        else expand(classes, np.asarray(values, dtype=np.float32), len(store))
    )
    bucket_counts = (totals[:DEAD] + totals[DEAD:])[:NUM_BUCKETS]
    pruned = store.num_pruned if policy.max_times_seen is not None else int(totals[DEAD:].sum())
    draws = _Draws(pool.indices, loss_weights, bucket_counts, pool.unique, pruned)
    return draws, audits


def classify_epoch(
    store: GEKOStateStore, policy: SelectionPolicy, prune_frozen_after: int | None
) -> None:
    """The once-per-epoch step before planning, in place: advance the policy's run state
    (:meth:`~gekodata.policy.SelectionPolicy.advance`), classify every sample, write its bucket
    code and advance the frozen streaks (FREEZE grows them, other buckets reset them), then prune
    the samples frozen for ``prune_frozen_after`` consecutive epochs (None or 0: never)."""
    if prune_frozen_after and policy.rechecks_skipped and store.total_updates == 0:
        warn_pruning_defeats_policy(policy, prune_frozen_after)  # a new run: once, at the start
    policy.advance(store)  # the policy's run state, if any (once per epoch)
    codes = policy.classify(store)
    store.set_buckets(codes, codes == Bucket.FREEZE)
    if prune_frozen_after:
        store.set_pruned(store.frozen_streak >= prune_frozen_after)


def warn_pruning_defeats_policy(policy: SelectionPolicy, prune_frozen_after: int) -> None:
    """``UserWarning``: ``policy`` re-checks the samples it skips
    (:attr:`SelectionPolicy.rechecks_skipped`) and pruning after ``prune_frozen_after`` frozen
    epochs removes them for good."""
    name = type(policy).__name__
    warnings.warn(
        f"PruningDataset(prune_frozen_after={prune_frozen_after}) with {name}: {name} still draws "
        "the samples it skips (bucket FREEZE) at a reduced rate to re-check them, but pruning "
        f"removes them for good after {prune_frozen_after} frozen epochs, so they are never "
        "re-checked (a forgotten sample stays skipped). Drop prune_frozen_after, or use "
        "BucketPolicy, which does not draw its frozen samples (freeze weight 0 by default), so "
        "pruning them loses nothing",
        UserWarning,
        stacklevel=2,
    )


def unbiased_loss_weights(weights: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """``v_i = sum(w) / (N_live * w_i)`` for ``w_i > 0``, else 0: float32 [N]. Drawing ``i``
    with probability proportional to ``w_i``, the mean of ``v * loss`` over the draws estimates
    the mean loss over the live samples. With ``counts``, entry ``g`` of ``weights`` stands for
    ``counts[g]`` samples (one entry per class) and the result is per entry."""
    positive = weights > 0
    num_live = int(np.count_nonzero(positive)) if counts is None else int(counts[positive].sum())
    values = np.zeros(len(weights), dtype=np.float32)
    if num_live:
        total = weights.sum() if counts is None else float(np.dot(counts, weights))
        values[positive] = total / (num_live * weights[positive])
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
        return round(default)
    if isinstance(budget, (bool, np.bool_)):
        raise ValueError(f"budget must be None, an int or a fraction, got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        return int(budget)
    if isinstance(budget, (float, np.floating)):
        fraction = check_unit_interval("a fractional budget", budget, exclude_zero=True)
        return round(fraction * num_samples)
    raise ValueError(f"budget must be None, an int or a fraction, got {budget!r}")


def shuffled_plan(
    counts: np.ndarray, rng: np.random.Generator, out_dtype: np.dtype | None = None
) -> np.ndarray:
    """Sample ``i`` repeated ``counts[i]`` times, in the order of a keyed permutation drawn from
    ``rng`` (:mod:`gekodata.planning.stream`): int [sum(counts)]."""
    dtype = out_dtype or index_dtype(len(counts))
    pool = np.repeat(np.arange(len(counts), dtype=dtype), counts)
    return EpochStream(pool, KeyedPermutation(len(pool), rng), dtype).materialize()


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The private generator of one epoch, seeded by (seed, epoch)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return np.random.default_rng([int(seed), int(epoch)])
