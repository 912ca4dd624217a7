"""Epoch plans: (store, policy, budget, seed, epoch) -> the epoch's index stream and loss weights.

:func:`plan_epoch` is the whole planning step and changes nothing: bucket weights for the
curriculum phase, the unbiased floor (optional), the budget, the forgetting audit's draws,
integer draw counts and the epoch's stream. Everything is O(N) and valid for any N (no
torch.multinomial 2^24 category cap); randomness comes only from generators seeded by
(seed, epoch).

Two paths give the draw counts. When every live sample's weight is its bucket's
(:meth:`~gekodata.policy.SelectionPolicy.bucket_weights`: every built-in policy, unbiased mode
included) the planner works per *class* (bucket code, and whether the sample is dead: pruned or
over ``max_times_seen``): a few passes over the store's bytes a block at a time (:mod:`gekodata.blocks`), exact counts per
class (:func:`class_draw_counts`), and each class's extra draws a uniform choice among its members
(:func:`class_pool`). Otherwise it works per sample (:func:`draw_counts`). Either way the draws are
laid out as a pool of sample indices and handed out in the order of a keyed permutation
(:mod:`gekodata.stream`), so no O(S) shuffle is made.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, NamedTuple, Optional, Tuple, Union

import numpy as np

from .audit import ForgettingAudit
from .blocks import BLOCK, blocks
from .columns import BUCKET_MASK, PRUNED_BIT
from .policy import NUM_BUCKETS, Bucket, Phase, SelectionPolicy
from .report import EpochRecord
from .state import GEKOStateStore
from .stream import EpochStream, KeyedPermutation

Budget = Union[None, int, float]

NUM_CLASSES = 16
"""Draw classes: bucket code (0-7) for a live sample, bucket code + ``DEAD`` for a dead one."""
DEAD = int(PRUNED_BIT)
"""Added to the bucket code of a dead sample (pruned, or at ``max_times_seen``): weight 0. It is
the pruned flag's bit, so ``flags & (BUCKET_MASK | PRUNED_BIT)`` is already a pruned sample's class."""

ClassSource = Callable[[int, int], np.ndarray]
"""``classes(lo, hi)``: the draw class of samples ``lo..hi-1``, uint8 [hi - lo]."""


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


class _Draws(NamedTuple):
    """What either path hands to the end of :func:`plan_epoch`."""

    pool: Optional[np.ndarray]  # sample index per draw, audits included; None: arange(N)
    loss_weights: Optional[np.ndarray]  # float32 [N] or None
    bucket_counts: np.ndarray  # samples per bucket code, int64 [NUM_BUCKETS]
    unique_planned: int  # samples with at least one draw, audits excluded
    pruned: int


def plan_epoch(store: GEKOStateStore, policy: SelectionPolicy, *, epoch: int, num_epochs: int, seed: int,
               budget: Budget = None, unbiased_floor: Optional[float] = None,
               audit: Optional[ForgettingAudit] = None) -> EpochPlan:
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
    table = policy.bucket_weights(phase)
    plan_draws = _per_sample if table is None or not _takes_counts(policy) else _per_class
    draws, audits = plan_draws(store, policy, phase, table, budget, unbiased_floor, audit, epoch, rng)
    size = len(store) if draws.pool is None else len(draws.pool)
    stream = EpochStream(draws.pool, KeyedPermutation(size, rng), index_dtype(len(store)))
    loss_weights = draws.loss_weights
    if loss_weights is not None:
        loss_weights[audits] = 0.0
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
    )
    return EpochPlan(stream, loss_weights, audits, record)


def _takes_counts(policy: SelectionPolicy) -> bool:
    """Whether ``policy.default_budget`` takes per-group ``counts`` (the per-class path needs it)."""
    return "counts" in inspect.signature(policy.default_budget).parameters


def _choose_audits(store: GEKOStateStore, policy: SelectionPolicy, audit: Optional[ForgettingAudit],
                   weights_of: Callable[[], np.ndarray], epoch: int) -> np.ndarray:
    if audit is None or not audit.enabled:
        return np.empty(0, dtype=np.int64)
    return audit.choose(store, store.bucket, weights_of(), epoch, policy.max_times_seen)


def _explicit_total(budget: Budget, default: float, num_samples: int, audits: np.ndarray) -> int:
    total = resolve_budget(budget, default, num_samples)
    if budget is not None:  # an explicit budget includes the audits
        total = max(total - len(audits), 0)
    return total


def _per_sample(store: GEKOStateStore, policy: SelectionPolicy, phase: Phase, table: Optional[np.ndarray],
                budget: Budget, unbiased_floor: Optional[float], audit: Optional[ForgettingAudit], epoch: int,
                rng: np.random.Generator) -> Tuple[_Draws, np.ndarray]:
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
    loss_weights = unbiased_loss_weights(weights) if unbiased_floor is not None else policy.loss_weight_table(weights)
    if loss_weights is not None:
        loss_weights = np.asarray(loss_weights, dtype=np.float32)
    draws = _Draws(pool, loss_weights, np.bincount(codes, minlength=NUM_BUCKETS)[:NUM_BUCKETS],
                   unique, store.num_pruned)
    return draws, audits


def _per_class(store: GEKOStateStore, policy: SelectionPolicy, phase: Phase, table: np.ndarray,
               budget: Budget, unbiased_floor: Optional[float], audit: Optional[ForgettingAudit], epoch: int,
               rng: np.random.Generator) -> Tuple[_Draws, np.ndarray]:
    """Draws from per-bucket weights, a class at a time (:func:`class_pool`)."""
    classes = store_classes(store, policy.max_times_seen)
    sizes = class_sizes(classes, len(store))
    totals = sizes.sum(axis=0)
    weights = np.zeros(NUM_CLASSES, dtype=np.float64)
    weights[:len(table)] = table  # live classes; dead ones (DEAD and above) keep 0
    codes = np.arange(NUM_CLASSES) % DEAD
    default_budget = policy.default_budget(weights, codes, counts=totals)
    if unbiased_floor is not None:
        to_floor = np.arange(NUM_CLASSES) < DEAD
        to_floor &= weights < unbiased_floor
        default_budget += unbiased_floor * int(totals[to_floor & (weights == 0)].sum())
        weights[to_floor] = unbiased_floor
    audits = _choose_audits(store, policy, audit, lambda: expand(classes, weights.astype(np.float32), len(store)), epoch)
    total = _explicit_total(budget, default_budget, len(store), audits)
    pool = class_pool(classes, sizes, weights, total, rng, index_dtype(len(store)), extra_indices=audits)
    if unbiased_floor is not None:
        values = unbiased_loss_weights(weights, totals)
    else:
        values = policy.loss_weight_table(weights)
    loss_weights = None if values is None else expand(classes, np.asarray(values, dtype=np.float32), len(store))
    bucket_counts = (totals[:DEAD] + totals[DEAD:])[:NUM_BUCKETS]
    pruned = store.num_pruned if policy.max_times_seen is not None else int(totals[DEAD:].sum())
    draws = _Draws(pool.indices, loss_weights, bucket_counts, pool.unique, pruned)
    return draws, audits


def classify_epoch(store: GEKOStateStore, policy: SelectionPolicy, prune_frozen_after: Optional[int]) -> None:
    """The once-per-epoch step before planning, in place: classify every sample, write its bucket
    code and advance the frozen streaks (FREEZE grows them, other buckets reset them), then prune
    the samples frozen for ``prune_frozen_after`` consecutive epochs (None or 0: never)."""
    codes = policy.classify(store)
    store.set_buckets(codes, codes == Bucket.FREEZE)
    if prune_frozen_after:
        store.set_pruned(store.frozen_streak >= prune_frozen_after)


def unbiased_loss_weights(weights: np.ndarray, counts: Optional[np.ndarray] = None) -> np.ndarray:
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


def store_classes(store: GEKOStateStore, max_times_seen: Optional[int]) -> ClassSource:
    """The draw classes of ``store``'s samples (bucket code, + ``DEAD`` if pruned or with
    ``max_times_seen`` reported passes), computed a block at a time from the flags and visits."""
    flags, visits = store.columns["flags"], store.columns["visits"]
    mask = np.uint8(BUCKET_MASK | PRUNED_BIT)

    def classes(lo: int, hi: int) -> np.ndarray:
        cls = flags[lo:hi] & mask
        if max_times_seen is not None:
            cls |= (visits[lo:hi] >= max_times_seen).view(np.uint8) * np.uint8(DEAD)
        return cls

    return classes


def class_sizes(classes: ClassSource, num_samples: int) -> np.ndarray:
    """Samples per (block of ``BLOCK`` samples, class): int64 [num_blocks, NUM_CLASSES]."""
    sizes = np.zeros((-(-num_samples // BLOCK), NUM_CLASSES), dtype=np.int64)
    for row, (lo, hi) in zip(sizes, blocks(num_samples)):
        cls = classes(lo, hi)
        for k in range(int(cls.max()) + 1 if len(cls) else 0):
            row[k] = np.count_nonzero(cls == k)
    return sizes


def class_draw_counts(sizes: np.ndarray, weights: np.ndarray, total: int,
                      rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Per-class draw counts ``(base, extra)``, int64 [K] each, for classes of ``sizes[k]``
    samples that all weigh ``weights[k]``: every member of class ``k`` gets ``base[k]`` draws,
    and ``extra[k]`` of them one more, so that each sample's count is the floor or the ceiling of
    its expectation ``e_k = total * w_k / sum(sizes * w)``, ``extra[k]`` has expectation
    ``sizes[k] * (e_k - base[k])`` and ``sum(sizes * base) + sum(extra) == total``.

    Exact: rational arithmetic (the weights are exact binary fractions), then a systematic sample
    over the classes in a random order with one uniform offset (each ``extra[k]`` is the floor
    or ceiling of its share). Classes of weight 0 get nothing; ``total`` 0 or no positive weight:
    all zeros. Randomness from ``rng`` only (a permutation of the classes and one float).
    """
    sizes, weights = np.asarray(sizes, dtype=np.int64), np.asarray(weights, dtype=np.float64)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if len(weights) and (not np.isfinite(weights).all() or weights.min() < 0):
        raise ValueError("weights must be finite and >= 0")
    base, extra = np.zeros(len(sizes), dtype=np.int64), np.zeros(len(sizes), dtype=np.int64)
    drawable = np.flatnonzero((weights > 0) & (sizes > 0))
    if total == 0 or len(drawable) == 0:
        return base, extra
    weight = {int(k): Fraction(float(weights[k])) for k in drawable}
    scale = Fraction(int(total)) / sum(int(sizes[k]) * w for k, w in weight.items())
    share: dict = {}
    for k, w in weight.items():
        expected = w * scale
        base[k] = expected.numerator // expected.denominator
        share[k] = int(sizes[k]) * (expected - int(base[k]))
    offset, reached, hits = Fraction(rng.random()), Fraction(0), 0
    for k in rng.permutation(drawable).tolist():
        reached += share[k]
        step = int(reached + offset) - hits  # int() floors a non-negative Fraction
        extra[k], hits = step, hits + step
    return base, extra


