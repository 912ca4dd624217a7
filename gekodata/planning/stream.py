"""An epoch's index stream, computed a chunk at a time instead of shuffled up front.

The planner lays an epoch's draws out as a *pool*: one entry per draw (sample ``i`` appears
``count_i`` times), in whatever order was cheapest to build. The stream is the pool in the order
of a keyed pseudo-random permutation of its positions: position ``p`` yields
``pool[perm(p)]`` (:class:`EpochStream`). Planning therefore costs no O(S) shuffle (5 s and
random memory access for 1e8 indices); iterating costs a few vectorised integer operations per
index, one chunk at a time, and every rank computes only its own strided shard.

:class:`KeyedPermutation` is a 4-round Feistel network over ``[0, A) x [0, C)`` with
``A * C >= size`` (``A = ceil(sqrt(size))``) and modular addition, the construction of the
format-preserving ciphers NIST FF1/FF3. Its round function hashes the right half (multiply,
xorshift, multiply, the top half scaled to the left half's range) with a round key and
multipliers drawn from the epoch's generator. Positions that land in ``[size, A * C)`` walk the
cycle until they are back in range (fewer than ``A`` of them), so it is a bijection of
``[0, size)`` for any size.
"""

from __future__ import annotations

from math import isqrt

import numpy as np

_CHUNK = 1 << 20  # positions evaluated at once when materialising
_SMALL = 64  # slices up to this long are kept once computed


