"""What selection on a stream saves, and what it does not: skipped examples cost no forward or
backward, but they are still read and decoded (the stream must pass them to decide).

One epoch over a synthetic stream of N JSON-encoded examples (256 floats each; "decode" =
``json.loads`` + ``np.asarray``, timed inside the source) into an MLP (256-512-512-10, SGD,
batch 64), once with every example and once through :class:`gekodata.streaming.SelectedStream`
at a keep fraction of ``--keep`` (a ``StreamSelector`` budget). Per run it records wall time, the
time spent reading + decoding (inside the source), the time in forward + backward + step, and the
selection's own cost (the per-example keyed decision, measured apart on pre-decoded items
against plain iteration). One torch thread, ``--repeats`` runs, medians.

Run (repo root)::

    python -m benchmarks.stream_select            # ~30 s on 2 cores
    python -m benchmarks.stream_select --n 4000 --repeats 1   # a smoke run

Prints a table and writes ``benchmarks/results/stream_select.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from gekodata.streaming import StreamSelector

DIM = 256


class JsonSource(IterableDataset):
    """N examples as JSON strings, decoded on the fly; ``decode_seconds`` sums the decoding."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.raw = [
            json.dumps({"id": i, "x": rng.standard_normal(DIM).round(4).tolist(), "y": i % 10})
            for i in range(n)
        ]
        self.decode_seconds = 0.0
        self.decoded = 0

    def __iter__(self):
        for line in self.raw:
            t = time.perf_counter()
            row = json.loads(line)
            item = {"id": row["id"], "x": np.asarray(row["x"], dtype=np.float32), "y": row["y"]}
            self.decode_seconds += time.perf_counter() - t
            self.decoded += 1
            yield item


def _model() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(DIM, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


def _epoch(stream: Any, source: JsonSource, batch: int) -> dict[str, float]:
    model, opt = _model()
    source.decode_seconds, source.decoded = 0.0, 0
    train = 0.0
    examples = 0
    start = time.perf_counter()
    for b in DataLoader(stream, batch_size=batch, num_workers=0):
        t = time.perf_counter()
        loss = nn.functional.cross_entropy(model(b["x"]), b["y"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        train += time.perf_counter() - t
        examples += len(b["y"])
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "read_decode_s": source.decode_seconds,
        "train_s": train,
        "trained": examples,
        "decoded": source.decoded,
    }


def _decision_ns(n: int, selector: StreamSelector) -> float:
    items = [{"id": i} for i in range(n)]
    t = time.perf_counter()
    for _ in items:
        pass
    plain = time.perf_counter() - t
    t = time.perf_counter()
    for _ in selector.wrap(items, "id"):
        pass
    return max(time.perf_counter() - t - plain, 0.0) / n * 1e9


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--keep", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    source = JsonSource(args.n)
    selector = StreamSelector(args.n, num_epochs=1, seed=0, budget=args.keep)
    runs: dict[str, list[dict[str, float]]] = {"all": [], "selected": []}
    for _ in range(args.repeats):
        runs["all"].append(_epoch(source, source, args.batch))
        runs["selected"].append(_epoch(selector.wrap(source, "id"), source, args.batch))
    med = {arm: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for arm, rs in runs.items()}
    decision = statistics.median(_decision_ns(args.n, selector) for _ in range(args.repeats))
    a, s = med["all"], med["selected"]
    result = {
        "n": args.n,
        "keep_budget": args.keep,
        "batch": args.batch,
        "repeats": args.repeats,
        "torch_threads": 1,
        "medians": med,
        "kept_fraction": s["trained"] / a["trained"],
        "train_saved_fraction": 1 - s["train_s"] / a["train_s"],
        "read_decode_saved_fraction": 1 - s["read_decode_s"] / a["read_decode_s"],
        "wall_saved_fraction": 1 - s["wall_s"] / a["wall_s"],
        "decision_ns_per_example": decision,
        "runs": runs,
    }
    print(f"N={args.n}, keep budget {args.keep}, batch {args.batch}, medians of {args.repeats}")
    print(
        f"{'arm':<10}{'decoded':>9}{'trained':>9}{'wall s':>9}{'read+decode s':>15}{'train s':>9}"
    )
    for arm, m in med.items():
        print(
            f"{arm:<10}{int(m['decoded']):>9}{int(m['trained']):>9}{m['wall_s']:>9.2f}{m['read_decode_s']:>15.2f}"
            f"{m['train_s']:>9.2f}"
        )
    print(
        f"kept {result['kept_fraction']:.3f}; saved: train {result['train_saved_fraction']:.1%}, "
        f"read+decode {result['read_decode_saved_fraction']:.1%}, wall "
        f"{result['wall_saved_fraction']:.1%}; decision {decision:.0f} ns/example"
    )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "stream_select.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
