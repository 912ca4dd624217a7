"""Argument checks every layer shares: numbers in (part of) [0, 1], integers with a floor, and
integer values or index arrays inside a half-open range.

The bottom layer: it imports nothing of gekodata, so the store, the policies, the planner, the
gating and the sampler all check an argument the same way and say the same thing when it is
wrong. Each check raises ``ValueError`` whose message names the argument, the range and the value
(DESIGN §2: "validation messages that name the value, the cause and the fix").
:func:`instance_only` is the same for a method called on its class instead of an instance.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import numpy as np

__all__ = [
    "check_index",
    "check_int",
    "check_unit_interval",
    "in_range",
    "instance_only",
    "outside_range",
]


def check_unit_interval(
    name: str,
    value: Any,
    *,
    exclude_zero: bool = False,
    exclude_one: bool = False,
    what: str = "",
) -> float:
    """``value`` as a float in [0, 1] (``(0, ...`` with ``exclude_zero``, ``..., 1)`` with
    ``exclude_one``), else ``ValueError``: ``"{name} must be {what}in [0, 1], got {value}"`` with
    the brackets of the interval checked (``what``, e.g. ``"a draw rate "``, describes the
    number). NaN and infinities always fail."""
    value = float(value)
    above = value > 0.0 if exclude_zero else value >= 0.0  # NaN fails every comparison
    below = value < 1.0 if exclude_one else value <= 1.0
    if not (above and below):
        interval = f"{'(' if exclude_zero else '['}0, 1{')' if exclude_one else ']'}"
        raise ValueError(f"{name} must be {what}in {interval}, got {value}")
    return value


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def outside_range(values: np.ndarray, stop: int, start: int = 0) -> np.ndarray:
    """bool [k]: where the integers ``values`` lie outside ``[start, stop)``."""
    return (values < start) | (values >= stop)


def in_range(values: np.ndarray, stop: int, start: int = 0) -> bool:
    """Whether every integer of ``values`` lies in ``[start, stop)`` (True when empty); O(k), no
    k-sized temporary."""
    return len(values) == 0 or (int(values.min()) >= start and int(values.max()) < stop)


def check_index(name: str, value: Any, stop: int) -> None:
    """``ValueError`` unless ``value`` (an int, or an integer array) lies in ``[0, stop)``:
    ``"{name} must be in [0, {stop}), got ..."`` with the value, or an array's smallest and
    largest entry."""
    if isinstance(value, np.ndarray):
        if not in_range(value, stop):
            got = f"values {int(value.min())}..{int(value.max())}"
            raise ValueError(f"{name} must be in [0, {stop}), got {got}")
    elif not 0 <= value < stop:
        raise ValueError(f"{name} must be in [0, {stop}), got {value}")


class _InstanceOnly:
    """The descriptor of :func:`instance_only`."""

    def __init__(self, func: Callable[..., Any], hint: str) -> None:
        self.__func__ = func
        self.hint = hint
        functools.update_wrapper(self, func)  # type: ignore[arg-type]  # docs, signature

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[..., Any]:
        if obj is not None:
            return types.MethodType(self.__func__, obj)
        func, hint = self.__func__, self.hint
        cls = owner

        @functools.wraps(func)
        def on_class(*args: Any, **kwargs: Any) -> Any:
            if args and cls is not None and isinstance(args[0], cls):
                return func(*args, **kwargs)  # Cls.method(instance, ...): plain Python
            name = cls.__name__ if cls is not None else "the class"
            raise TypeError(
                f"{name}.{func.__name__}() is a method of a {name} instance, called here on the "
                f"class: {hint}"
            )

        return on_class


def instance_only(hint: str) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a method that only an instance can run (``store.load(path)`` restores *this*
    store): called on the class instead (``Cls.method(path)``), it raises ``TypeError`` saying
    ``hint`` (the fix: e.g. the classmethod that builds one) rather than Python's "missing 1
    required positional argument"."""

    def wrap(func: Callable[..., Any]) -> Any:
        return _InstanceOnly(func, hint)

    return wrap
