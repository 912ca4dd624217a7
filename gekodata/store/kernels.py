"""How one observation per sample moves each of the store's columns: pure functions over the
rows of one update (all arrays [U], one row per distinct sample, ``first`` marking rows never
seen before). :meth:`GEKOStateStore.update` gathers the rows, calls these, and scatters back.
"""

from __future__ import annotations

import numpy as np

from .codec import decode_loss, encode_loss
from .layout import (
    CORRECT_BIT,
    MAX_COUNT_U8,
    MAX_GROUP_STREAK,
    MAX_WRONG_STREAK,
    STREAK_MASK,
    STREAK_SHIFT,
    dequantize_u8,
    quantize_u8,
)


def fold_loss_moments(
    mean_code: np.ndarray, std_code: np.ndarray, loss: np.ndarray, first: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Loss EMA and exponential moving std (uint16 loss codes) after observing ``loss``
    (float32, loss units). West's exponentially weighted variance
    ``var <- (1-a) (var + a (x - mean)^2)`` is kept as its square root,
    ``std <- sqrt(1-a) * hypot(std, sqrt(a) |x - mean|)``: float32 without overflow for any loss
    up to LOSS_MAX (std stays <= LOSS_MAX by induction). A first observation sets mean = loss,
    std = 0."""
    mean = decode_loss(mean_code)
    delta = loss - mean
    std = np.float32(np.sqrt(1.0 - alpha)) * np.hypot(
        decode_loss(std_code), np.float32(np.sqrt(alpha)) * delta
    )
    mean += np.float32(alpha) * delta
    if first.any():  # most windows after the first epoch have no first observation
        mean[first] = loss[first]
        std[first] = 0.0
    return encode_loss(mean), encode_loss(std)


def fold_fraction(
    codes: np.ndarray, value: np.ndarray, first: np.ndarray, alpha: float
) -> np.ndarray:
    """EMA of a fraction in [0, 1] kept as uint8 codes (1/255); a first observation sets it."""
    ema = dequantize_u8(codes)
    ema += np.float32(alpha) * (value - ema)
    if first.any():
        ema[first] = value[first]
    return quantize_u8(ema)


def fold_q_value(
    q: np.ndarray, loss: np.ndarray, loss_scale: float, first: np.ndarray, rate: float
) -> np.ndarray:
    """GEKO's Q-value EMA (float16) towards the reward ``1 - min(loss / loss_scale, 1)``; a first
    observation sets ``q = reward``."""
    reward = np.float32(1.0) - np.minimum(loss / np.float32(loss_scale), np.float32(1.0))
    q = q.astype(np.float32)
    q += np.float32(rate) * (reward - q)
    if first.any():
        q[first] = reward[first]
    return q.astype(np.float16)


def fold_flags(
    flags: np.ndarray,
    correct: np.ndarray,
    pred: np.ndarray | None,
    last_pred: np.ndarray | None,
    wandered: np.ndarray | None,
) -> np.ndarray:
    """Flags (uint8) with the last-correct bit and the wrong streak moved by one observation.

    A correct observation (``correct >= 0.5``) resets the streak to 0; a wrong one adds 1,
    saturating at ``MAX_WRONG_STREAK``, except that it restarts at 1 where the predicted label
    (int, -1 = unknown) differs from the last known one or the merged rows' labels
    ``wandered``. Bucket and pruned bits are kept."""
    is_correct = correct >= 0.5
    streak = (flags >> STREAK_SHIFT).astype(np.int64) + 1
    if wandered is not None:
        streak[wandered] = 1  # the answer wandered within the window: not a stable wrong label
    if pred is not None and last_pred is not None:
        streak[(pred >= 0) & (last_pred >= 0) & (pred != last_pred)] = 1  # a new wrong answer
    streak = np.minimum(streak, MAX_WRONG_STREAK).astype(np.uint8)
    streak[is_correct] = 0
    flags = flags & ~(CORRECT_BIT | STREAK_MASK)
    flags |= streak << STREAK_SHIFT
    flags[is_correct] |= CORRECT_BIT
    return flags


def fold_group_streak(streak: np.ndarray, unanimous: np.ndarray, solved: np.ndarray) -> np.ndarray:
    """The signed run of unanimous updates (int8) after one more: a unanimous and solved update
    (every row equal, mean correctness >= 0.5) extends a positive run or starts one at +1, a
    unanimous unsolved one extends a negative run or starts one at -1, a disagreeing one resets
    it to 0. Saturates at +-``MAX_GROUP_STREAK``."""
    run = streak.astype(np.int16)
    up = np.minimum(np.maximum(run, 0) + 1, MAX_GROUP_STREAK)
    down = np.maximum(np.minimum(run, 0) - 1, -MAX_GROUP_STREAK)
    return np.where(unanimous, np.where(solved, up, down), 0).astype(np.int8)


def fold_loss_ema(
    code: np.ndarray, loss: np.ndarray, first: np.ndarray, alpha: float
) -> np.ndarray:
    """A loss EMA kept as uint16 loss codes (e.g. the slow EMA of learning progress) after
    observing ``loss`` (float32): ``ema += alpha * (loss - ema)``; a first observation sets it."""
    ema = decode_loss(code)
    ema += np.float32(alpha) * (loss - ema)
    ema[first] = loss[first]
    return encode_loss(ema)


def fold_forgetting(
    count: np.ndarray,
    streak: np.ndarray,
    was_correct: np.ndarray,
    first: np.ndarray,
    correct: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Forgetting events and the learned streak (both uint8, saturating at 255) after one
    observation (Toneva et al., ICLR 2019). A forgetting event is a correct observation followed
    by a wrong one: ``was_correct`` (bool, the last observation's correctness) and now
    ``correct < 0.5``, for a sample seen before (not ``first``). The learned streak counts
    consecutive correct observations and restarts at 0 on a wrong one."""
    is_correct = correct >= 0.5
    forgot = was_correct & ~first & ~is_correct
    count = np.where(forgot & (count < MAX_COUNT_U8), count + np.uint8(1), count).astype(np.uint8)
    streak = np.where(is_correct, np.minimum(streak.astype(np.int64) + 1, MAX_COUNT_U8), 0).astype(
        np.uint8
    )
    return count, streak
