"""CUDA-only checks: reports buffer on the device with no host sync per step.

Skipped without a GPU (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""

import numpy as np
import pytest
import torch

from gekodata import PruningDataset, WeightedBucketSampler
from gekodata.signals import causal_lm_signals, classification_signals

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make(n=256, **kwargs):
    return WeightedBucketSampler(PruningDataset(list(range(n))), num_epochs=3, seed=0, **kwargs)


def test_report_and_signals_never_sync_the_host():
    sampler = make()
    model = torch.nn.Linear(8, 4).cuda()
    lm_logits = torch.randn(4, 6, 32, device="cuda")
    lm_labels = torch.randint(0, 32, (4, 6), device="cuda")
    lm_labels[:, :2] = -100
    plan = torch.tensor(np.array(sampler.plan)).cuda()
    x = torch.randn(256, 8, device="cuda")
    y = torch.randint(0, 4, (256,), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for start in range(0, 256, 32):
            idx = plan[start : start + 32]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(x[idx])
            loss, conf, correct = classification_signals(logits, y[idx])
            loss.mean().backward()
            sampler.report(loss, conf, correct, idx)
        causal_lm_signals(lm_logits, lm_labels)
        causal_lm_signals(lm_logits.bfloat16(), lm_labels, correct=0.5)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert sampler.pending_reports == 256 and sampler.store.visits.sum() == 0
    sampler.flush()  # the one host sync
    assert sampler.store.visits.sum() == 256 and sampler.pending_reports == 0


def test_device_reports_equal_cpu_reports():
    rng = np.random.default_rng(0)
    idx = rng.permutation(256)
    loss = rng.random(256).astype(np.float32) * 3
    conf = rng.random(256).astype(np.float32)
    correct = rng.random(256) > 0.5
    cpu, gpu = make(sync_every=3), make(sync_every=3)
    for s in range(0, 256, 32):
        sl = slice(s, s + 32)
        cpu.report(
            torch.tensor(loss[sl]),
            torch.tensor(conf[sl]),
            torch.tensor(correct[sl]),
            torch.tensor(idx[sl]),
        )
        gpu.report(
            torch.tensor(loss[sl]).cuda(),
            torch.tensor(conf[sl]).cuda(),
            torch.tensor(correct[sl]).cuda(),
            torch.tensor(idx[sl]).cuda(),
        )
    cpu.flush()
    gpu.flush()
    for name, col in cpu.store.columns.items():
        np.testing.assert_array_equal(col, gpu.store.columns[name], err_msg=name)


def test_deferred_bad_rows_are_dropped_alone_at_flush():
    sampler = make()
    sampler.report(torch.tensor([0.5], device="cuda"), None, None, torch.tensor([1], device="cuda"))
    sampler.flush()
    sampler.report(torch.tensor([0.5], device="cuda"), None, None, torch.tensor([2], device="cuda"))
    sampler.report(
        torch.tensor([float("nan"), 0.25], device="cuda"),
        None,
        None,
        torch.tensor([3, 4], device="cuda"),
    )
    sampler.report(
        torch.tensor([0.5], device="cuda"), None, None, torch.tensor([256], device="cuda")
    )  # out of range
    with pytest.warns(RuntimeWarning, match="dropped 2 reported row"):
        sampler.flush()
    assert sampler.dropped_reports == 2
    assert sampler.store.visits[:5].tolist() == [0, 1, 1, 0, 1]  # the window's good rows were kept
    with pytest.raises(ValueError, match="same length"):  # shapes are still checked at once
        sampler.report(torch.ones(2, device="cuda"), None, None, torch.tensor([1], device="cuda"))


def test_nccl_gather_keeps_int64_indices_exact(tmp_path):
    import torch.distributed as dist

    from gekodata.sampler.collective import all_gather_rows, collective_device

    dist.init_process_group("nccl", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        assert collective_device().type == "cuda"
        idx = torch.tensor([2**40 + 3, 2**24 + 1, 7], dtype=torch.int64, device="cuda")
        out = all_gather_rows(idx)
        assert out.dtype == torch.int64 and out.tolist() == idx.tolist()
    finally:
        dist.destroy_process_group()
