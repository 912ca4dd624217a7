"""The learning-rate schedule driven by progress through gekodata's epoch plans, not by step count.

``Trainer`` sizes its schedule once, for ``T = num_train_epochs * F`` optimizer steps, ``F`` from
the first (full) epoch. gekodata's later epochs are shorter, so counting steps would leave the
schedule short of its end (a linear decay would stop far above 0). :class:`PlanProgressLR` wraps the
``LambdaLR`` Trainer built and moves it to where the run is in its plan instead.
"""

from __future__ import annotations

from typing import Any

import torch


class PlanProgressLR:
    """Drives a ``LambdaLR`` built for ``horizon`` steps by progress through the epochs' plans.

    The k-th of ``n_e`` optimizer steps of epoch ``e`` moves the wrapped schedule to step
    ``round(horizon * (e + k / n_e) / num_epochs)``. Full epochs give exactly the wrapped
    schedule. Everything else (``get_last_lr``, ``state_dict``, ...) is the wrapped scheduler's.
    """

    def __init__(
        self, inner: torch.optim.lr_scheduler.LambdaLR, horizon: int, num_epochs: int
    ) -> None:
        self.inner, self.horizon, self.num_epochs = inner, int(horizon), int(num_epochs)
        self._epoch, self._updates, self._done = 0, 1, 0

    def begin_epoch(self, epoch: int, updates: int, done: int) -> None:
        """Epoch ``epoch`` has ``updates`` optimizer steps, ``done`` of them taken already (resume)."""
        self._epoch, self._updates, self._done = int(epoch), max(int(updates), 1), int(done)

    def step(self) -> None:
        self._done += 1
        progress = (self._epoch + min(self._done / self._updates, 1.0)) / self.num_epochs
        self.inner.last_epoch = round(self.horizon * progress) - 1
        self.inner.step()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.inner, name)


class PlanScheduleMixin:
    """``create_scheduler`` for gekodata's trainers: a schedule the trainer builds itself (a plain
    ``LambdaLR``: linear, cosine, constant with warmup, ...) is driven by plan progress
    (:class:`PlanProgressLR`). A scheduler the user passed in, or another class (a subclass of
    ``LambdaLR`` included: its own stepping may not survive being moved), is left as it is.
    Needs ``self.gekodata_sampler``; put it before the ``Trainer`` class in the bases."""

    lr_scheduler: Any
    gekodata_sampler: Any

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        created = self.lr_scheduler is None
        scheduler = super().create_scheduler(  # type: ignore[misc]
            num_training_steps=num_training_steps, optimizer=optimizer
        )
        if created and type(scheduler) is torch.optim.lr_scheduler.LambdaLR:
            self.lr_scheduler = PlanProgressLR(
                scheduler, num_training_steps, self.gekodata_sampler.num_epochs
            )
        return self.lr_scheduler


__all__ = ["PlanProgressLR", "PlanScheduleMixin"]
