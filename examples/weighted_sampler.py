"""A distributed, resumable weighted sampler with weights that change during training.

CPU, offline, a few seconds: an imbalanced synthetic task (class 0 is 90% of the data), weights
1 / class frequency at first (balanced draws), then each epoch reweighted from the model's own
per-class error (a callback-style ``policy.set_weights``), a checkpoint after epoch 1 and a
resume that reproduces the uninterrupted run's next epoch exactly.

    python examples/weighted_sampler.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gekodata import PruningDataset, WeightedBucketSampler, WeightPolicy

N, DIM, CLASSES, EPOCHS = 4000, 16, 4, 4


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.where(
        torch.rand(N, generator=g) < 0.9, 0, torch.randint(1, CLASSES, (N,), generator=g)
    )
    centers = torch.randn(CLASSES, DIM, generator=g) * 0.35
    x = centers[y] + torch.randn(N, DIM, generator=g)
    return x, y


def main() -> None:
    x, y = make_data()
    labels = y.numpy()
    freq = np.bincount(labels, minlength=CLASSES) / N
    ds = PruningDataset(TensorDataset(x, y))  # items gain a trailing index

    policy = WeightPolicy(1.0 / freq[labels])  # balanced: each class drawn equally often
    sampler = WeightedBucketSampler(ds, policy, num_epochs=EPOCHS, seed=0)  # N draws per epoch
    loader = DataLoader(ds, batch_size=64, sampler=sampler)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(DIM, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = Path(tempfile.mkdtemp())
    plans = {}

    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)  # the plan uses the weights set before this call
        plans[epoch] = sampler.global_plan.copy()
        drawn = np.bincount(labels[plans[epoch]], minlength=CLASSES)
        for xb, yb, idx in loader:
            loss = nn.functional.cross_entropy(model(xb), yb, reduction="none")
            loss.mean().backward()
            opt.step()
            opt.zero_grad()
            sampler.report(loss.detach(), None, None, idx)  # optional: counts passes
        with torch.no_grad():
            wrong = (model(x).argmax(-1) != y).numpy()
        error = np.bincount(labels, weights=wrong, minlength=CLASSES) / np.bincount(labels)
        print(f"epoch {epoch}: draws per class {drawn.tolist()}, error per class {error.round(3)}")
        # reweight from the model's state (an epoch-end callback): class weight ~ its error
        policy.set_weights((0.05 + error[labels]) / freq[labels])
        if epoch == 1:
            sampler.save(ckpt / "sampler.safetensors")
            policy.save(ckpt / "weights.safetensors")

    # resume after epoch 1 in "a new process": the next plan equals the uninterrupted run's
    resumed_policy = WeightPolicy(num_samples=N)  # weights come from the file
    resumed_policy.load(ckpt / "weights.safetensors")
    resumed = WeightedBucketSampler(ds, resumed_policy, num_epochs=EPOCHS, seed=0)
    resumed.load(ckpt / "sampler.safetensors")
    resumed.set_epoch(2)
    same = np.array_equal(resumed.global_plan, plans[2])
    print(f"resumed epoch 2 plan equals the uninterrupted run's: {same}")
    assert same


if __name__ == "__main__":
    main()
