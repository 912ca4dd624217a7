"""Benchmark data helpers: dict-item tensor datasets, test accuracy, symmetric label noise."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset


class TensorDictDataset(Dataset):
    """Rows of equally long tensors as dict items."""

    def __init__(self, **columns: torch.Tensor) -> None:
        self.columns = columns
        self.length = len(next(iter(columns.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.columns.items()}


@torch.inference_mode()
def accuracy(
    model: nn.Module,
    forward,
    dataset: TensorDictDataset,
    batch_size: int = 256,
    class_weights: torch.Tensor | None = None,
) -> dict:
    """``{"metric", "macro"}``: test accuracy (with ``class_weights``: per-class accuracy weighted
    by them, i.e. the accuracy on a test set drawn with those class shares) and macro accuracy
    (the unweighted mean of per-class accuracy)."""
    model.eval()
    labels = dataset.columns["labels"]
    num_classes = int(labels.max()) + 1 if class_weights is None else len(class_weights)
    right = torch.zeros(num_classes, dtype=torch.float64)
    for start in range(0, len(dataset), batch_size):
        batch = {k: v[start : start + batch_size] for k, v in dataset.columns.items()}
        hit = (forward(model, batch).argmax(-1) == batch["labels"]).double()
        right += torch.bincount(batch["labels"], weights=hit, minlength=num_classes)
    model.train()
    per_class = right / torch.bincount(labels, minlength=num_classes).clamp(min=1).double()
    metric = (
        float(right.sum() / len(dataset))
        if class_weights is None
        else float((per_class * class_weights).sum())
    )
    return {"metric": metric, "macro": float(per_class.mean())}


def evaluator(forward, test: TensorDictDataset, batch_size: int) -> Callable:
    """class weights (or None) -> ``model -> accuracy(...)``: the tasks' ``make_evaluate``."""
    return lambda class_weights=None: (
        lambda model: accuracy(model, forward, test, batch_size, class_weights)
    )


def inject_noise(
    labels: torch.Tensor, num_classes: int, rate: float, seed: int
) -> tuple[torch.Tensor, np.ndarray]:
    """Symmetric noise: ``round(rate * n)`` samples (chosen by ``seed``) get a label drawn
    uniformly from the *other* classes. Returns (noisy labels, bool [n] flipped)."""
    rng = np.random.default_rng([seed, 7919])
    n = len(labels)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, round(rate * n), replace=False)] = True
    noisy = labels.clone()
    shift = torch.from_numpy(rng.integers(1, num_classes, size=int(flipped.sum())))
    noisy[torch.from_numpy(flipped)] = (labels[torch.from_numpy(flipped)] + shift) % num_classes
    return noisy, flipped