class ClassPool(NamedTuple):
    """An epoch's draws laid out by class: ``indices`` holds one sample index per draw (dtype
    [S], in block and class order; None when every sample is drawn exactly once), ``base`` and
    ``extra`` the per-class counts (:func:`class_draw_counts`), ``unique`` the number of samples
    with at least one draw (``extra_indices`` not included)."""

    indices: Optional[np.ndarray]
    base: np.ndarray
    extra: np.ndarray
    unique: int


def class_pool(classes: ClassSource, sizes: np.ndarray, weights: np.ndarray, total: int,
               rng: np.random.Generator, dtype: np.dtype,
               extra_indices: Optional[np.ndarray] = None) -> ClassPool:
    """Draw ``total`` times from samples whose weight is their class's, exactly.

    ``classes``: the class of each sample (:data:`ClassSource`); ``sizes``: int64
    [num_blocks, K] from :func:`class_sizes`; ``weights``: float64 [<= K] (missing classes weigh
    0). Each class's counts come
    from :func:`class_draw_counts`; its ``extra[k]`` extra draws are spread over the blocks by a
    systematic sample in proportion to the block's members (a random offset: block ``b`` gets the
    floor or ceiling of ``extra[k] * m_b / sizes[k]``, exactly that in expectation), then given to
    a uniform random subset of the block's members of the class. So every member of class ``k``
    gets an extra draw with probability exactly ``extra[k] / sizes[k]``, and which ones is random
    (no stripes). ``extra_indices`` (e.g. the audits) are appended, one draw each. O(N) over bytes
    a block at a time, O(S) output; no N-sized temporaries.
    """
    num_samples = int(sizes.sum())
    totals = sizes.sum(axis=0)
    padded = np.zeros(len(totals), dtype=np.float64)
    padded[:len(weights)] = weights
    base, extra = class_draw_counts(totals, padded, total, rng)
    extra_indices = np.empty(0, dtype=np.int64) if extra_indices is None else extra_indices
    unique = int(np.where(base > 0, totals, extra).sum())
    if len(extra_indices) == 0 and unique == num_samples > 0 and int(base.max()) == 1 and not extra.any():
        return ClassPool(None, base, extra, unique)  # every sample exactly once: the identity pool
    spread = {k: _spread(sizes[:, k], int(extra[k]), rng) for k in np.flatnonzero(extra).tolist()}
    active = np.flatnonzero((base > 0) | (extra > 0)).tolist()
    pool = np.empty(int(np.dot(totals, base)) + int(extra.sum()) + len(extra_indices), dtype=dtype)
    at = 0
    for block, (lo, hi) in enumerate(blocks(num_samples)):
        cls = None
        for k in active:
            members, copies = int(sizes[block, k]), int(base[k])
            chosen = int(spread[k][block]) if k in spread else 0
            if members == 0 or (copies == 0 and chosen == 0):
                continue
            if cls is None:
                cls = classes(lo, hi)
            where = np.flatnonzero(cls == k)
            if copies:
                rows = pool[at:at + members * copies].reshape(copies, members)
                np.add(where, lo, out=rows[0], casting="unsafe")
                rows[1:] = rows[0]
                at += members * copies
            if chosen:
                np.add(where[_choose(rng, members, chosen)], lo, out=pool[at:at + chosen], casting="unsafe")
                at += chosen
    pool[at:] = extra_indices
    return ClassPool(pool, base, extra, unique)


