"""The run state of :class:`~gekodata.policy.PromptPolicy`: adaptive keep rates, when each prompt
was last rolled out, the rate at which out-of-reach prompts turn learnable, and the prompts to
recall this epoch.

:meth:`PromptRunState.advance` runs once per new epoch (the sampler's classification step,
:meth:`~gekodata.policy.SelectionPolicy.advance`), after the last epoch's reports were folded. It
compares the store with what it saw at the previous epoch boundary: a prompt whose ``visits``
changed was rolled out in the epoch that just ended; its ``group_streak`` now says how its last
group came out. Everything is whole-array numpy (no per-prompt Python). The state travels in the
sampler file (:meth:`arrays` / :meth:`load`), so a resumed run continues it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.state_store import GEKOStateStore

KEEP_STEP = 2.0
"""Largest factor by which one epoch changes a keep rate (the ratio controller's damping)."""
KEEP_BOUNDS = (0.05, 1.0)
"""Range of the adaptive keep rates."""
THAW_ALPHA = 0.5
"""EMA rate of the thaw rate (one observation per epoch)."""
CONFIRMED = -1
"""A prompt counts as out of reach when ``group_streak <= CONFIRMED`` (all wrong in its last two or
more windows; one all-wrong group is often chance: 43% at p = 0.1, G = 8) and its pass-rate EMA
is 0 at the store's 1/255 resolution (no right completion remembered: a prompt at a low but
nonzero pass rate that failed twice is not out of reach, and its next mixed group is no thaw)."""


def out_of_reach(store: GEKOStateStore) -> np.ndarray:
    """bool [N]: the prompts out of reach now (:data:`CONFIRMED`)."""
    return (store.group_streak <= CONFIRMED) & (store.columns["correct_ema"] == 0)


@dataclass
class EpochOutcome:
    """What the epoch that just ended showed (counts of prompts rolled out in it)."""

    tried: int
    all_right: int
    all_wrong: int
    out_of_reach: int  # tried with group_streak <= CONFIRMED at the epoch's start
    thawed: int  # of those, the ones whose last group was mixed or all right


class PromptRunState:
    """Keep rates ``keep`` (float64 [2]: all-right, all-wrong direction), the thaw rate, epochs
    advanced, and per prompt: the epoch it was last rolled out (int32 [N], -1 never), ``visits``
    and ``group_streak`` at the last epoch boundary, and the recall mask (bool [N])."""

    def __init__(self, easy_keep: float, hard_keep: float) -> None:
        self.keep = np.array([easy_keep, hard_keep], dtype=np.float64)
        self.thaw_rate = 0.0
        self.epochs = 0
        self.last_tried: np.ndarray | None = None
        self.prev_visits: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None
        self.recall: np.ndarray | None = None
        self.last: EpochOutcome | None = None
        self._store_id: int | None = None

    # ------------------------------------------------------------------ the epoch step
    def bind(self, store: GEKOStateStore, easy_keep: float, hard_keep: float) -> None:
        """Attach to ``store`` (the sampler's). A state advanced on another store restarts when
        ``store`` is a new run's (nothing folded yet); otherwise ``ValueError``: one policy object
        serves one sampler."""
        n = len(store)
        if self.last_tried is not None and self._store_id == id(store):
            self._check_length(n)
            return
        fresh = store.total_updates == 0 and not store.visits.any()
        if self.last_tried is not None and self._store_id is not None and not fresh:
            raise ValueError(
                "this PromptPolicy already steers another sampler's run (its keep rates and "
                "per-prompt history are that run's state): build one PromptPolicy per sampler"
            )
        if self.last_tried is None or self._store_id is not None:  # a new run: start afresh
            self.__init__(easy_keep, hard_keep)  # type: ignore[misc]
            self.last_tried = np.full(n, -1, dtype=np.int32)
            self.prev_visits = store.visits.copy()
            self.prev_out = out_of_reach(store)
            self.recall = np.zeros(n, dtype=bool)
        self._check_length(n)  # else: loaded from a file, not yet bound: keep it
        self._store_id = id(store)

    def _check_length(self, n: int) -> None:
        assert self.last_tried is not None
        if len(self.last_tried) != n:
            raise ValueError(
                f"PromptPolicy state is for {len(self.last_tried)} prompts, the store has {n}"
            )

    def observe(self, store: GEKOStateStore) -> tuple[np.ndarray, np.ndarray, EpochOutcome]:
        """(rolled out last epoch: bool [N], thawed in it: bool [N], the epoch's counts). A prompt
        thawed when it was out of reach at the epoch's start and its last group was mixed or
        right. ``visits`` saturates at 65535 completions per prompt; past that a prompt no longer
        shows as rolled out."""
        assert self.prev_visits is not None and self.prev_out is not None
        visits, streak = store.visits, store.group_streak
        tried = visits != self.prev_visits
        reach = tried & self.prev_out
        thawed = reach & (streak >= 0)
        outcome = EpochOutcome(
            tried=int(np.count_nonzero(tried)),
            all_right=int(np.count_nonzero(tried & (streak > 0))),
            all_wrong=int(np.count_nonzero(tried & (streak < 0))),
            out_of_reach=int(np.count_nonzero(reach)),
            thawed=int(np.count_nonzero(thawed)),
        )
        return tried, thawed, outcome

    def adapt(self, outcome: EpochOutcome, targets: tuple[float, float]) -> None:
        """Ratio control of each direction's keep rate toward its target share of zero-variance
        groups among the prompts rolled out: ``keep *= clip(target / observed, 1/KEEP_STEP,
        KEEP_STEP)``, within :data:`KEEP_BOUNDS`. The zero-variance groups a skip rate lets
        through grow about in proportion to it, so ``keep * target / observed`` is the rate that
        would have hit the target; the clip damps one epoch's noise."""
        if not outcome.tried:
            return
        observed = np.array([outcome.all_right, outcome.all_wrong], dtype=np.float64)
        observed /= outcome.tried
        wanted = np.asarray(targets, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(observed > 0, wanted / observed, KEEP_STEP)
        ratio = np.clip(ratio, 1.0 / KEEP_STEP, KEEP_STEP)
        self.keep = np.clip(self.keep * ratio, *KEEP_BOUNDS)

    def note_thaws(self, outcome: EpochOutcome) -> None:
        """Thaw rate EMA: the share of out-of-reach prompts rolled out last epoch whose group was
        mixed or right (the model's progress where it matters for skipped prompts)."""
        if outcome.out_of_reach:
            seen = outcome.thawed / outcome.out_of_reach
            self.thaw_rate = (1.0 - THAW_ALPHA) * self.thaw_rate + THAW_ALPHA * seen

    def close_epoch(self, store: GEKOStateStore, tried: np.ndarray) -> None:
        """Remember this boundary: last-tried epochs, ``visits`` and ``group_streak``."""
        assert self.last_tried is not None
        self.last_tried[tried] = self.epochs - 1
        self.prev_visits = store.visits.copy()
        self.prev_out = out_of_reach(store)

    def epochs_since_tried(self, rows: np.ndarray) -> np.ndarray:
        """Epochs since each prompt of ``rows`` was last rolled out, counting the one being
        planned (>= 1), float64; ``epochs`` (all of them) where never or unknown."""
        if self.last_tried is None or not len(rows) or rows.max() >= len(self.last_tried):
            return np.full(len(rows), float(max(self.epochs, 1)))
        last = self.last_tried[rows]
        return np.where(last >= 0, self.epochs - last - 1, self.epochs).astype(np.float64)

    # ------------------------------------------------------------------ files
    def arrays(self) -> dict[str, np.ndarray]:
        """The state as arrays for the sampler file (empty before the first epoch step)."""
        if self.last_tried is None:
            return {}
        assert self.prev_visits is not None and self.prev_out is not None
        assert self.recall is not None
        return {
            "keep": self.keep.copy(),
            "scalars": np.array([self.thaw_rate, float(self.epochs)], dtype=np.float64),
            "last_tried": self.last_tried.copy(),
            "prev_visits": self.prev_visits.copy(),
            "prev_out": self.prev_out.astype(np.uint8),
            "recall": self.recall.astype(np.uint8),
        }

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`arrays` (``ValueError`` and nothing changed if they do not fit)."""
        names = {"keep", "scalars", "last_tried", "prev_visits", "prev_out", "recall"}
        if set(arrays) != names:
            raise ValueError(
                f"PromptPolicy state arrays must be {sorted(names)}, got {sorted(arrays)}"
            )
        keep = np.asarray(arrays["keep"], dtype=np.float64)
        scalars = np.asarray(arrays["scalars"], dtype=np.float64)
        per_prompt = [arrays[k] for k in ("last_tried", "prev_visits", "prev_out", "recall")]
        n = len(per_prompt[0])
        if keep.shape != (2,) or not ((keep >= 0) & (keep <= 1)).all():
            raise ValueError(f"PromptPolicy keep rates must be 2 values in [0, 1], got {keep}")
        if scalars.shape != (2,) or not np.isfinite(scalars).all() or scalars[1] < 0:
            raise ValueError(f"PromptPolicy scalars must be (thaw rate, epochs), got {scalars}")
        if any(a.ndim != 1 or len(a) != n for a in per_prompt):
            raise ValueError("PromptPolicy per-prompt state arrays must be 1-D of one length")
        self.keep = keep.copy()
        self.thaw_rate, self.epochs = float(scalars[0]), int(scalars[1])
        self.last_tried = np.asarray(arrays["last_tried"], dtype=np.int32).copy()
        self.prev_visits = np.asarray(arrays["prev_visits"], dtype=np.uint16).copy()
        self.prev_out = np.asarray(arrays["prev_out"]).astype(bool)
        self.recall = np.asarray(arrays["recall"]).astype(bool)
