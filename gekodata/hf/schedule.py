"""`PlanProgressLR`: a Trainer's LR schedule driven by progress through gekodata's epoch plans.

Trainer builds its schedule for ``horizon = num_train_epochs * F`` optimizer steps, ``F`` the first
(full) epoch's. When later epochs shrink, counting steps would leave warmup and decay unfinished;
this wrapper moves the schedule instead to ``round(horizon * (e + k / n_e) / num_epochs)`` at the
k-th of the ``n_e`` optimizer steps of epoch ``e``, where ``progress()`` returns ``(e, k, n_e)``.
Full epochs give exactly the step-counting schedule. Everything else (``get_last_lr``,
``state_dict``, ...) is the wrapped scheduler's, so Trainer checkpoints and restores it as usual.

Used by :class:`~gekodata.hf.GekoGRPOTrainer`; :class:`~gekodata.hf.GekoTrainer` keeps an older
copy of the same rule in ``trainer.py`` (to be moved onto this class with that module's rework).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import torch

Progress = Callable[[], Tuple[int, int, int]]


class PlanProgressLR:
    """Wraps ``inner`` (a ``LambdaLR`` built for ``horizon`` steps) for a run of ``num_epochs``;
    ``progress()`` is called at every :meth:`step` and returns (epoch, optimizer steps done in it
    including this one, optimizer steps in it)."""

    def __init__(self, inner: torch.optim.lr_scheduler.LambdaLR, horizon: int, num_epochs: int,
                 progress: Progress) -> None:
        self.inner, self.horizon, self.num_epochs, self.progress = inner, int(horizon), int(num_epochs), progress

    def step(self) -> None:
        epoch, done, total = self.progress()
        where = (epoch + min(done / max(total, 1), 1.0)) / self.num_epochs
        self.inner.last_epoch = round(self.horizon * where) - 1
        self.inner.step()

    def state_dict(self) -> Dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)


__all__ = ["PlanProgressLR", "Progress"]
