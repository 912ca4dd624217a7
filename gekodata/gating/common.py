"""Building blocks shared by token selection (:mod:`gekodata.gating.tokens`) and row selection
(:mod:`gekodata.gating.rows`): the private random generator and stable ranks (argument checks are
:mod:`gekodata.arguments`).
"""

from __future__ import annotations

import torch


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
