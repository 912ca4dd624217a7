"""The store's column layout (format version 2), the packed flag bits and the column checks of a
loaded state. The loss codec is :mod:`gekodata.store.codec`.

Default columns (12 bytes per sample):

=============  =======  =====  ==============================================================
column         dtype    bytes  why this dtype
=============  =======  =====  ==============================================================
loss_ema_code  uint16   2      EMA of the per-sample loss, log-quantised (:mod:`gekodata.store.codec`).
loss_std_code  uint16   2      exponential moving standard deviation of the loss, same codec
                               (same units as the loss); ``stability`` = 1 - std replaces
                               GEKO's "1 - std of the last 5 losses" without a history.
q_value        float16  2      GEKO's Q-value EMA in [0, 1]; fp16 resolves steps of 5e-4 near
                               0.8, so a 0.1-rate EMA never stalls below its threshold (uint8
                               would: steps under 1/510 round away).
conf_ema       uint8    1      EMA of the confidence in [0, 1], quantised to 1/255.
correct_ema    uint8    1      EMA of correctness in [0, 1], quantised to 1/255.
visits         uint16   2      reported passes, saturating at ``MAX_VISITS`` (65535).
frozen_streak  uint8    1      consecutive epochs planned in the frozen bucket, saturating.
flags          uint8    1      bits 0-2: bucket code (0 = unseen), bit 3: pruned,
                               bit 4: last reported correctness, bits 5-7: wrong streak
                               (consecutive wrong updates, saturating at 7).
=============  =======  =====  ==============================================================

Optional columns cost bytes only when something asks for them. ``pred_label`` is allocated on
the first :meth:`GEKOStateStore.update` that passes ``pred``; ``group_streak`` by
:meth:`GEKOStateStore.ensure_column`, which the sampler calls for policies that read it (e.g.
:class:`~gekodata.policy.PromptPolicy`); the selection signals by :meth:`GEKOStateStore.track` (a
policy that needs them calls it through the sampler) or by the setters named below. Each is saved
and loaded with the store when present:

===============  =======  =====  ============================================================
column           dtype    bytes  meaning (allocated by)
===============  =======  =====  ============================================================
pred_label       int32    4      last predicted label (e.g. the argmax class), -1 = unknown.
                                 With it, the wrong streak counts only wrong updates that
                                 agree on the predicted label (a new wrong label restarts it
                                 at 1). (``update(..., pred=...)``)
group_streak     int8     1      signed run of unanimous updates: +k = the last k updates each
                                 had every row correct and equal (an RL prompt's group of
                                 completions all rewarded alike, solved), -k = the last k each
                                 had every row equal and wrong (all failed), 0 = the last
                                 update disagreed (mixed group: a non-zero advantage) or none
                                 yet. Saturates at +-``MAX_GROUP_STREAK`` (127).
                                 (``ensure_column("group_streak")``)
forget_count     uint8    1      forgetting events (Toneva et al., ICLR 2019): correct ->
                                 wrong transitions between consecutive observations,
                                 saturating at 255. (``track("forgetting")``)
learned_streak   uint8    1      consecutive correct observations up to the latest, saturating
                                 at 255; "learned once, never forgotten" is
                                 ``forget_count == 0 and learned_streak > 0``.
                                 (``track("forgetting")``)
loss_slow_code   uint16   2      slow loss EMA (rate ``slow_alpha``), loss codec; learning
                                 progress = slow EMA - loss EMA (> 0: loss still falling).
                                 (``track("progress")``)
ref_loss_code    uint16   2      reference ("irreducible") loss of RHO-LOSS (Mindermann et
                                 al., ICML 2022), loss codec; code 65535 = not set.
                                 (``set_reference_loss``)
label            int32    4      the sample's given label, -1 = unknown; lets the noise guard
                                 compare a sample with its own class. (``set_labels``)
===============  =======  =====  ============================================================

An observation is one store update of a sample (the sampler folds one sync window per update;
duplicate rows of an update are merged first), correct when its mean correctness is >= 0.5.
:meth:`GEKOStateStore.reset` returns a row to "never seen" except for the columns the user
sets (``ref_loss_code``, ``label``), which describe the sample, not training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from .codec import decode_loss

COLUMNS: dict[str, np.dtype] = {
    "loss_ema_code": np.dtype(np.uint16),
    "loss_std_code": np.dtype(np.uint16),
    "q_value": np.dtype(np.float16),
    "conf_ema": np.dtype(np.uint8),
    "correct_ema": np.dtype(np.uint8),
    "visits": np.dtype(np.uint16),
    "frozen_streak": np.dtype(np.uint8),
    "flags": np.dtype(np.uint8),
}
OPTIONAL_COLUMNS: dict[str, np.dtype] = {
    "pred_label": np.dtype(np.int32),
    "group_streak": np.dtype(np.int8),
    "forget_count": np.dtype(np.uint8),
    "learned_streak": np.dtype(np.uint8),
    "loss_slow_code": np.dtype(np.uint16),
    "ref_loss_code": np.dtype(np.uint16),
    "label": np.dtype(np.int32),
}
OPTIONAL_FILL: dict[str, int] = {
    "pred_label": -1,
    "group_streak": 0,
    "label": -1,
    "ref_loss_code": int(np.iinfo(np.uint16).max),
}
"""Value of an optional column's rows that hold nothing yet (and after :meth:`GEKOStateStore.reset`,
except the user's columns); columns not named here: 0."""
SIGNALS: dict[str, tuple[str, ...]] = {
    "forgetting": ("forget_count", "learned_streak"),
    "progress": ("loss_slow_code",),
}
"""Signals :meth:`GEKOStateStore.track` allocates, by name -> their columns."""
USER_COLUMNS = ("ref_loss_code", "label")
"""Columns the user sets; :meth:`GEKOStateStore.reset` keeps them."""
REF_LOSS_UNSET = np.uint16(np.iinfo(np.uint16).max)
"""``ref_loss_code`` of a sample without a reference loss (the codec's top code, so reference
losses above ``REF_LOSS_MAX`` are refused)."""
MAX_COUNT_U8 = int(np.iinfo(np.uint8).max)
"""Largest count ``forget_count`` and ``learned_streak`` hold; they saturate there."""

