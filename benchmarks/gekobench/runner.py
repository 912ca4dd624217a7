"""The training loop of every time-to-quality arm (DESIGN.md §4).

Per task and seed every arm starts from the same initialisation, with the same optimizer, batch
size and learning-rate rule; only what is trained differs (:mod:`.arms`). Learning rate: linear
decay to zero over the run's progress, ``(epoch + step / steps_this_epoch) / epochs`` for the
epoch-based arms (so shrinking epochs still decay fully) and ``passes / budget`` for a same-budget
control. Wall-clock counts forward, backward, optimizer, data loading, signals, ``report`` and
planning (and a reference model's training); test evaluation is excluded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from gekodata import GEKOStateStore, PruningDataset, ReducibleLossPolicy, WeightedBucketSampler
from gekodata.signals import classification_signals

from .arms import ArmSpec
from .tasks import Task

DEFAULT_THREADS = torch.get_num_threads()
RUN_KEYS = (
    "final_metric",
    "final_macro",
    "wall_clock_s",
    "sample_passes",
    "selection_s",
    "passes_per_epoch",
    "reference_s",
    "reference_passes",
    "data",
)
DATA_KEYS = (
    "mislabeled_share",
    "imbalance",
    "rare_classes",
    "learned_at_once_share",
    "still_learning_share",
)  # what a run's result keeps of its sampler's final diagnosis
Budget = dict[str, Any]  # a source arm's {"per_epoch": [passes per epoch], "total": passes}
OnEpoch = Callable[[int, WeightedBucketSampler | None], dict]


def reference_for(task: Task, seed: int):
    """The seed's cross-fitted reference losses (:func:`.variants.reference_losses`), computed once
    per task and seed; their seconds are added to the wall-clock of every arm that uses them."""
    key = ("reference", seed)
    if key not in task.cache:
        from .variants import reference_losses

        task.cache[key] = reference_losses(task, seed)
    return task.cache[key]


def make_sampler(
    task: Task,
    spec: ArmSpec,
    seed: int,
    dataset: PruningDataset,
    epochs: int,
    budget: Budget | None,
) -> WeightedBucketSampler:
    """The arm's sampler (not for ``full``)."""
    n = len(task.train)
    if spec.kind == "control":
        kwargs = {"budget": budget["per_epoch"][0]} if spec.control == "random" else {}
        return WeightedBucketSampler(dataset, spec.policy(), num_epochs=epochs, seed=seed, **kwargs)
    policy = spec.policy()
    if spec.kind == "candidate":
        # its store learns the training labels from the reports (class-aware noise guard) and,
        # for ReducibleLossPolicy, gets the cross-fitted reference losses
        store = GEKOStateStore(n)
        if isinstance(policy, ReducibleLossPolicy):
            store.set_reference_loss(None, reference_for(task, seed).losses)
        return WeightedBucketSampler(dataset, policy, num_epochs=epochs, seed=seed, store=store)
    store = None if spec.ema_alpha is None else GEKOStateStore(n, ema_alpha=spec.ema_alpha)
    kwargs = {"unbiased": True} if spec.unbiased else {}
    return WeightedBucketSampler(
        dataset,
        policy,
        num_epochs=epochs,
        seed=seed,
        **kwargs,
        **({"store": store} if store else {}),
    )


def make_loader(task: Task, spec: ArmSpec, seed: int, budget: Budget | None):
    """(loader, sampler or None, number of epochs, pass budget or None) for one arm; ``budget``:
    the source arm's figures for a control arm."""
    if spec.kind == "full":
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(
            task.train, batch_size=task.batch_size, shuffle=True, generator=generator
        )
        return loader, None, task.epochs, None
    dataset = PruningDataset(task.train)
    epochs, pass_budget = task.epochs, None
    if spec.control == "budget":
        pass_budget = budget["total"]
        epochs = math.ceil(pass_budget / len(task.train))
    sampler = make_sampler(task, spec, seed, dataset, epochs, budget)
    loader = DataLoader(dataset, batch_size=task.batch_size, sampler=sampler)
    return loader, sampler, epochs, pass_budget


