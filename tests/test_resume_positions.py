"""Resume from every position a loop can checkpoint at, through torchdata's StatefulDataLoader.

A small loop (3 epochs, shrinking plans, pruning) checkpoints at one position per run —
before the first epoch, right after each ``set_epoch``, right after ``iter(loader)``, after every
batch, at each epoch end — with ``loader.state_dict()`` and ``sampler.save``. The run then
continues uninterrupted (the reference: the save is a sync point, so both runs fold the same
windows), and a fresh process-like copy (new dataset, sampler and loader) restores the checkpoint
and runs to the end. The resumed index stream must equal the rest of the reference stream and the
final stores must be bitwise equal — at every position, with 0 and 2 loader workers.
"""

import numpy as np
import pytest
import torch

from gekodata import PruningDataset, WeightedBucketSampler

pytest.importorskip("torchdata")
from torchdata.stateful_dataloader import StatefulDataLoader

N, EPOCHS, BATCH = 40, 3, 8


def loss_of(idx: torch.Tensor, epoch: int) -> torch.Tensor:
    """Deterministic per-sample losses: a third of the samples are learnt at once (and freeze,
    then prune), the rest improve slowly."""
    base = ((idx * 7919) % 13).float() / 6.0
    return torch.where(idx % 3 == 0, torch.full_like(base, 1e-3), base * 0.7**epoch)


def build(workers: int):
    ds = PruningDataset([{"x": float(i)} for i in range(N)], prune_frozen_after=1)
    sampler = WeightedBucketSampler(ds, num_epochs=EPOCHS, seed=3)
    loader = StatefulDataLoader(
        ds,
        batch_size=BATCH,
        sampler=sampler,
        num_workers=workers,
        multiprocessing_context="fork" if workers else None,
    )
    return sampler, loader


def run(sampler, loader, start_epoch=0, hook=None):
    """The user's loop; ``hook(kind, epoch, stream)`` is called at every checkpointable position."""
    stream = []
    hook = hook or (lambda *a: None)
    if start_epoch == 0:
        hook("before_epochs", -1, stream)
    for epoch in range(start_epoch, EPOCHS):
        sampler.set_epoch(epoch)
        hook("after_set_epoch", epoch, stream)
        it = iter(loader)
        hook("after_iter", epoch, stream)
        for batch in it:
            stream.append(batch["idx"].tolist())
            sampler.report(loss_of(batch["idx"], epoch), idx=batch["idx"])
            hook("batch", epoch, stream)
        hook("epoch_end", epoch, stream)
    sampler.flush()
    return stream


def positions(workers):
    """Every checkpointable position of the loop, counted on a run that takes no checkpoint."""
    seen = []
    sampler, loader = build(workers)
    run(sampler, loader, hook=lambda kind, epoch, stream: seen.append((kind, epoch)))
    return seen


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_every_position_gives_the_same_stream_and_store(tmp_path, workers):
    all_positions = positions(workers)
    kinds = {kind for kind, _ in all_positions}
    assert kinds == {"before_epochs", "after_set_epoch", "after_iter", "batch", "epoch_end"}
    assert len(all_positions) >= 18
    for target, (kind, epoch) in enumerate(all_positions):
        path = tmp_path / f"s{target}.safetensors"
        taken = {}
        counter = iter(range(10**6))

        def hook(k, e, stream, target=target, path=path, taken=taken):
            if next(counter) == target:
                taken.update(loader=loader.state_dict(), done=len(stream))
                sampler.save(path)

        sampler, loader = build(workers)
        reference = run(sampler, loader, hook=hook)
        # a new process would rebuild everything and restore the checkpoint
        resumed_sampler, resumed_loader = build(workers)
        resumed_sampler.load(path)
        resumed_loader.load_state_dict(taken["loader"])
        start = epoch + 1 if kind == "epoch_end" else max(epoch, 0)
        resumed = run(resumed_sampler, resumed_loader, start_epoch=start)
        where = f"checkpoint at {kind} of epoch {epoch} (position {target}, workers={workers})"
        assert resumed == reference[taken["done"] :], where
        for name, column in sampler.store.columns.items():
            np.testing.assert_array_equal(
                resumed_sampler.store.columns[name], column, err_msg=f"{name}: {where}"
            )
        mine, theirs = resumed_sampler.efficiency_report(), sampler.efficiency_report()
        assert (mine.planned_passes, mine.trained_passes) == (
            theirs.planned_passes,
            theirs.trained_passes,
        ), where


def test_state_dict_after_set_epoch_starts_the_new_epoch():
    sampler, _ = build(0)
    sampler.report(
        torch.full((N,), 1e-3), idx=torch.arange(N)
    )  # everything mastered: epoch 1 shrinks
    assert len(list(sampler)) == N
    assert sampler.state_dict()["yielded"] == N
    sampler.set_epoch(1)
    state = sampler.state_dict()
    assert state["epoch"] == 1 and state["yielded"] == 0  # not the previous epoch's position
    it = iter(sampler)
    assert sampler.state_dict()["yielded"] == 0  # iter() alone yields nothing
    first = next(it, None)
    assert sampler.state_dict()["yielded"] == (0 if first is None else 1)


def test_stale_position_of_an_unfinished_earlier_epoch_is_refused():
    sampler, _ = build(0)
    it = iter(sampler)
    [next(it) for _ in range(5)]
    mid = sampler.state_dict()
    sampler.set_epoch(1)
    with pytest.raises(ValueError, match="mid-way through epoch 0"):
        sampler.load_state_dict(mid)
