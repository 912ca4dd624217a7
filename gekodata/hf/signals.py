"""Per-sample signals from a Hugging Face model's ``logits`` and ``labels``, by task.

:func:`per_sample_signals` picks the :mod:`gekodata.signals` function for the task (classification,
causal LM with HF's label shift and ``-100`` for no target, or your own callable) and also returns
each sample's target count, which the loss normalisation of :class:`~gekodata.hf.GekoTrainer` needs.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

from ..signals import causal_lm_signals, classification_signals, multi_label_signals

SignalsFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
SignalsArg = Union[None, str, SignalsFn]


def per_sample_signals(
    logits: torch.Tensor, labels: torch.Tensor, task: SignalsArg
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss [B] differentiable, conf [B], correct [B], targets per sample n [B] float).

    ``task``: ``"classification"`` (logits [B, K], labels [B]; n = 1),
    ``"multi_label_classification"`` (logits and labels [B, K]; n = 1), ``"causal_lm"`` (logits
    [B, T, V], labels [B, T] with -100 for no target, shifted as HF does; n = target tokens), or a
    callable ``f(logits, labels) -> (loss, conf, correct)`` (n = 1), e.g.
    ``functools.partial(gekodata.signals.regression_signals, tolerance=0.1)``.
    """
    if task == "classification":
        loss, conf, correct = classification_signals(logits, labels)
        items = torch.ones_like(loss)
    elif task == "multi_label_classification":
        loss, conf, correct = multi_label_signals(logits, labels)
        items = torch.ones_like(loss)
    elif task == "causal_lm":
        loss, conf, correct = causal_lm_signals(logits, labels)
        items = (labels[:, 1:] != -100).sum(dim=1).to(loss.dtype)
    elif callable(task):
        loss, conf, correct = task(logits, labels)
        items = torch.ones_like(loss)
    else:
        raise ValueError(
            "signals must be 'classification', 'multi_label_classification', 'causal_lm' or a "
            f"callable, got {task!r}"
        )
    return loss, conf, correct, items


__all__ = ["SignalsArg", "SignalsFn", "per_sample_signals"]
