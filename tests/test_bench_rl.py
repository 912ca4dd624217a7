"""benchmarks/rl.py runs (quick mode) and writes the documented JSON shape; the GRPO pieces it is built
from do what they say (no timings or accuracies asserted)."""
import json
import sys
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
    assert saved["config"]["quick"] and len(saved["regimes"]) == 1
    regime = saved["regimes"][0]
    assert set(regime["summary"]) == set(rl.ARMS)
    runs = {r["arm"]: r for r in regime["runs"]}
    train, group, epochs = saved["config"]["train_size"], saved["config"]["group"], saved["config"]["epochs"]
    assert runs["uniform"]["rollouts"] == runs["dapo"]["rollouts"] == epochs * train * group
    geko = runs["gekodata"]
    assert geko["rollouts"] == group * sum(e["groups"] for e in geko["epochs"])
    assert geko["rollouts"] == group * geko["efficiency_report"]["trained_passes"]
    for run in regime["runs"]:
        assert [e["epoch"] for e in run["epochs"]] == list(range(epochs))
        for e in run["epochs"]:
            assert 0.0 <= e["held_out_exact_match"] <= 1.0 and 0.0 <= e["zero_advantage_fraction"] <= 1.0
            assert e["zero_advantage_groups"] <= e["groups"]
    assert runs["dapo"]["epochs"][-1]["groups_trained"] <= runs["uniform"]["epochs"][-1]["groups_trained"]
    assert (tmp_path / "rl_quick.png").stat().st_size > 0
    assert "| gekodata |" in (tmp_path / "rl_quick.md").read_text()
    assert report["regimes"][0]["summary"]["uniform"]["rollouts_saved_vs_uniform"] == 0.0


def test_completion_mask_and_decode():
    from benchmarks import rl

    tokens = torch.tensor([[rl.encode("1")[0], rl.EOS, 5, 6], [7, 8, 9, 10]])
    assert rl.completion_mask(tokens).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert rl.decode(rl.encode("-37") + [rl.EOS] + rl.encode("99")) == "-37"
    model = rl.tiny_policy(0, 16)
    prompts = torch.tensor([rl.encode("12 + 3 =".rjust(9))] * 2)
    a = rl.sample(model, prompts, 3, 4, torch.Generator().manual_seed(0))
    b = rl.sample(model, prompts, 3, 4, torch.Generator().manual_seed(0))
    assert a.shape == (6, 4) and torch.equal(a, b)  # private generator: reproducible
    greedy = rl.sample(model, prompts, 2, 4, None)
    assert torch.equal(greedy[0], greedy[1])
    assert np.isfinite(rl.token_logp(model, prompts, a[:2]).detach().numpy()).all()
