"""The loss codec of the store's loss columns, and the bins of its loss-scale histogram.

**Loss codec** (both loss columns). Code 0 is 0; code ``c`` in [1, 65535] is
``2 ** ((c - LOSS_CODE_ONE) / LOSS_CODES_PER_OCTAVE)``, i.e. 512 codes per octave with code
12289 = 1.0, from ``LOSS_MIN = 2^-24`` (5.96e-8) to ``LOSS_MAX = 2^(65534/512 - 24)``
(2.03e31). Encoding rounds to the nearest code in log space. For a float32 loss ``x``:

=======================  ===============================================================
loss (as float32)        stored value ``y``
=======================  ===============================================================
``0 <= x <= LOSS_MAX``   ``|y - x| <= LOSS_REL_ERROR * x + LOSS_ABS_ERROR``, where
                         ``LOSS_REL_ERROR = 2^(1/1024) - 1 + 2^-23`` (6.8e-4: half a code
                         step plus the float32 decode) and ``LOSS_ABS_ERROR = 2^-25`` (3.0e-8,
                         only for ``x < LOSS_MIN``: losses below ``LOSS_MIN / 2`` are 0)
``x > LOSS_MAX``, inf,   refused: :meth:`GEKOStateStore.validate` raises ``ValueError`` (so
NaN, ``x < 0``           ``sampler.report`` refuses the call) and nothing is stored
=======================  ===============================================================

The relative error is the same over the whole range (fp16 kept 3 digits only up to 65504 and
saturated there). The EMAs are computed in float32 from the decoded values and encoded again,
so a stored EMA moves only when an update moves it by more than half a code step: it follows a
constant input ``x`` to within about ``LOSS_REL_ERROR / ema_alpha`` (0.14% at the default
``ema_alpha`` 0.5); e.g. an EMA near 1000 ignores changes of the reported loss below about 1.4.

**Loss scale** (GEKO's lmax, the ``loss_scale`` of the Q-value reward
``1 - min(loss / loss_scale, 1)``): the store keeps a histogram of every loss ever reported
(each row counted, duplicates included), ``LOSS_HIST_BINS`` log-spaced bins of 8 per octave
over the codec's range (int64 counts and the largest loss seen in each bin, 12 KB in all), and
sets ``loss_scale = max(min_loss_scale, Q)``, where ``Q`` is the largest loss reported in the bin
that holds the ``loss_scale_quantile`` (q) quantile of all reported losses. So **a fraction of
reported losses below 1 - q cannot raise loss_scale above the largest other loss (to within one
bin: a factor 2^(1/8) = 1.09)**, however the losses were split into updates. ``loss_scale`` falls
as well as rises as the losses shift. Updates cost O(rows + bins), depend only on the multiset of
reported losses (not on their order), and are integer counts and maxima, so every rank of a
distributed run, applying the same gathered update, keeps the same histogram bit for bit. The
histogram is saved with the store (:meth:`GEKOStateStore.state_dict`, store and sampler files).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

LOSS_CODES_PER_OCTAVE = 512
"""Loss codec: codes per factor of 2."""
LOSS_CODE_ONE = 24 * LOSS_CODES_PER_OCTAVE + 1
"""Loss codec: the code of a loss of exactly 1.0 (code 1 is ``2^-24``)."""
_LOSS_TOP_CODE = int(np.iinfo(np.uint16).max)
LOSS_MIN = 2.0 ** ((1 - LOSS_CODE_ONE) / LOSS_CODES_PER_OCTAVE)
"""Smallest nonzero stored loss, 2^-24 (about 5.96e-8)."""
LOSS_MAX = float(np.float32(2.0 ** ((_LOSS_TOP_CODE - LOSS_CODE_ONE) / LOSS_CODES_PER_OCTAVE)))
"""Largest loss the store accepts (the top code, as float32; about 2.03e31)."""
LOSS_REL_ERROR = 2.0 ** (1 / (2 * LOSS_CODES_PER_OCTAVE)) - 1.0 + 2.0**-23
"""Relative error bound of a stored loss (half a code step plus the float32 decode; 6.8e-4)."""
LOSS_ABS_ERROR = LOSS_MIN / 2
"""Absolute error bound of a stored loss below ``LOSS_MIN`` (those under LOSS_MIN / 2 are 0)."""
_LOSS_TABLE = np.concatenate(
    [
        np.zeros(1, dtype=np.float32),
        np.exp2(
            (np.arange(1, _LOSS_TOP_CODE + 1, dtype=np.float64) - LOSS_CODE_ONE)
            / LOSS_CODES_PER_OCTAVE
        ).astype(np.float32),
    ]
)
_LOSS_TABLE.flags.writeable = False
LOSS_TABLE = _LOSS_TABLE
"""The loss of every code, float32 [65536], read-only and strictly increasing: ``decode_loss``'s
table, so ``decode_loss(c) < x`` iff ``c < count_nonzero(LOSS_TABLE < x)``."""


@lru_cache(maxsize=256)
def loss_codes_below(value: float) -> int:
    """Number of loss codes whose loss is below ``float32(value)``: ``decode_loss(c) < value``
    iff ``c <`` it (65536: every code). Cached: policies ask once per block."""
    return int(np.count_nonzero(np.float32(value) > LOSS_TABLE))


LOSS_HIST_BINS_PER_OCTAVE = 8
"""Loss-scale histogram: bins per factor of 2 (one bin is a factor 2^(1/8) = 1.09 wide)."""
LOSS_HIST_BINS = int(np.floor(np.log2(LOSS_MAX / LOSS_MIN) * LOSS_HIST_BINS_PER_OCTAVE)) + 2
"""Loss-scale histogram: bin 0 holds losses below LOSS_MIN, bin b >= 1 losses in
``[LOSS_MIN 2^((b-1)/8), LOSS_MIN 2^(b/8))`` (the top bin also holds LOSS_MAX); 1025 bins."""


def encode_loss(x: np.ndarray) -> np.ndarray:
    """Loss codes, uint16 [k], of losses ``x`` (float [k], >= 0, finite): the nearest code in
    log space; values below ``LOSS_MIN / 2`` give code 0, values above ``LOSS_MAX`` the top
    code (the store refuses such losses before they get here)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        code = np.rint(np.log2(x) * LOSS_CODES_PER_OCTAVE) + LOSS_CODE_ONE
    code = np.where(x >= LOSS_MIN / 2, np.clip(code, 1, _LOSS_TOP_CODE), 0)
    return code.astype(np.uint16)