def run_arm(
    task: Task,
    spec: ArmSpec,
    seed: int,
    init_state: dict,
    budget: Budget | None,
    on_epoch: OnEpoch | None = None,
) -> dict[str, Any]:
    """Train one arm from ``init_state``; per-epoch test accuracy, wall-clock and passes.

    ``on_epoch(epoch, sampler)`` returns extra figures stored in that epoch's curve point (not
    timed). The result's ``"sampler"`` (None for ``full``) is for the caller, never saved."""
    model = task.make_model(seed)
    model.load_state_dict(init_state)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=task.lr, weight_decay=task.weight_decay)
    torch.manual_seed(seed)  # dropout
    loader, sampler, epochs, pass_budget = make_loader(task, spec, seed, budget)
    reports = sampler is not None and spec.reports
    weighted = sampler is not None and (sampler.unbiased or sampler.policy.provides_loss_weights)
    uses_reference = sampler is not None and isinstance(sampler.policy, ReducibleLossPolicy)
    reference = reference_for(task, seed) if uses_reference else None
    curve, passes_per_epoch = [], []
    passes, selection_s = 0, 0.0
    train_s = reference.seconds if reference is not None else 0.0  # the reference compute counts
    for epoch in range(epochs):
        started = time.perf_counter()
        if sampler is not None:
            if spec.control == "random":
                sampler.budget = budget["per_epoch"][epoch]
            sampler.set_epoch(epoch)
        steps = max(len(loader), 1)
        selection_s += time.perf_counter() - started
        epoch_passes = 0
        for step, batch in enumerate(loader):
            progress = passes / pass_budget if pass_budget else (epoch + step / steps) / epochs
            for group in opt.param_groups:
                group["lr"] = task.lr * max(0.0, 1.0 - progress)
            logits = task.forward(model, batch)
            signals = classification_signals(logits, batch["labels"])
            loss = signals.loss
            (loss * batch["weight"] if weighted else loss).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if reports:
                t = time.perf_counter()
                # the loop's labels and predictions travel with the report where the arm has them
                sampler.report(
                    *signals,
                    batch["idx"],
                    pred=signals.pred if spec.pred else None,
                    label=signals.label if spec.labels else None,
                )
                selection_s += time.perf_counter() - t
            epoch_passes += len(loss)
            passes += len(loss)
            if pass_budget and passes >= pass_budget:
                break
        train_s += time.perf_counter() - started
        passes_per_epoch.append(epoch_passes)
        scores = task.evaluate(model)
        curve.append(
            {
                "epoch": epoch,
                "train_s": train_s,
                "passes": passes,
                **(scores if isinstance(scores, dict) else {"metric": scores}),
                **(on_epoch(epoch, sampler) if on_epoch else {}),
            }
        )
        if pass_budget and passes >= pass_budget:
            break
    data = None
    if reports:  # after training, untimed: fold the last epoch, then what the run says of its data
        sampler.flush()
        diagnosis = sampler.diagnosis().to_dict()
        data = {key: diagnosis[key] for key in DATA_KEYS}
    return {
        "final_metric": curve[-1]["metric"],
        "final_macro": curve[-1].get("macro"),
        "wall_clock_s": train_s,
        "sample_passes": passes,
        "passes_per_epoch": passes_per_epoch,
        "selection_s": selection_s,
        "reference_s": reference.seconds if reference is not None else 0.0,
        "reference_passes": reference.train_passes if reference is not None else 0,
        "data": data,
        "curve": curve,
        "sampler": sampler,
    }


def set_threads(task: Task) -> None:
    """torch's intra-op threads for ``task`` (its own, or torch's default)."""
    torch.set_num_threads(task.threads or DEFAULT_THREADS)
