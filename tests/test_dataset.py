import pickle
import re
import types
from collections import UserDict, namedtuple
from collections.abc import MutableMapping

import numpy as np
import pytest
import torch
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)
from transformers import BatchEncoding

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler
from gekodata.dataset import MAX_PRUNE_FROZEN_AFTER

Point = namedtuple("Point", "x y")  # module level: items cross worker processes by pickle


class Row(dict):
    """A dict subclass item type."""


class SharedCopyMapping(MutableMapping):
    """A MutableMapping whose copy.copy shares its storage (no __copy__)."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self._data[key] = value

    def __delitem__(self, key):
        del self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class Stream(IterableDataset):
    """An IterableDataset that also has __len__."""

    def __iter__(self):
        return iter(range(4))

    def __len__(self):
        return 4


def pruned_first_half(n: int = 10) -> tuple[PruningDataset, WeightedBucketSampler]:
    """PruningDataset over n scalar tensors, and a sampler whose store has samples 0 .. n/2-1
    pruned."""
    ds = PruningDataset(TensorDataset(torch.arange(float(n))))
    sampler = WeightedBucketSampler(ds, num_epochs=1)
    sampler.store.set_pruned(np.arange(n // 2))
    return ds, sampler


def test_item_shapes_gain_the_index():
    dict_ds = PruningDataset([{"x": torch.tensor([1.0]), "y": 3}] * 4)
    assert dict_ds[2]["idx"] == 2 and dict_ds[2]["y"] == 3
    tuple_ds = PruningDataset(TensorDataset(torch.arange(5.0), torch.arange(5)))
    x, y, idx = tuple_ds[4]
    assert idx == 4 and y == 4
    plain_ds = PruningDataset(["a", "b"])
    assert plain_ds[1] == ("b", 1)


def test_custom_keys_and_collision():
    ds = PruningDataset([{"idx": 7}], index_key="row")
    assert ds[0] == {"idx": 7, "row": 0}
    with pytest.raises(ValueError, match="already has a key 'idx'"):
        PruningDataset([{"idx": 7}])[0]
    with pytest.raises(ValueError, match="index_key and weight_key must differ"):
        PruningDataset([1], index_key="k", weight_key="k")


def test_bad_arguments():
    with pytest.raises(TypeError, match="map-style"):
        PruningDataset(iter([1, 2]))
    with pytest.raises(
        ValueError, match=re.escape("prune_frozen_after must be >= 1 or None, got 0")
    ):
        PruningDataset([1], prune_frozen_after=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        PruningDataset([1]).set_loss_weights([1.0])
    with pytest.raises(ValueError, match=r"float32 \[1\]"):
        PruningDataset([1]).set_loss_weights(torch.ones(2))


def test_index_survives_default_collate():
    ds = PruningDataset([{"x": torch.full((2,), float(i)), "y": i % 2} for i in range(10)])
    sampler = WeightedBucketSampler(ds, num_epochs=1, seed=3)
    batches = list(DataLoader(ds, batch_size=4, sampler=sampler))
    idx = torch.cat([b["idx"] for b in batches])
    assert idx.dtype == torch.int64
    assert sorted(idx.tolist()) == list(range(10))
    for b in batches:
        assert torch.equal(b["x"][:, 0].long(), b["idx"])


def test_unbiased_weight_is_delivered_with_items():
    ds = PruningDataset(TensorDataset(torch.arange(6.0)))
    sampler = WeightedBucketSampler(ds, num_epochs=2, unbiased=True)
    x, idx, weight = ds[3]
    assert idx == 3 and weight == pytest.approx(1.0)  # epoch 0: uniform, weight 1
    batch = next(iter(DataLoader(ds, batch_size=6, sampler=sampler)))
    assert batch[2].dtype == torch.float64 and torch.allclose(
        batch[2], torch.ones(6, dtype=torch.float64)
    )


def test_pickles_without_the_store():
    ds = PruningDataset(list(range(100)), prune_frozen_after=1)
    sampler = WeightedBucketSampler(ds, BucketPolicy(), num_epochs=3)  # one-visit freeze
    sampler.report(np.full(100, 1e-4), None, None, np.arange(100))
    sampler.report(np.full(5, 3.0), None, None, np.arange(5))
    sampler.set_epoch(1)
    assert sampler.num_live == 5 and len(ds) == 100
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone) == 100 and clone[42] == (42, 42) and clone.prune_frozen_after == 1
    assert not any(isinstance(v, WeightedBucketSampler) for v in vars(clone).values())


def test_persistent_spawn_workers_see_each_epochs_unbiased_weights():
    """Loss weights live in shared memory: persistent workers read the current epoch's values."""
    n = 64
    ds = PruningDataset(TensorDataset(torch.arange(float(n))))
    sampler = WeightedBucketSampler(
        ds, BucketPolicy(), num_epochs=3, unbiased=True, unbiased_floor=0.5, seed=1
    )
    loader = DataLoader(
        ds,
        batch_size=16,
        sampler=sampler,
        num_workers=2,
        multiprocessing_context="spawn",
        persistent_workers=True,
    )
    losses = np.where(np.arange(n) < 32, 1e-4, 3.0)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for _, idx, weight in loader:
            expected = sampler.loss_weights(idx).double()
            assert torch.allclose(weight, expected), (epoch, weight, expected)
            sampler.report(torch.from_numpy(losses[idx.numpy()]), None, None, idx)
    # epoch 1 planned the mastered half at the floor: their weights are > 1, the rest < 1
    weights = sampler.loss_weights(np.arange(n))
    assert (weights[:32] > 1).all() and (weights[32:] < 1).all()


