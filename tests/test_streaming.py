"""Selection on streams: keep decisions are a pure function of (seed, epoch, id), so worker
counts, rank splits and resume points do not change which examples are kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from gekodata import BucketPolicy, WeightPolicy
from gekodata.streaming import SelectedStream, StreamSelector, epoch_key, uniform, uniform_one

N = 240


class RangeSource(IterableDataset):
    """N dict examples in order; no sharding of its own (the wrapper splits positions)."""

    def __iter__(self):
        for i in range(N):
            yield {"x": torch.tensor([float(i)]), "y": i % 3}


def _selector(**kwargs) -> StreamSelector:
    """A selector at epoch 1 whose keep table depends on reports (losses a function of id)."""
    kwargs.setdefault("policy", BucketPolicy())  # GEKO's FREEZE: a skipped id's keep rate is 0
    selector = StreamSelector(N, num_epochs=4, seed=7, **kwargs)
    idx = torch.arange(N)
    loss = (idx % 5).float() * 0.4
    selector.report(loss, None, None, idx)
    selector.set_epoch(1)
    return selector


def _kept(loader) -> list[tuple[int, float]]:
    rows = []
    for batch in loader:
        rows += list(zip(batch["idx"].tolist(), batch["weight"].tolist()))
    return rows


def test_uniform_vectorized_equals_per_example():
    key = epoch_key(3, 2)
    ids = np.arange(-5, 5000)
    u = uniform(key, ids)
    assert all(uniform_one(key, int(i)) == u[j] for j, i in enumerate(ids))
    assert u.min() >= 0.0 and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.02
    assert not np.array_equal(u, uniform(epoch_key(3, 3), ids))


def test_reports_change_the_keep_table():
    selector = _selector(unbiased=True)
    keep = selector.keep_probability
    assert 0 < selector.expected_kept < N and keep.min() < 1.0
    rows = _kept(DataLoader(selector.wrap(RangeSource()), batch_size=32))
    ids = np.array([i for i, _ in rows])
    assert np.all(keep[ids] > 0)
    assert np.allclose([w for _, w in rows], 1.0 / keep[ids])


@pytest.mark.parametrize("id_key", [None, "id"])
def test_same_examples_for_any_worker_count(id_key):
    selector = _selector(budget=0.5)
    if id_key is None:
        source = RangeSource()
    else:
        from datasets import Dataset

        data = {"id": list(range(N)), "x": [[float(i)] for i in range(N)]}
        source = Dataset.from_dict(data).to_iterable_dataset(num_shards=4)
    stream = SelectedStream(source, selector, id_key=id_key)
    one = _kept(DataLoader(stream, batch_size=16, num_workers=0))
    two = _kept(DataLoader(stream, batch_size=16, num_workers=2))
    assert sorted(one) == sorted(two)
    assert len({i for i, _ in one}) == len(one)  # each example at most once
    assert abs(len(one) - N * 0.5) < 40


def test_two_ranks_split_by_node_keep_the_same_union():
    from datasets import Dataset
    from datasets.distributed import split_dataset_by_node

    selector = _selector(budget=0.6)
    base = Dataset.from_dict({"id": list(range(N)), "v": list(range(N))})
    whole = _kept(DataLoader(selector.wrap(base.to_iterable_dataset(num_shards=4), "id"), 8))
    parts = []
    for rank in range(2):
        shard = split_dataset_by_node(base.to_iterable_dataset(num_shards=4), rank, 2)
        parts.append(_kept(DataLoader(selector.wrap(shard, "id"), batch_size=8)))
    assert not {i for i, _ in parts[0]} & {i for i, _ in parts[1]}
    assert sorted(parts[0] + parts[1]) == sorted(whole)


def test_position_mode_ranks_split_the_source():
    selector = _selector()
    whole = _kept(DataLoader(SelectedStream(RangeSource(), selector), batch_size=8))
    parts = [
        _kept(
            DataLoader(
                SelectedStream(RangeSource(), selector, rank=r, world_size=2),
                batch_size=8,
                num_workers=w,
            )
        )
        for r, w in ((0, 2), (1, 2))  # every rank the same worker count
    ]
    assert sorted(parts[0] + parts[1]) == sorted(whole)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_epoch_is_exact(tmp_path, num_workers):
    from datasets import Dataset
    from torchdata.stateful_dataloader import StatefulDataLoader

    base = Dataset.from_dict({"id": list(range(N)), "v": list(range(N))})

    def build():
        selector = StreamSelector(N, num_epochs=4, seed=3, budget=0.5)
        stream = selector.wrap(base.to_iterable_dataset(num_shards=4), "id")
        loader = StatefulDataLoader(stream, batch_size=8, num_workers=num_workers)
        return selector, loader

    def run_epoch(selector, loader, stop=None):
        rows, state = [], None
        for step, batch in enumerate(loader):
            rows += batch["idx"].tolist()
            selector.report(batch["idx"].float() % 3, None, None, batch["idx"])
            if stop is not None and step + 1 == stop:
                state = loader.state_dict()
                selector.save(tmp_path / "selector.safetensors")
                break
        return rows, state

    selector, loader = build()
    full = []
    for epoch in range(2):
        selector.set_epoch(epoch)
        full.append(run_epoch(selector, loader)[0])

    selector, loader = build()
    selector.set_epoch(0)
    first = run_epoch(selector, loader)[0]
    selector.set_epoch(1)
    head, state = run_epoch(selector, loader, stop=3)
    selector, loader = build()  # a new process's objects
    selector.load(tmp_path / "selector.safetensors")
    loader.load_state_dict(state)
    selector.set_epoch(1)
    tail = run_epoch(selector, loader)[0]
    assert first == full[0]
    assert head + tail == full[1]
    assert selector.pending_reports == len(full[1])


def test_torchdata_nodes_source():
    from torchdata.nodes import IterableWrapper, Loader

    selector = _selector(budget=0.5)
    items = [{"id": i} for i in range(N)]
    via_nodes = _kept(DataLoader(selector.wrap(Loader(IterableWrapper(items)), "id"), 16))
    via_list = _kept(DataLoader(selector.wrap(items, "id"), 16))
    assert via_nodes == via_list


def test_user_weights_on_a_stream():
    w = np.zeros(N)
    w[:60] = 1.0
    selector = StreamSelector(N, WeightPolicy(w), num_epochs=1, seed=0, budget=30)
    kept = [i for i, _ in _kept(DataLoader(selector.wrap(RangeSource()), batch_size=64))]
    assert set(kept) <= set(range(60)) and abs(len(kept) - 30) < 15


def test_save_load_round_trip(tmp_path):
    selector = _selector(unbiased=True)
    selector.report(torch.ones(3), None, None, torch.tensor([1, 2, 3]))
    selector.save(tmp_path / "s.safetensors")
    other = StreamSelector(N, num_epochs=4, seed=7, unbiased=True)
    other.load(tmp_path / "s.safetensors")
    assert other.epoch == 1 and other.pending_reports == 3
    assert np.array_equal(other.keep_probability, selector.keep_probability)
    with pytest.raises(ValueError, match="saved with seed 7, this selector has 8"):
        StreamSelector(N, num_epochs=4, seed=8).load(tmp_path / "s.safetensors")


def test_bad_ids_named():
    selector = StreamSelector(10, num_epochs=1)
    with pytest.raises(ValueError, match=r"sample id 10 is outside \[0, 10\)"):
        list(selector.wrap([{"id": 10}], "id"))
    with pytest.raises(KeyError, match="item has no 'id' column"):
        list(selector.wrap([{"x": 1}], "id"))
    with pytest.raises(TypeError, match="needs Mapping items"):
        list(selector.wrap([(1, 2)], "id"))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_position_mode_replays_a_stateless_source(num_workers):
    from torchdata.stateful_dataloader import StatefulDataLoader

    selector = _selector(budget=0.5)

    def loader():
        return StatefulDataLoader(
            SelectedStream(RangeSource(), selector), batch_size=8, num_workers=num_workers
        )

    full = [i for b in loader() for i in b["idx"].tolist()]
    first = loader()
    head, state = [], None
    for step, batch in enumerate(first):
        head += batch["idx"].tolist()
        if step == 4:
            state = first.state_dict()
            break
    second = loader()
    second.load_state_dict(state)
    tail = [i for b in second for i in b["idx"].tolist()]
    assert head + tail == full


def test_two_gloo_ranks_share_store_and_keep_table(tmp_path):
    """torchrun, 2 ranks, HF streaming split by node: after each epoch's reports are gathered,
    both ranks hold the same store and keep table, and their kept sets partition what one
    process keeps from the same reports."""
    import json
    import os
    import sys
    from pathlib import Path

    from support.torchrun_util import run_torchrun

    here = Path(__file__).resolve().parent
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(here / "support" / "streaming_distributed_run.py"),
        "--out",
        str(tmp_path),
    ]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(here.parent), str(here)])
    )
    proc = run_torchrun(cmd, env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["store"] == ranks[1]["store"] and ranks[0]["keep"] == ranks[1]["keep"]

    # one process fed the same reports keeps the union, epoch by epoch
    selector = StreamSelector(N, num_epochs=3, seed=5, budget=0.6)
    for epoch in range(3):
        selector.set_epoch(epoch)
        union = sorted(ranks[0]["kept"][epoch] + ranks[1]["kept"][epoch])
        assert not set(ranks[0]["kept"][epoch]) & set(ranks[1]["kept"][epoch])
        ids = sorted(i for i, _ in _kept(DataLoader(selector.wrap(list_items(), "id"), 16)))
        assert ids == union
        idx = torch.tensor(union)
        selector.report((idx % 7).float() * 0.3, None, None, idx)
    other = StreamSelector(N, num_epochs=3, seed=5, budget=0.6)
    other.load(tmp_path / "selector.safetensors")
    assert other.pending_reports == len(ranks[0]["kept"][2]) + len(ranks[1]["kept"][2])


def list_items():
    return [{"id": i} for i in range(N)]
