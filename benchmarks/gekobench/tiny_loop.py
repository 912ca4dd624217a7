"""Wall-clock per trained sample pass of a tiny model, gekodata against a plain DataLoader loop.

Where a training step is sub-millisecond, whatever the data layer does per step or per item shows.
Both arms run the same loop on the same data, model and optimizer; only the data layer differs:

* ``plain``: ``DataLoader(ds, batch_size=B, shuffle=True, num_workers=W)``; forward,
  ``F.cross_entropy(...).mean()``, backward, AdamW step.
* ``gekodata``: ``PruningDataset(ds)`` + ``WeightedBucketSampler`` (default policy) in the same
  DataLoader; ``sampler.set_epoch(e)`` per epoch; ``classification_signals`` instead of the plain
  cross-entropy; after the step ``sampler.report(loss, conf, correct, batch idx)``. Its epochs
  shrink as samples freeze, so the figure compared is seconds per *trained* sample pass.

Tasks: a synthetic 10-class problem (64 features, a fixed random linear teacher plus noise, so
samples are learned at different speeds), as a ``TensorDataset`` (tuple items) and as a Hugging
Face ``datasets.Dataset`` with torch format (dict items; batched Arrow reads through
``__getitems__``). Model: an MLP 64-128-10 on one torch thread. Batch 32 and 256; 0 and 2 loader
workers. Per configuration the arms alternate (plain, gekodata, plain, ...) ``repeats`` times and
medians are reported, so a load change on a shared machine hits both.

Per-step breakdown, seconds per step measured inside the loop: ``data`` (waiting for the next
batch: fetch + collate, or the workers' queue), ``compute`` (forward, loss, backward, step),
``signals`` (gekodata: classification_signals minus nothing, it replaces the loss), ``report``
and ``epoch`` (``set_epoch``: fold of the epoch's reports and the plan, amortised per step).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from gekodata import PruningDataset, WeightedBucketSampler
from gekodata.signals import classification_signals

FEATURES, CLASSES, HIDDEN = 64, 10, 128
PARTS = ("data", "compute", "signals", "report", "epoch")


def make_data(n: int, seed: int = 0) -> tuple:
    """Features float32 [n, 64] and labels int64 [n] from a noisy random linear teacher."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=gen)
    teacher = torch.randn(FEATURES, CLASSES, generator=gen)
    y = (x @ teacher + 2.0 * torch.randn(n, CLASSES, generator=gen)).argmax(dim=1)
    return x, y


def make_dataset(kind: str, x: torch.Tensor, y: torch.Tensor) -> Any:
    if kind == "tensor":
        return TensorDataset(x, y)
    if kind == "hf":
        import datasets

        datasets.disable_progress_bars()
        return datasets.Dataset.from_dict({"x": x.numpy(), "y": y.numpy()}).with_format("torch")
    raise ValueError(kind)


def unpack(batch: Any) -> tuple:
    """(x, y, idx or None) from a batch of either dataset kind, plain or wrapped."""
    if isinstance(batch, dict):
        return batch["x"], batch["y"], batch.get("idx")
    return batch[0], batch[1], batch[2] if len(batch) > 2 else None


