"""An LR schedule by progress through gekodata's plans, for Lightning.

Lightning sizes step-based schedules from ``trainer.estimated_stepping_batches`` = ``max_epochs``
x the first epoch's optimizer steps. gekodata's later epochs are shorter, so a schedule counted in
steps stops short of its end (a linear decay ends well above 0, ``OneCycleLR`` never anneals).
:func:`plan_progress_lr` counts progress instead: epoch ``e`` after ``b`` of its ``n`` batches is
at ``(e + b / n) / num_epochs``, whatever the epochs' lengths.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


def plan_progress_lr(
    optimizer: torch.optim.Optimizer, callback: Any, schedule: Callable[[float], float]
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` whose factor is ``schedule(progress)``, ``progress`` in [0, 1] read from
    :attr:`GekoCallback.progress <gekodata.lightning.GekoCallback.progress>` at each step. Return it
    from ``configure_optimizers`` with ``"interval": "step"``; e.g. linear decay
    ``schedule=lambda p: 1 - p``. Resume: Lightning restores the optimizer's LR; the next step
    reads the restored progress."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: schedule(callback.progress))


__all__ = ["plan_progress_lr"]
