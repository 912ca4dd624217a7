"""A bad call never costs accepted data; after any exception epoch, plan and store agree."""

import numpy as np
import pytest
import torch
import torch.distributed as dist

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler
from gekodata.sampler.report_buffer import ReportBuffer
from gekodata.store.state_store import GEKOStateStore


def make(n=20, **kw):
    return WeightedBucketSampler(PruningDataset(list(range(n))), num_epochs=3, seed=0, **kw)


def columns(sampler):
    return {k: v.copy() for k, v in sampler.store.columns.items()}


@pytest.mark.parametrize(
    "loss", [[1e39, 1.0], [-1e39, 1.0], [np.nan, 1.0], [np.inf, 1.0], [-0.5, 1.0]]
)
def test_values_that_do_not_survive_float32_are_refused_at_the_call(loss):
    sampler = make()
    sampler.report(
        np.array([0.5, 0.7]), idx=np.array([2, 3])
    )  # an accepted call in the same window
    with pytest.raises(ValueError, match="loss"):
        sampler.report(np.array(loss, dtype=np.float64), idx=np.array([0, 1]))
    assert sampler.pending_reports == 2
    sampler.set_epoch(1)  # the window folds: the accepted call is kept, the refused one never was
    assert sampler.epoch == 1
    assert sampler.store.visits.tolist() == [0, 0, 1, 1] + [0] * 16
    np.testing.assert_allclose(sampler.store.loss[[2, 3]], [0.5, 0.7], rtol=1e-3)


def test_conf_that_rounds_out_of_range_in_float32_is_refused():
    sampler = make()
    with pytest.raises(ValueError, match="conf"):
        sampler.report(
            np.array([0.1]), np.array([1.0 + 1e-6]), idx=np.array([0])
        )  # 1.000001 is > 1 in float32
    sampler.report(
        np.array([0.1]), np.array([1.0 + 1e-9]), idx=np.array([0])
    )  # rounds to exactly 1.0: accepted
    assert sampler.pending_reports == 1


def test_failed_planning_leaves_epoch_and_plan_as_they_were():
    class Flaky(BucketPolicy):
        fail = False

        def classify(self, store):
            if Flaky.fail:
                raise RuntimeError("policy failed")
            return super().classify(store)

    sampler = make(policy=Flaky())
    plan0 = sampler.global_plan.copy()
    sampler.report(np.full(20, 0.3), idx=np.arange(20))
    Flaky.fail = True
    with pytest.raises(RuntimeError, match="policy failed"):
        sampler.set_epoch(1)
    assert sampler.epoch == 0 and np.array_equal(sampler.global_plan, plan0)
    assert (
        sampler.pending_reports == 0 and int(sampler.store.visits.sum()) == 20
    )  # folded, not lost
    assert sampler.state_dict()["epoch"] == 0
    Flaky.fail = False
    sampler.set_epoch(1)
    assert sampler.epoch == 1 and sampler.store.visits.sum() == 20


def test_rows_found_bad_at_a_sync_point_are_dropped_alone_and_counted():
    """Device input is only value-checked when the window is gathered (no per-step host sync);
    run here on CPU tensors through the same deferred path (``defer_checks=True``)."""
    store = GEKOStateStore(10)
    buffer = ReportBuffer(store)
    buffer.add(np.array([0.5, 0.6]), None, None, np.array([0, 1]))
    loss = torch.tensor([0.1, float("nan"), 0.2, 0.3])
    buffer.add(
        loss,
        torch.tensor([0.9, 0.5, 0.8, 1.5]),
        torch.tensor([1.0, 0.0, 1.0, 1.0]),
        torch.tensor([2, 3, 99, 4]),
        defer_checks=True,
    )  # the device path, on CPU tensors
    with pytest.warns(RuntimeWarning, match="dropped 3 reported row"):
        window = buffer.take()
    assert window.idx.tolist() == [0, 1, 2] and buffer.dropped_rows == 3 and buffer.rows == 0
    store.update(window.idx, window.loss, window.conf, window.correct, window.pred)
    assert store.visits.tolist() == [1, 1, 1] + [0] * 7


def test_explicit_rank_layout_without_a_process_group_is_refused():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="drift apart"):
        make(rank=1, world_size=2)
    sampler = make(rank=1, world_size=2, standalone=True)  # the documented single-process mode
    assert len(sampler) == 10 and sampler.plan.tolist() == sampler.global_plan[1::2].tolist()
    make(rank=0, world_size=1)  # the trivial layout needs no group


def test_a_deferred_report_runs_no_compute_op_at_the_call():
    """The device path keeps the call free of kernels: only aliasing ops (detach) run at
    ``report``; conversion and stacking wait for the sync point. Counted on CPU tensors through
    the same path (``defer_checks=True``)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    buffer = ReportBuffer(GEKOStateStore(10))
    loss, conf, correct = torch.rand(4, requires_grad=True), torch.rand(4), torch.rand(4) > 0.5
    idx = torch.tensor([1, 2, 3, 4])
    with Ops() as ops:
        for _ in range(3):
            buffer.add(loss, conf, correct, idx, defer_checks=True)
    assert ops.names and all(name.startswith("aten.detach") for name in ops.names), ops.names
    window = buffer.take()
    assert window.idx.tolist() == [1, 2, 3, 4] * 3
    np.testing.assert_array_equal(window.correct, np.tile(correct.float().numpy(), 3))