# ---------------------------------------------------------------- len() is the index range
def test_len_is_the_index_range_and_num_live_counts_unpruned_samples():
    ds, sampler = pruned_first_half(10)
    assert len(ds) == ds.num_samples == 10
    assert sampler.num_live == 5
    np.testing.assert_array_equal(sampler.pruned_indices, np.arange(5))
    assert sampler.unprune([0, 1, 7]) == 2 and sampler.num_live == 7 and len(ds) == 10
    assert WeightedBucketSampler(PruningDataset(list(range(3))), num_epochs=1).num_live == 3


def test_torch_samplers_and_loaders_draw_the_full_index_range_after_pruning():
    """Without gekodata's sampler, torch draws from range(len(ds)): pruned samples included."""
    ds, _ = pruned_first_half(10)
    everything = list(range(10))
    assert sorted(RandomSampler(ds, generator=torch.Generator().manual_seed(0))) == everything
    assert list(SequentialSampler(ds)) == everything
    assert (
        sorted(
            [
                *DistributedSampler(ds, num_replicas=2, rank=0, shuffle=False),
                *DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False),
            ]
        )
        == everything
    )
    for shuffle in (False, True):
        loader = DataLoader(
            ds, batch_size=3, shuffle=shuffle, generator=torch.Generator().manual_seed(0)
        )
        drawn = torch.cat([idx for _, idx in loader])
        assert sorted(drawn.tolist()) == everything


# ---------------------------------------------------------------- item types
def test_namedtuple_items_keep_their_type():
    ds = PruningDataset([Point(torch.full((2,), float(i)), i) for i in range(8)])
    item, idx = ds[3]
    assert type(item) is Point and item.y == 3 and idx == 3
    points, idx = next(iter(DataLoader(ds, batch_size=4)))
    assert type(points) is Point and points.x.shape == (4, 2)
    assert torch.equal(points.y, torch.arange(4)) and torch.equal(idx, torch.arange(4))


def test_namedtuple_items_carry_the_unbiased_weight_third():
    ds = PruningDataset([Point(float(i), i) for i in range(6)])
    WeightedBucketSampler(ds, num_epochs=2, unbiased=True)
    item, idx, weight = ds[5]
    assert type(item) is Point and idx == 5 and weight == pytest.approx(1.0)


@pytest.mark.parametrize(
    "make", [BatchEncoding, UserDict, Row], ids=["BatchEncoding", "UserDict", "dict_subclass"]
)
def test_mutable_mapping_items_keep_their_type_and_the_source_is_untouched(make):
    source = [make({"input_ids": torch.tensor([i, i + 1])}) for i in range(6)]
    ds = PruningDataset(source)
    item = ds[2]
    assert type(item) is make and item is not source[2]
    assert item["idx"] == 2 and torch.equal(item["input_ids"], torch.tensor([2, 3]))
    assert "idx" not in source[2] and set(source[2]) == {"input_ids"}
    assert ds[2]["idx"] == 2  # read again: no "already has a key" from a mutated source
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert type(batch) is make and torch.equal(batch["idx"], torch.arange(3))
    assert batch["input_ids"].shape == (3, 2)
    WeightedBucketSampler(ds, num_epochs=2, unbiased=True)
    weighted = ds[4]
    assert (
        type(weighted) is make
        and weighted["weight"] == pytest.approx(1.0)
        and "weight" not in source[4]
    )


def test_immutable_mapping_items_become_dicts():
    ds = PruningDataset([types.MappingProxyType({"x": i}) for i in range(3)])
    assert ds[1] == {"x": 1, "idx": 1} and type(ds[1]) is dict


def test_mutable_mapping_whose_copy_shares_storage_is_refused_and_left_intact():
    source = [SharedCopyMapping({"x": i}) for i in range(3)]
    with pytest.raises(TypeError, match="SharedCopyMapping"):
        PruningDataset(source)[1]
    assert dict(source[1]) == {"x": 1}


def test_list_items_stay_lists_and_plain_tuples_are_flattened():
    ds = PruningDataset([[i, 2 * i] for i in range(4)])
    assert ds[3] == [3, 6, 3] and type(ds[3]) is list
    assert PruningDataset([(1, 2)])[0] == (1, 2, 0)


