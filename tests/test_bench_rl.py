"""benchmarks/rl.py runs (quick mode) and writes the documented JSON shape; the GRPO pieces it is built
from do what they say (no timings or accuracies asserted)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("matplotlib")
pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("reasoning_gym")


def test_rl_quick_writes_every_arm(tmp_path):
    from benchmarks import rl

    threads = torch.get_num_threads()
    try:
        report = rl.main(["--quick", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "rl_quick.json").read_text())
    assert saved["config"]["quick"] and [r["task"] for r in saved["regimes"]] == list(rl.TASKS)
    train, group, epochs = saved["config"]["train_size"], saved["config"]["group"], saved["config"]["epochs"]
    for regime in saved["regimes"]:
        assert set(regime["summary"]) == set(rl.ARMS)
        runs = {r["arm"]: r for r in regime["runs"]}
        assert runs["uniform"]["rollouts"] == runs["dapo"]["rollouts"] == epochs * train * group
        for arm in ("greso", "gekodata"):
            assert runs[arm]["rollouts"] == group * sum(e["groups"] for e in runs[arm]["epochs"])
        geko = runs["gekodata"]
        assert geko["rollouts"] == group * geko["efficiency_report"]["trained_passes"]
        for run in regime["runs"]:
            assert [e["epoch"] for e in run["epochs"]] == list(range(epochs))
            assert 0.0 <= run["selection_s"] <= run["wall_clock_s"]
            for e in run["epochs"]:
                assert 0.0 <= e["held_out_exact_match"] <= 1.0 and 0.0 <= e["zero_advantage_fraction"] <= 1.0
                assert e["all_right_groups"] + e["all_wrong_groups"] == e["zero_advantage_groups"] <= e["groups"]
        assert runs["dapo"]["epochs"][-1]["groups_trained"] <= runs["uniform"]["epochs"][-1]["groups_trained"]
        summary = regime["summary"]
        assert summary["uniform"]["rollouts_vs_uniform_mean"] == 1.0
        assert summary["dapo"]["zero_advantage_vs_dapo_mean"] in (None, 1.0)
        assert len(summary["greso"]["rollouts_to_uniform_final"]) == len(saved["config"]["seeds"])
    assert (tmp_path / "rl_quick.png").stat().st_size > 0
    text = (tmp_path / "rl_quick.md").read_text()
    assert "| greso |" in text and "| gekodata |" in text and "epoch 2" in text
    assert report["regimes"][0]["summary"]["uniform"]["rollouts_saved_vs_uniform"] == 0.0


def test_rollouts_to_reach_is_the_first_epoch_end_at_the_level():
    from benchmarks.gekobench.rl_grpo import rollouts_to_reach

    run = {
        "held_out_before": 0.5,
        "epochs": [{"held_out_exact_match": a, "rollouts": 100 * (k + 1)} for k, a in enumerate((0.55, 0.7, 0.6))],
    }
    assert rollouts_to_reach(run, 0.6) == 200 and rollouts_to_reach(run, 0.5) == 0
    assert rollouts_to_reach(run, 0.71) is None


def test_greso_batches_fill_and_skip():
    from benchmarks.gekobench.greso import GresoSkip
    from benchmarks.gekobench.rl_grpo import _greso_batches

    skip = GresoSkip(50, seed=0)
    batches = list(_greso_batches(skip, 8))  # nothing observed yet: every prompt, full batches
    assert [len(b) for b in batches] == [8] * 6 + [2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(50))
    skip.run[:40] = -6  # all wrong six times running: kept with probability 0.5 ** 6
    kept = np.concatenate(list(_greso_batches(skip, 8)))
    assert set(range(40, 50)) <= set(kept.tolist()) and len(kept) < 20 and len(set(kept.tolist())) == len(kept)
    rolled = np.arange(4)
    skip.observe(rolled, np.array([True, False, False, False]), np.array([False, True, False, False]))
    assert skip.run[:4].tolist() == [1, -7, 0, 0]
    # all-right and all-wrong shares 1/4, above their 12.5% targets: both keep rates step down
    assert skip.keep_rates == pytest.approx((0.49, 0.49))


def test_completion_mask_and_decode():
    from benchmarks import rl

    tokens = torch.tensor([[rl.encode("1")[0], rl.EOS, 5, 6], [7, 8, 9, 10]])
    assert rl.completion_mask(tokens).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert rl.decode([*rl.encode("-37"), rl.EOS, *rl.encode("99")]) == "-37"
    model = rl.tiny_policy(0, 16)
    prompts = torch.tensor([rl.encode("12 + 3 =".rjust(9))] * 2)
    a = rl.sample(model, prompts, 3, 4, torch.Generator().manual_seed(0))
    b = rl.sample(model, prompts, 3, 4, torch.Generator().manual_seed(0))
    assert a.shape == (6, 4) and torch.equal(a, b)  # private generator: reproducible
    greedy = rl.sample(model, prompts, 2, 4, None)
    assert torch.equal(greedy[0], greedy[1])
    assert np.isfinite(rl.token_logp(model, prompts, a[:2]).detach().numpy()).all()