def _spread(members: np.ndarray, extra: int, rng: np.random.Generator) -> np.ndarray:
    """``extra`` draws spread over blocks of ``members`` (int64 [B]) samples: a systematic sample
    with a uniform integer offset, block ``b`` getting ``floor`` or ``ceil`` of
    ``extra * members[b] / sum(members)`` (exactly that in expectation): int64 [B]."""
    num = int(members.sum())
    reached = np.cumsum(members)
    offset = int(rng.integers(0, num))
    if num * extra < 2**62:
        hits = (reached * extra + offset) // num
    else:  # beyond int64: Python integers, one per block
        hits = np.array([(int(r) * extra + offset) // num for r in reached], dtype=np.int64)
    return np.diff(hits, prepend=0)


def _choose(rng: np.random.Generator, num: int, size: int) -> np.ndarray:
    """A uniform random ``size``-subset of ``range(num)`` (int64, any order)."""
    if 2 * size <= num:
        return rng.choice(num, size, replace=False, shuffle=False)
    keep = np.ones(num, dtype=bool)
    keep[rng.choice(num, num - size, replace=False, shuffle=False)] = False
    return np.flatnonzero(keep)


def expand(classes: ClassSource, values: np.ndarray, num_samples: int) -> np.ndarray:
    """Per-sample ``values[class]``: values.dtype [num_samples], a block at a time."""
    out = np.empty(num_samples, dtype=values.dtype)
    for lo, hi in blocks(num_samples):
        np.take(values, classes(lo, hi), out=out[lo:hi])
    return out


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
