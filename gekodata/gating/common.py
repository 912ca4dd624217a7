"""Building blocks shared by token selection (:mod:`gekodata.gating.tokens`) and row selection
(:mod:`gekodata.gating.rows`): argument checks, the private random generator and stable ranks.
"""

from __future__ import annotations

import torch


def check_unit_interval(name: str, value: float, *, exclude_zero: bool = False) -> float:
    """``value`` as a float in [0, 1] (``(0, 1]`` with ``exclude_zero``), else ``ValueError``."""
    value = float(value)
    above = value > 0.0 if exclude_zero else value >= 0.0  # NaN fails both
    if not (above and value <= 1.0):
        raise ValueError(f"{name} must be in {'(' if exclude_zero else '['}0, 1], got {value}")
    return value


def check_int(name: str, value: int, minimum: int) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def private_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator`` if given (type-checked), else a fresh non-deterministically seeded one."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        return generator
    g = torch.Generator()
    g.seed()  # private, non-deterministic; pass a generator for reproducible draws
    return g


def ranks_ascending(key: torch.Tensor) -> torch.Tensor:
    """Rank (0 = smallest) of each element of 1-D ``key``; NaN last; ties by position (stable).

    Pass ``-key`` for ranks from the largest.
    """
    order = torch.sort(key, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(key.numel(), device=key.device)
    return ranks
