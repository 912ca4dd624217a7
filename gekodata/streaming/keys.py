"""Counter-based keep decisions: a uniform number in [0, 1) per (seed, epoch, sample id).

A stream decides each example on its own, so the decision must not depend on how many examples
came before it, which worker or rank read it, or where a run resumed: it is a pure function of
``(seed, epoch, id)``, a SplitMix64 finalizer applied to the three keys in turn (the counter-based
idea of Salmon et al., SC 2011). :func:`uniform` is the vectorized form (numpy uint64 [B]),
:func:`uniform_one` the per-example form in plain Python integers; they agree bit for bit.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_SCALE = 1.0 / (1 << 53)


def _mix_one(x: int) -> int:
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> 30)) * _M1) & _MASK
    x = ((x ^ (x >> 27)) * _M2) & _MASK
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(_GOLDEN)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
    return x ^ (x >> np.uint64(31))


def epoch_key(seed: int, epoch: int) -> int:
    """The 64-bit key of one epoch: mixes ``seed`` and ``epoch`` (both >= 0)."""
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    return _mix_one(_mix_one(seed & _MASK) ^ (epoch & _MASK))


def uniform_one(key: int, sample_id: int) -> float:
    """Uniform in [0, 1) for one id under ``key`` (:func:`epoch_key`): 53 random bits."""
    return (_mix_one(key ^ (sample_id & _MASK)) >> 11) * _SCALE


def uniform(key: int, ids: np.ndarray) -> np.ndarray:
    """float64 [B] uniforms in [0, 1) for int ``ids`` [B] under ``key``; equals
    :func:`uniform_one` element-wise."""
    with np.errstate(over="ignore"):
        x = _mix(np.uint64(key) ^ np.asarray(ids).astype(np.int64).view(np.uint64))
    return (x >> np.uint64(11)).astype(np.float64) * _SCALE