BUCKET_MASK = np.uint8(0b0000_0111)
"""``flags`` bits 0-2: the bucket code (0 = never classified)."""
NUM_BUCKET_CODES = 8
"""Bucket codes the flags hold: 0 to 7. The pruned bit is the next bit up, so
``flags & (BUCKET_MASK | PRUNED_BIT)`` is a pruned sample's code plus ``NUM_BUCKET_CODES``."""
PRUNED_BIT = np.uint8(0b0000_1000)
"""``flags`` bit 3: the sample is pruned."""
CORRECT_BIT = np.uint8(0b0001_0000)
"""``flags`` bit 4: the last reported correctness was >= 0.5."""
STREAK_SHIFT = 5
STREAK_MASK = np.uint8(0b1110_0000)
"""``flags`` bits 5-7: the wrong streak."""
MAX_WRONG_STREAK = 7
"""Largest wrong streak the flags hold; it saturates there."""
MAX_VISITS = int(np.iinfo(np.uint16).max)
"""Largest count the ``visits`` column holds (uint16); it saturates there."""
MAX_FROZEN_STREAK = int(np.iinfo(np.uint8).max)
"""Largest count the ``frozen_streak`` column holds (uint8); it saturates there."""
MAX_GROUP_STREAK = int(np.iinfo(np.int8).max)
"""Largest run the ``group_streak`` column holds either way (int8, +-127); it saturates there."""
U8_SCALE = 255.0
"""uint8 fraction columns store ``round(x * U8_SCALE)`` for x in [0, 1]."""


REF_LOSS_MAX = float(decode_loss(np.array([REF_LOSS_UNSET - 1], dtype=np.uint16))[0])
"""Largest reference loss the store accepts (the value of the second-highest code, about
2.03e31): the top code is the "not set" marker."""


def u8_code_above(value: float) -> int:
    """The uint8 fraction code (``round(x * 255)``) above which a stored fraction is above
    ``value`` (in [0, 1]): ``code > floor(value * 255)``, capped at 255 (nothing passes)."""
    return min(math.floor(value * U8_SCALE), 255)


def u8_code_below(value: float) -> int:
    """The uint8 fraction code below which a stored fraction is below ``value`` (in [0, 1]):
    ``code < ceil(value * 255)``."""
    return math.ceil(value * U8_SCALE)


FLOAT16_INF_BITS = int(np.array(np.inf, dtype=np.float16).view(np.int16))
"""The bits of float16 +inf as int16: non-negative float16 bits order like their values up to
here; NaN bits lie above."""


@lru_cache(maxsize=256)
def float16_at_least_bits(value: float) -> int | None:
    """Bits (as int16) of the smallest float16 ``>= float32(value)`` (``value`` in (0, 1]), so
    that for a non-negative float16 ``q``: ``q >= value`` iff ``bits(q) >=`` them; None for
    ``value`` 0 (where ``-0.0`` passes too). Cached: policies ask once per block."""
    target = np.float32(value)
    if target <= 0:
        return None
    candidate = np.float16(target)
    if np.float32(candidate) < target:
        candidate = np.nextafter(candidate, np.float16(np.inf))
    return int(np.array(candidate, dtype=np.float16).view(np.int16)[()])


def empty_column(name: str, num_samples: int) -> np.ndarray:
    """A new optional column ``name`` of ``num_samples`` rows holding nothing yet."""
    return np.full(num_samples, OPTIONAL_FILL.get(name, 0), dtype=OPTIONAL_COLUMNS[name])


def quantize_u8(x: np.ndarray) -> np.ndarray:
    """Fractions in [0, 1] (clipped) as uint8 codes, nearest 1/255."""
    return np.rint(np.clip(x, 0.0, 1.0) * U8_SCALE).astype(np.uint8)


def dequantize_u8(codes: np.ndarray) -> np.ndarray:
    """uint8 codes as float32 fractions in [0, 1]."""
    return codes.astype(np.float32) / np.float32(U8_SCALE)


def check_columns(columns: Any, num_samples: int) -> dict[str, np.ndarray]:
    """The columns of a loaded state, each as an array of its dtype and shape ``(num_samples,)``,
    copied; ``ValueError`` naming the first column that is missing, unknown or of another dtype
    or shape."""
    if not isinstance(columns, Mapping) or not set(COLUMNS) <= set(columns) <= set(COLUMNS) | set(
        OPTIONAL_COLUMNS
    ):
        raise ValueError(
            f"state must hold the columns {sorted(COLUMNS)} and optionally {sorted(OPTIONAL_COLUMNS)}"
        )
    checked: dict[str, np.ndarray] = {}
    for name, dtype in {**COLUMNS, **OPTIONAL_COLUMNS}.items():
        if name not in columns:
            continue
        col = np.asarray(columns[name])
        if col.dtype != dtype or col.shape != (num_samples,):
            raise ValueError(
                f"column {name!r} has dtype {col.dtype} and shape {col.shape}, "
                f"expected {dtype} and ({num_samples},)"
            )
        checked[name] = np.array(col, dtype=dtype)
    return checked
