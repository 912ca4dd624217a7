"""Per-class draw counts: when every live sample's weight is its bucket's, the planner works per
*class* (bucket code, and whether the sample is dead: pruned or over ``max_times_seen``): a few
passes over the store's bytes a block at a time (:mod:`gekodata.store.blocks`), exact rational counts per
class (:func:`class_draw_counts`), and each class's extra draws a uniform choice among its
members, spread over the blocks (:func:`class_pool`)."""

from __future__ import annotations

from fractions import Fraction
from typing import Callable, NamedTuple

import numpy as np

from ..store.blocks import BLOCK, blocks
from ..store.layout import NUM_BUCKET_CODES
from ..store.state_store import GEKOStateStore

NUM_CLASSES = 16
"""Draw classes: bucket code (0-7) for a live sample, bucket code + ``DEAD`` for a dead one."""


DEAD = NUM_BUCKET_CODES
"""Added to the bucket code of a dead sample (pruned, or at ``max_times_seen``): weight 0. It is
the store's own mark of a pruned row (:meth:`GEKOStateStore.bucket_codes` with ``mark_pruned``),
so the store's codes are already a pruned sample's class."""


ClassSource = Callable[[int, int], np.ndarray]
"""``classes(lo, hi)``: the draw class of samples ``lo..hi-1``, uint8 [hi - lo]."""


def store_classes(store: GEKOStateStore, max_times_seen: int | None) -> ClassSource:
    """The draw classes of ``store``'s samples (bucket code, + ``DEAD`` if pruned or with
    ``max_times_seen`` reported passes), computed a block at a time from the flags and visits."""
    visits = store.visits

    def classes(lo: int, hi: int) -> np.ndarray:
        cls = store.bucket_codes(lo, hi, mark_pruned=True)
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


def class_draw_counts(
    sizes: np.ndarray, weights: np.ndarray, total: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
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

    indices: np.ndarray | None
    base: np.ndarray
    extra: np.ndarray
    unique: int


def class_pool(
    classes: ClassSource,
    sizes: np.ndarray,
    weights: np.ndarray,
    total: int,
    rng: np.random.Generator,
    dtype: np.dtype,
    extra_indices: np.ndarray | None = None,
) -> ClassPool:
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
    padded[: len(weights)] = weights
    base, extra = class_draw_counts(totals, padded, total, rng)
    extra_indices = np.empty(0, dtype=np.int64) if extra_indices is None else extra_indices
    unique = int(np.where(base > 0, totals, extra).sum())
    if (
        len(extra_indices) == 0
        and unique == num_samples > 0
        and int(base.max()) == 1
        and not extra.any()
    ):
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
                rows = pool[at : at + members * copies].reshape(copies, members)
                np.add(where, lo, out=rows[0], casting="unsafe")
                rows[1:] = rows[0]
                at += members * copies
            if chosen:
                np.add(
                    where[_choose(rng, members, chosen)],
                    lo,
                    out=pool[at : at + chosen],
                    casting="unsafe",
                )
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
