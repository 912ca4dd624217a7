"""Reporting RL prompts' group outcomes to a sampler: :func:`report_groups` and
:func:`reward_reporter`.

In GRPO-style training every planned prompt gets a group of completions, each scored by a reward
function. gekodata learns from those rewards per prompt index (the policy is
:class:`~gekodata.policy.PromptPolicy`; its docstring has the rules and sources):

* **hand-written loop**: after scoring a batch of groups, call
  ``report_groups(sampler, idx, rewards)`` with the prompts' indices and their rewards
  ([P, G] for P prompts of G completions, or one row per completion);
* **a reward function** (TRL's ``GRPOTrainer`` passes dataset columns such as ``"idx"`` to reward
  functions as keyword arguments): wrap it in one line, ``reward_reporter(sampler, my_reward)``;
  the wrapper calls your function unchanged, reports what it returned, and returns it.

How a group becomes store rows: each completion is one row of the prompt's index with its reward
normalised to ``s = (reward - low) / (high - low)`` in [0, 1] (``reward_range=(low, high)``;
default (0, 1), a pass/fail verifier's scale) as correctness ``s``, confidence ``s`` and loss
``1 - s``. The store folds all rows of a sync window into one observation per prompt (its
correctness EMA is the pass-rate EMA), and records in its ``group_streak`` column whether every
row of the prompt was exactly equal (zero reward variance: zero GRPO advantage). A group split
across processes (TRL deals a generation batch out in contiguous slices) is whole again at the sync
point, where every rank's rows are gathered. Completions whose reward is None or NaN (TRL's "this
reward function does not apply") are not reported, and a prompt is judged (all equal or not) only
on two or more scored completions in a sync window: with one, its ``group_streak`` is left as it
was.

A group may arrive in pieces (several calls, or a [P, 4] report for ``group_size=8``): legal, as
long as the pieces of a prompt add up to whole groups within a sync window. :func:`report_groups`
counts every completion, scored or not, per prompt and window and warns (``UserWarning``) when a
prompt's count is not a multiple of ``group_size`` once the window closes (:func:`check_groups`
checks the open one). Single process only: under several processes the pieces are on different
ranks, and the sync point gathers them.

The reported loss ``1 - s`` is what the forgetting audit compares: an audited frozen prompt with
one failed completion (loss 1 against a loss EMA near 0) is unfrozen with the default
``audit_margin=0.5``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Callable

import numpy as np
import torch

from .policy import Bucket
from .sampler.weighted_bucket import WeightedBucketSampler
from .store.state_store import GEKOStateStore

RewardRange = tuple[float, float]


def _as_array(name: str, x: Any, numeric: bool) -> np.ndarray:
    """``x`` (numpy, torch, list) as a host array; ``numeric``: float64 with None as NaN."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.double().numpy() if numeric else x.numpy()
    if not numeric:
        return np.asarray(x)
    try:
        if isinstance(x, (list, tuple)):
            x = [
                [np.nan if v is None else v for v in row]
                if isinstance(row, (list, tuple))
                else (np.nan if row is None else row)
                for row in x
            ]
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers (or None), got {exc}") from None


def _check_range(reward_range: RewardRange) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range must be (low, high), got {reward_range!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"reward_range must be finite with high > low, got {reward_range!r}")
    return low, high