def run_arm(arm: str, ds: Any, batch: int, workers: int, epochs: int, seed: int) -> dict[str, Any]:
    """One run of ``epochs`` epochs; seconds per part, steps and sample passes trained."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sampler: WeightedBucketSampler | None = None
    kwargs: dict[str, Any] = {
        "batch_size": batch,
        "num_workers": workers,
        "persistent_workers": workers > 0,
    }
    if arm == "gekodata":
        ds = PruningDataset(ds)
        sampler = WeightedBucketSampler(ds, num_epochs=epochs, seed=seed)
        loader = DataLoader(ds, sampler=sampler, **kwargs)
    else:
        loader = DataLoader(
            ds, shuffle=True, generator=torch.Generator().manual_seed(seed), **kwargs
        )
    spent = dict.fromkeys(PARTS, 0.0)
    steps = passes = 0
    clock = time.perf_counter
    start = clock()
    for epoch in range(epochs):
        t = clock()
        if sampler is not None:
            sampler.set_epoch(epoch)
        it = iter(loader)
        spent["epoch"] += clock() - t
        while True:
            t0 = clock()
            try:
                b = next(it)
            except StopIteration:
                break
            x, y, idx = unpack(b)
            t1 = clock()
            logits = model(x)
            t2 = clock()
            if sampler is None:
                loss = F.cross_entropy(logits, y)
                t3 = clock()
            else:
                per_sample, conf, correct = classification_signals(logits, y)
                t3 = clock()
                loss = per_sample.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t4 = clock()
            if sampler is not None:
                sampler.report(per_sample, conf, correct, idx)
            t5 = clock()
            spent["data"] += t1 - t0
            spent["compute"] += (t2 - t1) + (t4 - t3) + ((t3 - t2) if sampler is None else 0.0)
            spent["signals"] += (t3 - t2) if sampler is not None else 0.0
            spent["report"] += t5 - t4
            steps += 1
            passes += len(y)
    t = clock()
    if sampler is not None:
        sampler.flush()  # the last epoch's fold, as a real run's final checkpoint would do
    spent["epoch"] += clock() - t
    total = clock() - start
    return {"arm": arm, "seconds": total, "steps": steps, "passes": passes, "spent": spent}


def measure(
    kind: str, n: int, batch: int, workers: int, epochs: int, repeats: int
) -> dict[str, Any]:
    """Alternating plain/gekodata runs of one configuration; medians of per-pass and per-step costs."""
    x, y = make_data(n)
    ds = make_dataset(kind, x, y)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "gekodata": []}
    for r in range(
        repeats + 1
    ):  # run 0 warms both arms up (first-touch, worker start) and is dropped
        for arm in ("plain", "gekodata"):
            result = run_arm(arm, ds, batch, workers, epochs, seed=r)
            if r:
                runs[arm].append(result)

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "s_per_pass": statistics.median(r["seconds"] / r["passes"] for r in rs),
            "us_per_step": {
                p: statistics.median(r["spent"][p] / r["steps"] for r in rs) * 1e6 for p in PARTS
            },
            "passes": statistics.median(r["passes"] for r in rs),
            "steps": statistics.median(r["steps"] for r in rs),
            "seconds": [r["seconds"] for r in rs],
        }

    plain, geko = summary(runs["plain"]), summary(runs["gekodata"])
    return {
        "dataset": kind,
        "N": n,
        "batch": batch,
        "workers": workers,
        "epochs": epochs,
        "repeats": repeats,
        "plain": plain,
        "gekodata": geko,
        "ratio_per_pass": geko["s_per_pass"] / plain["s_per_pass"],
    }


def print_rows(rows: list[dict[str, Any]], goal_pct: float) -> None:
    head = (
        f"{'dataset':<8}{'batch':>6}{'wk':>4}{'plain us/pass':>15}{'geko us/pass':>14}{'ratio':>8}   "
        + " ".join(f"{p:>8}" for p in PARTS)
        + "   (gekodata us/step; plain data/compute)"
    )
    print(head + "\n" + "-" * len(head))
    for r in rows:
        g, p = r["gekodata"]["us_per_step"], r["plain"]["us_per_step"]
        print(
            f"{r['dataset']:<8}{r['batch']:>6}{r['workers']:>4}{r['plain']['s_per_pass'] * 1e6:15.2f}"
            f"{r['gekodata']['s_per_pass'] * 1e6:14.2f}{r['ratio_per_pass']:8.3f}   "
            + " ".join(f"{g[q]:8.1f}" for q in PARTS)
            + f"   ({p['data']:.1f}/{p['compute']:.1f})"
        )
    for r in rows:
        ok = r["ratio_per_pass"] <= 1 + goal_pct / 100
        print(
            f"{'PASS' if ok else 'MISS'}  {r['dataset']} batch {r['batch']} workers {r['workers']}: "
            f"{(r['ratio_per_pass'] - 1) * 100:+.1f}% wall-clock per trained pass (goal <= +{goal_pct:g}%)"
        )


def plot_rows(rows: list[dict[str, Any]], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4.0))
    labels = [f"{r['dataset']}\nb{r['batch']} w{r['workers']}" for r in rows]
    pos = np.arange(len(rows))
    for offset, arm, color in ((-0.2, "plain", "C0"), (0.2, "gekodata", "C3")):
        bottom = np.zeros(len(rows))
        for k, part in enumerate(PARTS):
            per_pass = np.array([r[arm]["us_per_step"][part] / r["batch"] for r in rows])
            ax.bar(
                pos + offset,
                per_pass,
                0.38,
                bottom=bottom,
                color=color,
                alpha=1.0 - 0.17 * k,
                label=f"{arm}: {part}"
                if arm == "gekodata" or part in ("data", "compute")
                else None,
            )
            bottom += per_pass
    ax.set_xticks(pos, labels, fontsize=8)
    ax.set_ylabel("microseconds per sample pass (from per-step parts)")
    ax.set_title("tiny MLP: plain DataLoader (left) vs gekodata (right)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
