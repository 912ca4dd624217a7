"""Curricula: bucket weights that change with the run's progress.

A :class:`Curriculum` is a list of :class:`Phase` objects tiling progress [0, 1]; each phase gives
the buckets their draw weights. Progress of epoch ``e`` in a run of ``num_epochs`` is its midpoint,
``(e + 0.5) / num_epochs``, so every epoch lands in the phase that covers most of it and short
runs still visit the middle phases: with :meth:`Curriculum.mountain` (GEKO's five phases),
3 epochs map to ASCENT, PEAK, DESCENT; 5 epochs to one epoch per phase. Epochs past
``num_epochs`` stay in the last phase. (GEKO advanced progress per optimizer step and never
reached PEAK's weights in the sampler of a short run.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .buckets import NUM_BUCKETS, Bucket, _check_weight


@dataclass(frozen=True)
class Phase:
    """One curriculum phase: bucket weights used while progress is in ``[start, end)``.

    Weights are relative draw rates (a sample of weight 2 is drawn twice as often as one of
    weight 1). ``unseen`` defaults to the largest other weight, so samples never reported are
    visited with top priority.
    """

    name: str
    start: float
    end: float
    hard: float
    focus: float
    light: float
    freeze: float = 0.0
    unseen: float | None = None

    def __post_init__(self) -> None:
        for key in ("hard", "focus", "light", "freeze"):
            _check_weight(f"{self.name}.{key}", getattr(self, key))
        if self.unseen is not None:
            _check_weight(f"{self.name}.unseen", self.unseen)
        if not (0.0 <= self.start < self.end <= 1.0):
            raise ValueError(
                f"phase {self.name!r}: need 0 <= start < end <= 1, got [{self.start}, {self.end})"
            )
        if max(self.hard, self.focus, self.light, self.freeze) == 0:
            raise ValueError(
                f"phase {self.name!r} gives every bucket weight 0 and would train nothing"
            )

    def weight_table(self) -> np.ndarray:
        """float64 [NUM_BUCKETS]: weight indexed by bucket code."""
        table = np.zeros(NUM_BUCKETS, dtype=np.float64)
        table[Bucket.FREEZE] = self.freeze
        table[Bucket.LIGHT] = self.light
        table[Bucket.FOCUS] = self.focus
        table[Bucket.HARD] = self.hard
        table[Bucket.UNSEEN] = (
            max(self.hard, self.focus, self.light, self.freeze)
            if self.unseen is None
            else self.unseen
        )
        return table


class Curriculum:
    """Phases covering progress ``[0, 1]`` without gaps or overlaps.

    Args:
        phases: phases in any order; sorted by ``start``. Their intervals must tile [0, 1].
    """

    def __init__(self, phases: Sequence[Phase]) -> None:
        if not phases:
            raise ValueError("a curriculum needs at least one phase")
        ordered = sorted(phases, key=lambda p: p.start)
        if ordered[0].start != 0.0 or ordered[-1].end != 1.0:
            raise ValueError(
                f"phases must cover [0, 1]; they cover [{ordered[0].start}, {ordered[-1].end}]"
            )
        for prev, nxt in zip(ordered, ordered[1:]):
            if not math.isclose(prev.end, nxt.start, abs_tol=1e-9):
                kind = "gap" if prev.end < nxt.start else "overlap"
                raise ValueError(
                    f"phases must tile [0, 1]: {kind} between {prev.name!r} (ends {prev.end}) "
                    f"and {nxt.name!r} (starts {nxt.start})"
                )
        names = [p.name for p in ordered]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        self.phases: tuple[Phase, ...] = tuple(ordered)
        self._ends = np.array([p.end for p in ordered[:-1]])

    @classmethod
    def mountain(cls) -> Curriculum:
        """GEKO's five-phase curriculum, weights (HARD, FOCUS, LIGHT); FREEZE always 0."""
        table = [
            ("WARMUP", 0.00, 0.15, 1, 2, 3),
            ("ASCENT", 0.15, 0.35, 2, 3, 1),
            ("PEAK", 0.35, 0.65, 5, 2, 0),
            ("DESCENT", 0.65, 0.85, 2, 3, 1),
            ("CONSOLIDATE", 0.85, 1.00, 1, 2, 3),
        ]
        return cls([Phase(n, s, e, hard=h, focus=f, light=lt) for n, s, e, h, f, lt in table])

    @classmethod
    def constant(
        cls,
        hard: float = 3.0,
        focus: float = 1.0,
        light: float = 0.0,
        freeze: float = 0.0,
        unseen: float | None = None,
    ) -> Curriculum:
        """One phase for the whole run (no curriculum). Defaults are GEKO's (3, 1, 0)."""
        return cls(
            [
                Phase(
                    "CONSTANT",
                    0.0,
                    1.0,
                    hard=hard,
                    focus=focus,
                    light=light,
                    freeze=freeze,
                    unseen=unseen,
                )
            ]
        )

    def phase_at(self, progress: float) -> Phase:
        """The phase covering ``progress`` (clipped to [0, 1]; 1.0 belongs to the last phase)."""
        progress = min(max(float(progress), 0.0), 1.0)
        return self.phases[int(np.searchsorted(self._ends, progress, side="right"))]

    def phase_for_epoch(self, epoch: int, num_epochs: int) -> Phase:
        """Phase of epoch ``epoch`` (0-based) in a run of ``num_epochs``: its midpoint's phase."""
        if num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
        return self.phase_at((epoch + 0.5) / num_epochs)

    def config(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.phases]

    @classmethod
    def from_config(cls, config: Sequence[dict[str, Any]]) -> Curriculum:
        return cls([Phase(**p) for p in config])

    def __repr__(self) -> str:
        return f"Curriculum({[p.name for p in self.phases]})"
