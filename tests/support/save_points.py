"""A training loop that may save and resume at one (epoch, step): the driver of the save-point tests
(a run that saves anywhere must select exactly as one that never saves)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np


def run_with_save_point(
    new_sampler: Callable[[], Any],
    report: Callable[[Any, np.ndarray, int, int], None],
    epochs: int,
    batch: int,
    save_at: tuple[int, int] | None = None,
    folder: str | os.PathLike | None = None,
) -> tuple[list[np.ndarray], Any]:
    """(each epoch's global plan, the final sampler, flushed) of a loop over ``epochs`` that reports
    its local plan in batches of ``batch`` (``report(sampler, idx, epoch, step)``); at ``save_at``
    it saves into ``folder``, drops the sampler and carries on with a fresh one loaded from the
    file and the position."""
    sampler, plans = new_sampler(), []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        plans.append(np.asarray(sampler.global_plan).copy())
        plan = np.asarray(sampler.plan)
        batches = [plan[i : i + batch] for i in range(0, len(plan), batch)]
        for step in range(len(batches) + 1):
            if save_at == (epoch, step):
                path = os.path.join(folder, f"e{epoch}s{step}.safetensors")
                sampler.save(path)
                position = sampler.state_dict()
                sampler = new_sampler()
                sampler.load(path)
                sampler.load_state_dict(position)
            if step < len(batches):
                report(sampler, batches[step], epoch, step)
    sampler.flush()
    return plans, sampler