def test_other_items_become_item_index_pairs_that_collate_to_a_list():
    ds = PruningDataset([torch.full((3,), float(i)) for i in range(5)])
    x, idx = ds[4]
    assert torch.equal(x, torch.full((3,), 4.0)) and idx == 4
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert isinstance(batch, list) and len(batch) == 2
    x, idx = batch
    assert x.shape == (5, 3) and torch.equal(idx, torch.arange(5))


def test_item_types_survive_worker_processes():
    """Items are pickled back from num_workers=2 (fork) workers and collated: types kept."""
    named = PruningDataset([Point(torch.tensor([float(i)]), i) for i in range(8)])
    mapped = PruningDataset([BatchEncoding({"input_ids": torch.tensor([i])}) for i in range(8)])
    for ds in (named, mapped):
        loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")
        batches = list(loader)
        if ds is named:
            assert all(type(b[0]) is Point for b in batches)
            idx = torch.cat([b[1] for b in batches])
        else:
            assert all(type(b) is BatchEncoding for b in batches)
            idx = torch.cat([b["idx"] for b in batches])
        assert idx.tolist() == list(range(8))


# ---------------------------------------------------------------- construction checks
def test_iterable_datasets_are_refused_at_construction():
    with pytest.raises(TypeError, match="Stream is an IterableDataset"):
        PruningDataset(Stream())


def test_prune_frozen_after_is_capped_by_the_frozen_streak_range():
    assert np.iinfo(np.uint8).max == MAX_PRUNE_FROZEN_AFTER
    assert PruningDataset([1], prune_frozen_after=MAX_PRUNE_FROZEN_AFTER).prune_frozen_after == 255
    with pytest.raises(ValueError, match="255"):
        PruningDataset([1], prune_frozen_after=MAX_PRUNE_FROZEN_AFTER + 1)


# ---------------------------------------------------------------- batched fetching
class CountingBatched:
    """A map-style dataset with its own ``__getitems__``, counting how it is called."""

    def __init__(self, n):
        self.n, self.single, self.batched = n, 0, 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.single += 1
        return {"x": torch.tensor([float(i)])}

    def __getitems__(self, keys):
        self.batched += 1
        return [{"x": torch.tensor([float(i)])} for i in keys]


ITEM_KINDS = {
    "dict": lambda i: {"x": i},
    "tuple": lambda i: (torch.tensor(i), i % 2),
    "namedtuple": lambda i: Point(i, -i),
    "list": lambda i: [i, i * 2],
    "BatchEncoding": lambda i: BatchEncoding({"input_ids": [i]}),
    "tensor": lambda i: torch.tensor([i]),
}


@pytest.mark.parametrize("unbiased", [False, True], ids=["plain", "weights"])
@pytest.mark.parametrize("kind", sorted(ITEM_KINDS))
def test_getitems_returns_what_getitem_returns_for_every_item_type(kind, unbiased):
    ds = PruningDataset([ITEM_KINDS[kind](i) for i in range(12)])
    sampler = WeightedBucketSampler(ds, num_epochs=3, unbiased=unbiased)
    if unbiased:  # make the weights differ per sample
        sampler.report(np.linspace(0.1, 3.0, 12), None, None, np.arange(12))
        sampler.set_epoch(1)
    keys = [7, 0, 7, 11, np.int64(3)]
    batch = ds.__getitems__(keys)
    single = [ds[int(k)] for k in keys]
    assert [type(b) for b in batch] == [type(s) for s in single]
    assert repr(batch) == repr(single)  # same values, keys, index and weight in the same places


def test_the_wrapped_datasets_getitems_is_used_by_the_dataloader():
    inner = CountingBatched(10)
    ds = PruningDataset(inner)
    batches = list(DataLoader(ds, batch_size=4))
    assert inner.batched == 3 and inner.single == 0
    assert torch.cat([b["idx"] for b in batches]).tolist() == list(range(10))
    assert torch.cat([b["x"] for b in batches]).flatten().tolist() == [float(i) for i in range(10)]


def test_a_getitems_returning_the_wrong_count_is_refused():
    class Short(CountingBatched):
        def __getitems__(self, keys):
            return super().__getitems__(keys)[:-1]

    with pytest.raises(ValueError, match="returned 2 items for 3 indices"):
        PruningDataset(Short(5)).__getitems__([0, 1, 2])


def test_huggingface_datasets_fetch_batched_and_keep_the_index():
    hf = pytest.importorskip("datasets")
    table = hf.Dataset.from_dict(
        {"x": list(range(20)), "label": [i % 3 for i in range(20)]}
    ).with_format("torch")
    ds = PruningDataset(table)
    sampler = WeightedBucketSampler(ds, num_epochs=2, unbiased=True)
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=8, sampler=sampler, num_workers=workers)
        batches = list(loader)
        idx = torch.cat([b["idx"] for b in batches])
        assert sorted(idx.tolist()) == list(range(20))
        assert torch.equal(torch.cat([b["x"] for b in batches]), idx)  # each row with its own index
        assert all(b["weight"].dtype == torch.float64 for b in batches)
