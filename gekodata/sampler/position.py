"""`StreamPosition`: where iteration of one epoch's index stream stands, for exact resume.

The position is that of the most recent iterator: it is 0 for a new plan and for every fresh
``iter()`` (unless a restored position is pending, which the next ``iter()`` starts from), and
counts the indices that iterator has handed out. Reading it is O(1): the stream is converted to
Python ints a chunk at a time, and the position is the chunk's start plus what its list iterator
has already yielded. The iterator chains the chunks' list iterators in C
(``itertools.chain.from_iterable``), so handing out an index runs no Python bytecode.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from typing import Any, Union

import numpy as np

from ..planning.stream import EpochStream

Plan = Union[np.ndarray, EpochStream]
"""An epoch's index stream: computed on demand (:class:`EpochStream`) or an array (once
materialised, or loaded from a checkpoint); both have ``len()`` and slices."""

_ITER_CHUNK = 1 << 16
_FINGERPRINT_LEN = 32


class _Cursor:
    """One iterator's place: ``start`` of its current chunk, the chunk's length and the chunk's
    own list iterator (whose length hint tells how much of it is left)."""

    __slots__ = ("items", "length", "start")

    def __init__(self, start: int) -> None:
        self.start, self.length, self.items = start, 0, iter(())

    def position(self) -> int:
        return self.start + self.length - operator.length_hint(self.items)


class StreamPosition:
    """The position in the current epoch's stream (see the module docstring)."""

    def __init__(self) -> None:
        self._resume_at: int | None = None
        self._cursor = _Cursor(0)
        self._started = False

    def reset(self) -> None:
        """A new plan: start at its beginning, forget any restored position."""
        self._resume_at = None
        self._cursor = _Cursor(0)
        self._started = False

    @property
    def started(self) -> bool:
        """An iterator over the current plan has been made."""
        return self._started

    def finished(self, length: int) -> bool:
        """The last iterator over a non-empty plan of ``length`` indices ran to its end, and no
        restored position is pending (the next ``iter()`` starts the plan again)."""
        return (
            self._started
            and self._resume_at is None
            and length > 0
            and self._cursor.position() >= length
        )

    def iterate(self, local: Plan) -> Iterator[int]:
        """A new iterator over ``local`` (from a restored position if one is pending); from now on
        the position is this iterator's."""
        start = self._resume_at or 0
        self._resume_at = None
        self._started = True
        self._cursor = cursor = _Cursor(start)
        return itertools.chain.from_iterable(_chunks(local, start, cursor))

    @property
    def yielded(self) -> int:
        """Indices handed out in this epoch's stream (or the restored position, pending)."""
        return self._resume_at if self._resume_at is not None else self._cursor.position()

    def restore(self, yielded: int, local: Plan, state: dict[str, Any]) -> None:
        """Make the next iterator start at ``yielded``, after checking that ``state`` (from
        :func:`position_state`) describes ``local``; ``ValueError`` otherwise."""
        if state.get("length", len(local)) != len(local) or (
            "fingerprint" in state and state["fingerprint"] != fingerprint(local)
        ):
            raise ValueError(
                f"sampler state belongs to another plan for epoch {state.get('epoch')}: restore the "
                "sampler with load(path) from the checkpoint taken with this state first"
            )
        if not 0 <= yielded <= len(local):
            raise ValueError(f"yielded={yielded} is outside this epoch's {len(local)} indices")
        self._resume_at = yielded


def fingerprint(local: Plan) -> list[int]:
    """A few indices from both ends of a stream: cheap evidence that two plans are the same."""
    head, tail = np.asarray(local[:_FINGERPRINT_LEN]), np.asarray(local[-_FINGERPRINT_LEN:])
    return head.tolist() + tail.tolist()


def _chunks(local: Any, start: int, cursor: _Cursor) -> Iterator[Iterator[int]]:
    """List iterators over the Python ints of ``local[start:]`` (an array or an
    :class:`~gekodata.planning.stream.EpochStream`), a chunk each, converted when the previous one is
    exhausted; ``cursor`` tracks the current one."""
    for begin in range(start, len(local), _ITER_CHUNK):
        chunk = local[begin : begin + _ITER_CHUNK].tolist()
        cursor.start, cursor.length, cursor.items = begin, len(chunk), iter(chunk)
        yield cursor.items
