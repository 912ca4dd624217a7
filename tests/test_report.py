import numpy as np
import pytest

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler


def test_report_table_dict_and_png(tmp_path):
    ds = PruningDataset(list(range(60)), prune_frozen_after=1)
    sampler = WeightedBucketSampler(
        ds, BucketPolicy(), num_epochs=3, seed=0
    )  # GEKO's mountain: PEAK
    losses = np.where(np.arange(60) < 20, 1e-3, 2.5)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        plan = sampler.plan
        sampler.report(losses[plan], None, None, plan)
    report = sampler.efficiency_report()
    assert [r.epoch for r in report.epochs] == [0, 1, 2]
    assert report.epochs[1].pruned == 20 and report.epochs[1].buckets["FREEZE"] == 20
    assert [r.reported for r in report.epochs] == [r.planned for r in report.epochs]
    assert report.trained_passes < report.full_data_passes
    assert 0 < report.fraction_saved < 1
    table = str(report)
    assert "PEAK" in table and f"{report.fraction_saved:.1%}" in table
    pytest.importorskip("matplotlib")
    path = tmp_path / "report.png"
    report.plot(str(path), title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
