"""Block-at-a-time passes over per-sample columns.

An O(N) step written as a handful of numpy operations over whole columns streams every
temporary through main memory and holds it at N elements (1-8 bytes per sample each). The same
operations over blocks of ``BLOCK`` samples keep their temporaries in cache and a few hundred KB
in size, so a pass over 1e8 samples costs fractions of a nanosecond per sample and operation.
"""

from __future__ import annotations

from collections.abc import Iterator

BLOCK = 1 << 16
"""Samples per block."""


def blocks(num_samples: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` of each block of ``range(num_samples)``, in order."""
    for lo in range(0, num_samples, BLOCK):
        yield lo, min(lo + BLOCK, num_samples)