def loss_hist_bins(x: np.ndarray) -> np.ndarray:
    """Loss-scale histogram bin, int64 [k], of losses ``x`` (float [k] in [0, LOSS_MAX])."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.floor(np.log2(x / LOSS_MIN) * LOSS_HIST_BINS_PER_OCTAVE) + 1
    return np.where(x >= LOSS_MIN, np.clip(b, 1, LOSS_HIST_BINS - 1), 0).astype(np.int64)


def decode_loss(code: np.ndarray) -> np.ndarray:
    """Losses, float32 [k], of loss codes ``code`` (uint16 [k]); O(k) table look-up."""
    code = np.asarray(code, dtype=np.uint16)
    return _LOSS_TABLE.take(code) if code.ndim == 1 else _LOSS_TABLE[code]


def check_hist(counts: Any, maxima: Any) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a saved loss-scale histogram; ``ValueError`` unless it is int64 counts >= 0 and
    float32 maxima in [0, LOSS_MAX], each [LOSS_HIST_BINS]."""
    if counts is None or maxima is None:
        raise ValueError("state lacks the loss-scale histogram (loss_hist_counts, loss_hist_max)")
    counts, maxima = np.asarray(counts), np.asarray(maxima)
    if counts.dtype != np.int64 or counts.shape != (LOSS_HIST_BINS,) or (counts < 0).any():
        raise ValueError(
            f"loss_hist_counts must be int64 [{LOSS_HIST_BINS}] counts >= 0, "
            f"got {counts.dtype} {counts.shape}"
        )
    if (
        maxima.dtype != np.float32
        or maxima.shape != (LOSS_HIST_BINS,)
        or not ((maxima >= 0) & (maxima <= np.float32(LOSS_MAX))).all()
    ):
        raise ValueError(
            f"loss_hist_max must be float32 [{LOSS_HIST_BINS}] in [0, LOSS_MAX], "
            f"got {maxima.dtype} {maxima.shape}"
        )
    return counts.copy(), maxima.copy()


_HIST_CHUNK = 1 << 20


def add_to_hist(counts: np.ndarray, maxima: np.ndarray, x: np.ndarray) -> None:
    """Count losses ``x`` (float32 [k] in [0, LOSS_MAX]) into a loss-scale histogram, in place:
    ``counts`` int64 and ``maxima`` float32, each [LOSS_HIST_BINS]. O(k + bins), a chunk of
    ``_HIST_CHUNK`` losses at a time (counts and maxima do not depend on the order)."""
    for lo in range(0, len(x), _HIST_CHUNK):
        chunk = x[lo : lo + _HIST_CHUNK]
        bins = loss_hist_bins(chunk)
        counts += np.bincount(bins, minlength=LOSS_HIST_BINS)
        np.maximum.at(maxima, bins, chunk)


def hist_quantile_max(counts: np.ndarray, maxima: np.ndarray, q: float) -> float:
    """The largest loss counted in the bin that holds the q-quantile of the histogram's losses
    (0.0 for an empty histogram); O(bins)."""
    total = int(counts.sum())
    if total == 0:
        return 0.0
    rank = max(1, math.ceil(q * total))  # the rank-th smallest loss
    return float(maxima[int(np.searchsorted(np.cumsum(counts), rank, side="left"))])