class KeyedPermutation:
    """A pseudo-random bijection of ``[0, size)`` keyed by ``rng`` (see the module docstring).

    ``perm(positions)`` maps int positions in ``[0, size)`` (any integer dtype) to uint [k]
    positions in ``[0, size)``; O(k), vectorised, no state besides a few keys.
    """

    ROUNDS = 4

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        size = int(size)
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size
        left = isqrt(max(size - 1, 0)) + 1  # A: the left half's range
        right = max(-(-size // left), 1)  # C: the right half's range, A * C >= size
        self.dtype = np.dtype(np.uint32) if left * right <= 2**32 else np.dtype(np.uint64)
        dt = self.dtype.type
        self._left, self._right = dt(left), dt(right)
        bits = 8 * self.dtype.itemsize
        self._mods = [
            dt(left) if r % 2 == 0 else dt(right) for r in range(self.ROUNDS)
        ]  # |L| per round
        self._keys, self._mults1, self._mults2 = (
            rng.integers(0, 2**bits, self.ROUNDS, dtype=self.dtype) | dt(odd) for odd in (0, 1, 1)
        )
        self._shift = dt(bits // 2)

    def _rounds(self, x: np.ndarray) -> np.ndarray:
        """One pass of the Feistel network over ``x`` (uint, values < A * C)."""
        left, right = np.divmod(x, self._right)
        hashed, scratch = np.empty_like(right), np.empty_like(right)
        shift = self._shift
        for key, mult1, mult2, mod in zip(self._keys, self._mults1, self._mults2, self._mods):
            # F(R) = multiply-xorshift-multiply hash of R ^ key, its top half scaled to [0, |L|)
            np.bitwise_xor(right, key, out=hashed)
            hashed *= mult1
            np.right_shift(hashed, shift - 1, out=scratch)
            hashed ^= scratch
            hashed *= mult2
            hashed >>= shift
            hashed *= mod
            hashed >>= shift
            # (L, R) -> (R, (L + F(R)) mod |L|): the halves swap ranges every round; L + F < 2|L|,
            # and min(s, s - |L|) is s mod |L| in unsigned arithmetic (s - |L| wraps when s < |L|)
            left += hashed
            np.subtract(left, mod, out=scratch)
            np.minimum(left, scratch, out=left)
            left, right = right, left
        # an even number of rounds: left ranges over A again, right over C
        left *= self._right
        left += right
        return left

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        x = self._rounds(np.asarray(positions).astype(self.dtype, copy=False))
        out = np.flatnonzero(x >= self.size)
        while len(out):  # cycle walking: at most A * C - size positions ever leave the range
            x[out] = y = self._rounds(x[out])
            out = out[y >= self.size]
        return x


class EpochStream:
    """An epoch's index stream ``pool[perm(p)]``, or one rank's shard of it, evaluated on demand.

    Args:
        pool: the draws, int [S] sample indices in any order; None when the pool is
            ``arange(S)`` (every sample drawn once), which saves the gather.
        perm: a :class:`KeyedPermutation` of size S.
        dtype: dtype of the indices handed out (the plan's index dtype).
        rank, world_size: this view is rank ``rank``'s strided slice of the stream after padding
            it cyclically to a multiple of ``world_size`` (``DistributedSampler``'s layout:
            ``gekodata.sampler.collective.rank_shard`` of the materialised stream).

    ``len()``, slicing with step 1 (an ndarray; slices of up to 64 are kept, read-only, once
    computed), integer indexing and :meth:`materialize`.
    """

    def __init__(
        self,
        pool: np.ndarray | None,
        perm: KeyedPermutation,
        dtype: np.dtype,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.pool, self.perm, self.dtype = pool, perm, np.dtype(dtype)
        self.rank, self.world_size = int(rank), int(world_size)
        size = perm.size
        self._length = size if self.world_size == 1 else -(-size // self.world_size)
        self._small: dict[
            tuple[int, int], np.ndarray
        ] = {}  # short slices, e.g. the position's fingerprint

    @property
    def size(self) -> int:
        """Length of the whole (unsharded) stream."""
        return self.perm.size

    def shard(self, rank: int, world_size: int) -> EpochStream:
        """Rank ``rank``'s shard of the whole stream (``world_size == 1``: the whole stream)."""
        if self.world_size != 1:
            raise ValueError("shard() of a shard")
        return EpochStream(self.pool, self.perm, self.dtype, rank, world_size)

    def __len__(self) -> int:
        return self._length

    def _at(self, start: int, stop: int) -> np.ndarray:
        """Indices at local positions ``start..stop-1`` (0 <= start <= stop <= len)."""
        world = self.world_size
        if world == 1:
            local = np.arange(start, stop, dtype=self.perm.dtype)
        else:  # global positions rank + k * world; the padded tail wraps to the stream's start
            end = stop * world + self.rank
            fits = max(end, self.size) <= np.iinfo(self.perm.dtype).max
            local = np.arange(
                start * world + self.rank, end, world, dtype=self.perm.dtype if fits else np.int64
            )
            if end > self.size:
                np.remainder(local, self.size, out=local)
        x = self.perm(local)
        out = x if self.pool is None else self.pool.take(x)
        return out.astype(self.dtype, copy=False)

    def __getitem__(self, key: slice | int) -> np.ndarray | int:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._length)
            if step != 1:
                return self.materialize()[key]
            stop = max(start, stop)
            if stop - start > _SMALL:
                return self._at(start, stop)
            if (start, stop) not in self._small:  # read on every state_dict(): computed once
                if len(self._small) >= 16:
                    self._small.clear()
                self._small[start, stop] = self._at(start, stop)
                self._small[start, stop].flags.writeable = False
            return self._small[start, stop]
        i = int(key)
        if not -self._length <= i < self._length:
            raise IndexError(f"index {i} out of range for a stream of {self._length}")
        i %= self._length
        return int(self._at(i, i + 1)[0])

    def materialize(self) -> np.ndarray:
        """The whole view as an array, dtype [len]; O(len), a chunk at a time."""
        out = np.empty(self._length, dtype=self.dtype)
        for start in range(0, self._length, _CHUNK):
            stop = min(start + _CHUNK, self._length)
            out[start:stop] = self._at(start, stop)
        return out

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        array = self.materialize()
        return array if dtype is None else array.astype(dtype, copy=False)