def group_rows(
    idx: Any, rewards: Any, reward_range: RewardRange = (0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """The store rows of a report: (idx int64 [n], normalised reward float32 [n] in [0, 1]), one
    per completion whose reward is a number. Pure; :func:`report_groups` reports them.

    ``idx`` [P] with ``rewards`` [P, G] (P prompts, G completions each), or ``idx`` and
    ``rewards`` both [P * G] (one entry per completion; a prompt's completions need not be
    adjacent). ``ValueError`` for other shapes, non-integer indices, or a reward outside
    ``reward_range`` (None and NaN rewards are skipped; +-inf is refused).
    """
    idx_a, rew, low, high = _completions(idx, rewards, reward_range)
    known = ~np.isnan(rew)
    scaled = ((rew[known] - low) / (high - low)).astype(np.float32)
    return idx_a[known].astype(np.int64), scaled


def _completions(
    idx: Any, rewards: Any, reward_range: RewardRange
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(prompt index per completion [n], reward per completion float64 [n] with NaN = not
    scored, low, high), checked as :func:`group_rows` says."""
    low, high = _check_range(reward_range)
    idx_a = _as_array("idx", idx, numeric=False)
    rew = _as_array("rewards", rewards, numeric=True)
    if idx_a.ndim != 1:
        raise ValueError(
            f"idx must be 1-D (one prompt index per group or per completion), got shape {idx_a.shape}"
        )
    if len(idx_a) and not (np.issubdtype(idx_a.dtype, np.integer) and idx_a.dtype != np.bool_):
        raise ValueError(f"idx must hold integer prompt indices, got dtype {idx_a.dtype}")
    if rew.ndim == 2:
        if rew.shape[0] != len(idx_a):
            raise ValueError(f"rewards has {rew.shape[0]} groups but idx has {len(idx_a)} prompts")
        idx_a = np.repeat(idx_a, rew.shape[1])
        rew = rew.reshape(-1)
    elif rew.ndim != 1 or len(rew) != len(idx_a):
        raise ValueError(
            f"rewards must be [P, G] for idx [P], or [n] like idx [n]; got rewards {rew.shape} "
            f"and idx {idx_a.shape}"
        )
    known = ~np.isnan(rew)
    outside = known & ~((rew >= low) & (rew <= high))
    if outside.any():
        where = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"reward {rew[where]} (prompt {idx_a[where]}) is outside reward_range ({low}, {high}); "
            "pass the reward function's range, e.g. reward_range=(-1, 1)"
        )
    return idx_a, rew, low, high


def report_groups(
    sampler: WeightedBucketSampler,
    idx: Any,
    rewards: Any,
    *,
    reward_range: RewardRange = (0.0, 1.0),
) -> int:
    """Report the rewards of prompts' groups of completions to ``sampler``; returns the rows
    (completions) reported.

    Args:
        sampler: the :class:`WeightedBucketSampler` that planned the prompts (usually with a
            :class:`~gekodata.policy.PromptPolicy`).
        idx: int, the prompts' indices in the prompt dataset: [P] with ``rewards`` [P, G], or
            [n] with ``rewards`` [n] (one per completion, any order).
        rewards: the completions' rewards (numpy, torch, lists; None or NaN = not scored).
        reward_range: (low, high) of the reward function; rewards are normalised into [0, 1].

    A bad call (shapes, a reward out of range, an index out of the dataset) raises
    ``ValueError`` and reports nothing. See the module docstring for what is stored.
    """
    idx_a, rew, low, high = _completions(idx, rewards, reward_range)
    known = ~np.isnan(rew)
    scaled = ((rew[known] - low) / (high - low)).astype(np.float32)
    rows = idx_a[known].astype(np.int64)
    _TALLIES.add(sampler, idx_a)  # before report: a sync_every fold closes the window after it
    sampler.report(np.float32(1.0) - scaled, scaled, scaled, rows)
    return len(rows)


class _GroupTallies:
    """Completions (scored or not) reported per prompt in each sampler's current sync window, to
    check that a prompt's pieces add up to whole groups (:func:`check_groups`). A window is
    closed when the sampler's store has folded since the last report (``total_updates`` or the
    epoch moved). Per process: under several processes a group's pieces are on different ranks,
    so nothing is checked there."""

    def __init__(self) -> None:
        self._open: weakref.WeakKeyDictionary[WeightedBucketSampler, tuple[Any, list]] = (
            weakref.WeakKeyDictionary()
        )

    @staticmethod
    def _size(sampler: WeightedBucketSampler) -> int:
        size = getattr(sampler.policy, "group_size", 1)
        return 0 if sampler.world_size > 1 or not isinstance(size, int) or size < 2 else size

    @staticmethod
    def _mark(sampler: WeightedBucketSampler) -> tuple[int, int]:
        return (sampler.store.total_updates, sampler.epoch)

    def add(self, sampler: WeightedBucketSampler, idx: np.ndarray) -> None:
        if not self._size(sampler) or not len(idx):
            return
        mark, parts = self._open.get(sampler, (None, []))
        if mark is not None and mark != self._mark(sampler):
            self.check(sampler, closed=True)
            parts = []
        parts.append(np.asarray(idx, dtype=np.int64))
        self._open[sampler] = (self._mark(sampler), parts)

    def check(self, sampler: WeightedBucketSampler, closed: bool = False) -> int:
        """Warn about the prompts whose completions in the window are not a multiple of the
        group size; forget the window. Returns how many prompts were uneven."""
        size = self._size(sampler)
        _, parts = self._open.pop(sampler, (None, []))
        if not size or not parts:
            return 0
        prompts, counts = np.unique(np.concatenate(parts), return_counts=True)
        uneven = counts % size != 0
        if uneven.any():
            first = int(np.flatnonzero(uneven)[0])
            warnings.warn(
                f"{int(uneven.sum())} prompts got a number of completions that is not a multiple of "
                f"group_size={size} in one sync window (prompt {int(prompts[first])}: "
                f"{int(counts[first])}): their groups are judged on partial pieces. Report every "
                "piece of a group before the next sync point (set_epoch, flush, sync_every), or "
                "set PromptPolicy(group_size=...) to the completions per prompt",
                UserWarning,
                stacklevel=4 if closed else 3,
            )
        return int(uneven.sum())


_TALLIES = _GroupTallies()


def check_groups(sampler: WeightedBucketSampler) -> int:
    """Check the current sync window now (warn about prompts whose completions, scored or not,
    are not a multiple of the policy's ``group_size``) and close it; returns how many prompts were
    uneven. :func:`report_groups` checks each window when the next one starts; call this after
    the last ``flush()`` of a run (``GekoGRPOTrainer`` does). Single process only."""
    return _TALLIES.check(sampler)


class RewardReporter:
    """A reward function that also reports its rewards to a sampler (:func:`reward_reporter`).

    Calls the wrapped function with exactly the arguments it gets and returns its result
    unchanged; then, unless :meth:`paused`, reports the rewards per completion with the prompt
    indices found in the keyword argument ``index_key`` (TRL passes every dataset column to
    reward functions this way). Keeps the wrapped function's ``__name__`` (TRL logs rewards
    under it).
    """

    def __init__(
        self,
        sampler: WeightedBucketSampler,
        reward_fn: Callable[..., Sequence[Any]],
        *,
        index_key: str = "idx",
        reward_range: RewardRange = (0.0, 1.0),
    ) -> None:
        if not isinstance(sampler, WeightedBucketSampler):
            raise TypeError(
                f"sampler must be a gekodata WeightedBucketSampler, got {type(sampler).__name__}"
            )
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        if inspect.iscoroutinefunction(reward_fn) or inspect.iscoroutinefunction(
            getattr(reward_fn, "__call__", None)  # noqa: B004 (an object's async __call__)
        ):
            raise TypeError(
                "reward_reporter wraps synchronous reward functions; an async one would return a "
                "coroutine before its rewards exist"
            )
        _check_range(reward_range)
        functools.update_wrapper(self, reward_fn)
        self.sampler = sampler
        self.reward_fn = reward_fn
        self.index_key = index_key
        self.reward_range = reward_range
        self.reported_rows = 0
        self._paused = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        rewards = self.reward_fn(*args, **kwargs)
        if not self._paused:
            if self.index_key not in kwargs:
                given = sorted(
                    k for k in kwargs if k not in ("prompts", "completions", "completion_ids")
                )
                raise ValueError(
                    f"the reward function got no {self.index_key!r} keyword (got {given}): the prompt dataset "
                    f"needs a column {self.index_key!r} with each row's position (gekodata.hf.with_prompt_index(ds) "
                    "adds it), passed to reward functions (GRPOConfig(remove_unused_columns=False), the default)"
                )
            self.reported_rows += report_groups(
                self.sampler, kwargs[self.index_key], rewards, reward_range=self.reward_range
            )
        return rewards

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Within this block the wrapper only scores (e.g. evaluation prompts, which are not the
        training set's indices)."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def __repr__(self) -> str:
        return f"RewardReporter({getattr(self.reward_fn, '__name__', self.reward_fn)!r}, index_key={self.index_key!r})"


def reward_reporter(
    sampler: WeightedBucketSampler,
    reward_fn: Callable[..., Sequence[Any]],
    *,
    index_key: str = "idx",
    reward_range: RewardRange = (0.0, 1.0),
) -> RewardReporter:
    """Wrap ``reward_fn`` so that every call also reports its rewards to ``sampler``.

    ``GRPOTrainer(..., reward_funcs=[reward_reporter(sampler, my_reward)])``: ``my_reward`` is
    called as before; the prompt indices come from the ``index_key`` keyword (the dataset column
    of that name). ``reward_range``: the range of ``my_reward``'s values. See
    :class:`RewardReporter` and :func:`report_groups`.
    """
    return RewardReporter(sampler, reward_fn, index_key=index_key, reward_range=reward_range)


def prompt_summary(store: GEKOStateStore) -> dict[str, Any]:
    """Counts of prompts by their last group outcome, from the store alone (no plan needed).

    ``unseen``, ``informative`` (last window had reward variance), ``solved_streak`` and
    ``failed_streak`` (last window all alike, right / wrong), ``frozen`` (bucket FREEZE at the
    last plan), ``pruned``, ``mean_pass_rate`` (pass-rate EMA over seen prompts) and
    ``rollouts`` (completions reported)."""
    seen = store.visits > 0
    streak = store.group_streak
    num_seen = int(np.count_nonzero(seen))
    return {
        "prompts": len(store),
        "unseen": len(store) - num_seen,
        "informative": int(np.count_nonzero(seen & (streak == 0))),
        "solved_streak": int(np.count_nonzero(streak > 0)),
        "failed_streak": int(np.count_nonzero(streak < 0)),
        "frozen": int(np.count_nonzero(store.bucket == Bucket.FREEZE)),
        "pruned": store.num_pruned,
        "mean_pass_rate": float(store.correctness[seen].mean()) if num_seen else None,
        "rollouts": int(store.visits.sum(dtype=np.int64)),
    }


__all__ = [
    "RewardReporter",
    "check_groups",
    "group_rows",
    "prompt_summary",
    "report_groups",
    "reward_reporter",
]
