"""The benchmark scripts run and write the documented JSON shape (tiny settings; no timings asserted)."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mlxtend")
pytest.importorskip("matplotlib")


def test_time_to_quality_writes_every_arm(tmp_path):
    from benchmarks import time_to_quality

    time_to_quality.main(["--task", "t2", "--quick", "--seeds", "0", "--epochs", "2", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "t2_quick.json").read_text())
    assert result["task"] == "t2" and result["mode"] == "quick" and result["machine"]
    assert set(result["arms"]) == set(time_to_quality.ARMS)
    geko = result["arms"]["gekodata"]
    for name, arm in result["arms"].items():
        assert arm["seeds"] == [0]
        assert len(arm["final_metric"]) == len(arm["wall_clock_s"]) == len(arm["sample_passes"]) == 1
        assert 0.0 <= arm["final_metric"][0] <= 1.0 and arm["wall_clock_s"][0] > 0
        assert isinstance(arm["sample_passes"][0], int)
    full = result["arms"]["full"]
    assert full["sample_passes"] == [2 * result["config"]["train_size"]]
    # the controls train what gekodata trained: per epoch (random subset) and in total (same budget)
    assert result["arms"]["random_subset"]["passes_per_epoch"] == geko["passes_per_epoch"]
    assert 0 <= result["arms"]["same_budget"]["sample_passes"][0] - geko["sample_passes"][0] < 64
    assert (tmp_path / "t2_quick.png").stat().st_size > 0
    assert "| gekodata |" in (tmp_path / "t2_quick.md").read_text()


def test_noise_benchmark_injects_flips_and_scores_suspects(tmp_path):
    from benchmarks import noise
    import torch

    labels = torch.arange(1000) % 10
    noisy, flipped = noise.inject_noise(labels, 10, 0.2, seed=3)
    assert flipped.sum() == 200 and (noisy[torch.from_numpy(flipped)] != labels[torch.from_numpy(flipped)]).all()
    assert (noisy[torch.from_numpy(~flipped)] == labels[torch.from_numpy(~flipped)]).all()
    assert ((noisy >= 0) & (noisy < 10)).all()
    noise.main(["--task", "t2", "--quick", "--epochs", "2", "--rates", "0.2", "--arms", "full", "gekodata_guard",
                "--out", str(tmp_path)])
    result = json.loads((tmp_path / "noise_t2_quick.json").read_text())
    (rate,) = result["rates"]
    assert rate["rate"] == 0.2 and set(rate["arms"]) == {"full", "gekodata_guard"}
    guard = rate["arms"]["gekodata_guard"]
    suspects = guard["suspects"][0]
    assert 0.0 <= suspects["precision"] <= 1.0 and 0.0 <= suspects["recall"] <= 1.0
    assert [p["epoch"] for p in guard["curves"][0]] == [0, 1] and "suspect" in guard["curves"][0][-1]
    assert rate["arms"]["full"]["suspects"] == [None]
    assert "| 20% | gekodata_guard |" in (tmp_path / "noise_t2_quick.md").read_text()
    assert (tmp_path / "noise_t2_quick.png").stat().st_size > 0


def test_overhead_tiny_part_writes_every_configuration(tmp_path):
    from benchmarks import overhead
    from benchmarks.gekobench import tiny_loop

    pytest.importorskip("datasets")
    overhead.main(["--part", "tiny", "--quick", "--tiny-samples", "512", "--tiny-epochs", "2", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "overhead_tiny.json").read_text())
    assert {(r["dataset"], r["batch"], r["workers"]) for r in result["rows"]} == {
        (d, b, w) for d in ("tensor", "hf") for b in (32, 256) for w in (0, 2)}
    for row in result["rows"]:
        assert row["plain"]["passes"] == 2 * 512  # every sample once per epoch
        assert 0 < row["gekodata"]["passes"] <= row["plain"]["passes"]
        assert set(row["gekodata"]["us_per_step"]) == set(tiny_loop.PARTS) and row["ratio_per_pass"] > 0
    assert (tmp_path / "overhead_tiny.png").stat().st_size > 0
def test_selection_variants_are_built_as_documented():
    import numpy as np
    from benchmarks import time_to_quality
    from benchmarks.gekobench import variants

    base = time_to_quality.TASKS["t2"](True)
    n = len(base.train)
    noisy = variants.make_variant(base, "noisy", seed=5)
    assert noisy.name == "t2_noisy" and noisy.notes["flipped"] == round(0.2 * n)
    assert (noisy.labels != base.train.columns["labels"].numpy()).sum() == round(0.2 * n)
    red = variants.make_variant(base, "redundant", seed=5)
    assert len(red.train) == n and red.notes["distinct"] == n // 2 and red.notes["core"] == n // 20
    x = red.train.columns["x"]
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    imb = variants.make_variant(base, "imbalanced", seed=5)
    counts = np.bincount(imb.labels, minlength=10)
    rare = imb.notes["rare_classes"]
    full_counts = np.bincount(base.train.columns["labels"].numpy(), minlength=10)
    assert len(rare) == 3 and all(abs(counts[c] - 0.1 * full_counts[c]) <= 1 for c in rare)
    assert all(counts[c] == full_counts[c] for c in range(10) if c not in rare)
    # accuracy under the training class shares and macro accuracy from per-class accuracy
    import torch

    class Always(torch.nn.Module):  # predicts class rare[0] for everything
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, rare[0]] = 1.0
            return out

    scores = imb.evaluate(Always())
    assert abs(scores["macro"] - 0.1) < 1e-9 and abs(scores["metric"] - counts[rare[0]] / counts.sum()) < 1e-9


def test_selection_study_runs_candidates_with_their_controls(tmp_path):
    from benchmarks import time_to_quality

    arms = ["full", "forgetting", "forgetting_random", "forgetting_budget", "reducible"]
    time_to_quality.main(["--task", "t2", "--quick", "--variant", "noisy", "--seeds", "0", "--epochs", "2",
                          "--arms", *arms, "--out", str(tmp_path)])
    result = json.loads((tmp_path / "t2_noisy_quick.json").read_text())
    assert result["task"] == "t2_noisy" and result["variant"] == "noisy" and set(result["arms"]) == set(arms)
    forget = result["arms"]["forgetting"]
    assert result["arms"]["forgetting_random"]["passes_per_epoch"] == forget["passes_per_epoch"]
    assert 0 <= result["arms"]["forgetting_budget"]["sample_passes"][0] - forget["sample_passes"][0] < 64
    reducible = result["arms"]["reducible"]
    assert reducible["reference_s"][0] > 0 and reducible["reference_passes"][0] > 0
    assert reducible["wall_clock_s"][0] >= reducible["reference_s"][0]  # the reference compute is counted
    assert result["policies"]["forgetting"]["kind"] == "forgetting"
    assert set(result["goals"]) == {"forgetting", "reducible"}
    table = (tmp_path / "t2_noisy_quick.md").read_text()
    assert "| forgetting |" in table and "macro accuracy" in table


def test_t3_task_and_the_default_selection_checks():
    from benchmarks import select_default
    from benchmarks import time_to_quality

    task = time_to_quality.TASKS["t3"](False)
    assert (len(task.train), len(task.test), task.num_classes) == (1297, 500, 10)
    assert task.train.columns["x"].shape[1:] == (1, 8, 8) and float(task.train.columns["x"].max()) <= 1.0

    def arm(finals, passes):
        return {"seeds": [0, 1, 2], "final_metric": finals, "sample_passes": [passes] * 3}

    result = {"arms": {"full": arm([0.90, 0.91, 0.92], 100),
                       "sel_x": arm([0.905, 0.915, 0.921], 40),  # +0.005, +0.005, +0.001 vs the random subset
                       "sel_x_random": arm([0.900, 0.910, 0.920], 40),
                       "sel_x_budget": arm([0.910, 0.920, 0.930], 40)}}  # -0.005, -0.005, -0.009
    # the grid is passed to a study explicitly (no global registry to register it in or clean up)
    # passes 0.4 <= 0.5; 0.9137 >= 0.91 - 0.5 * 0.01; vs random ahead by more than its std;
    # vs budget behind: on clean data within 0.5 std is required, elsewhere ahead by 1 std
    assert select_default.checks(result, "sel_x", "noisy") == [True, True, True, False]
    assert select_default.checks(result, "sel_x", "clean") == [True, True, True, False]
    result["arms"]["sel_x_budget"] = arm([0.906, 0.914, 0.921], 40)  # -0.001, +0.001, 0: level
    assert select_default.checks(result, "sel_x", "clean")[3] is True
    assert select_default.checks(result, "sel_x", "noisy")[3] is False
