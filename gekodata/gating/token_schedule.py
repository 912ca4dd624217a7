"""The kept-token ratio of token gating (:func:`gekodata.gating.tokens.select_tokens`) per training step:
linear warm-up from 1.0 to a floor, optionally raised while the model's confidence is low.
"""

from __future__ import annotations

import math

from ..arguments import check_int, check_unit_interval


class TokenRatioSchedule:
    """Fraction of target tokens to keep at a training step.

    ``base(step) = start + (floor - start) * min(step / warmup_steps, 1)``: linear from ``start``
    (default 1.0: train on every token) down to ``floor`` over ``warmup_steps`` optimizer steps,
    then constant (``warmup_steps = 0``: ``floor`` from step 0).

    With ``dynamic=True`` and a ``mean_confidence`` c (e.g. the mean probability of the target
    token over the batch's valid tokens, ``torch.exp(-token_difficulty(..., "loss")).nanmean()``)
    the ratio is raised while the model is unsure::

        deficit = clamp((confidence_target - c) / confidence_target, 0, 1)
        ratio   = clamp(base + sensitivity * deficit * (1 - base), floor, 1)

    so c >= ``confidence_target`` gives ``base`` and c = 0 with ``sensitivity = 1`` gives 1.0.
    (CGGR's ``base * (1 + (1 - c) * s)`` can also drop below its floor; this one cannot.)
    Without ``dynamic`` the confidence is ignored.
    """

    def __init__(
        self,
        floor: float = 0.25,
        warmup_steps: int = 1000,
        start: float = 1.0,
        dynamic: bool = False,
        confidence_target: float = 0.5,
        sensitivity: float = 1.0,
    ) -> None:
        self.floor = check_unit_interval("floor", floor)
        self.start = check_unit_interval("start", start)
        if self.start < self.floor:
            raise ValueError(f"start ({self.start}) must be >= floor ({self.floor})")
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.dynamic = bool(dynamic)
        self.confidence_target = check_unit_interval(
            "confidence_target", confidence_target, exclude_zero=True
        )
        self.sensitivity = float(sensitivity)
        if not (math.isfinite(self.sensitivity) and self.sensitivity >= 0.0):
            raise ValueError(f"sensitivity must be finite and >= 0, got {sensitivity}")

    def base(self, step: int) -> float:
        """The warm-up ratio at ``step`` (>= 0), without the dynamic adjustment."""
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        progress = 1.0 if self.warmup_steps == 0 else min(step / self.warmup_steps, 1.0)
        return self.start + (self.floor - self.start) * progress

    def ratio(self, step: int, mean_confidence: float | None = None) -> float:
        """Kept-token ratio at ``step``, in [floor, 1] (the warm-up value unless ``dynamic``)."""
        base = self.base(step)
        if not self.dynamic or mean_confidence is None:
            return base
        c = check_unit_interval("mean_confidence", mean_confidence)
        deficit = min(max((self.confidence_target - c) / self.confidence_target, 0.0), 1.0)
        return min(max(base + self.sensitivity * deficit * (1.0 - base), self.floor), 1.0)

    def __repr__(self) -> str:
        return (
            f"TokenRatioSchedule(floor={self.floor}, warmup_steps={self.warmup_steps}, start={self.start}, "
            f"dynamic={self.dynamic}, confidence_target={self.confidence_target}, sensitivity={self.sensitivity})"
        )
