"""accelerate's prepared loader calls ``set_epoch(iteration)`` on the sampler itself at every
``iter()``. Set the epoch on the prepared loader (``loader.set_epoch(epoch)``); a loop resumed at
epoch k that sets it on the sampler alone would have accelerate plan epoch 0 again: that is
refused loudly instead of training the wrong plans."""
import numpy as np
import pytest

pytest.importorskip("accelerate")
from accelerate import Accelerator  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from gekodata import PruningDataset, WeightedBucketSampler  # noqa: E402


def prepared(num_epochs=3):
    ds = PruningDataset(list(range(16)))
    sampler = WeightedBucketSampler(ds, num_epochs=num_epochs, seed=0, shard=False)
    loader = Accelerator(cpu=True).prepare(DataLoader(ds, batch_size=4, sampler=sampler))
    return sampler, loader


def test_loader_set_epoch_resumed_at_epoch_1_trains_epochs_1_and_2():
    sampler, loader = prepared()
    sampler.report(np.full(16, 0.01), None, None, np.arange(16))
    planned = []
    for epoch in range(1, 3):  # a run resumed at epoch 1
        loader.set_epoch(epoch)
        for _, idx in loader:  # int items come back as (item, idx)
            sampler.report(np.full(len(idx), 0.01), None, None, idx)
        planned.append(sampler.epoch)
    assert planned == [1, 2]
    assert [r.epoch for r in sampler.efficiency_report().epochs] == [0, 1, 2]


def test_sampler_set_epoch_alone_is_refused_when_accelerate_would_go_back():
    sampler, loader = prepared()
    sampler.report(np.full(16, 0.01), None, None, np.arange(16))
    sampler.set_epoch(1)
    with pytest.raises(ValueError, match=r"loader.set_epoch\(epoch\)"):
        for _ in loader:  # accelerate calls sampler.set_epoch(0) here
            pass
