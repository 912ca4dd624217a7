"""benchmarks/rl_llm.py runs (quick mode: the tiny model through the real TRL trainers) and writes
the documented JSON shape; no accuracies or timings asserted."""

import json

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("reasoning_gym")


def test_rl_llm_quick_writes_both_arms(tmp_path):
    from benchmarks import rl_llm

    threads = torch.get_num_threads()
    try:
        report = rl_llm.main(["--quick", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "rl_llm_quick.json").read_text())
    cfg = saved["config"]
    assert cfg["quick"] and cfg["model"] == "tiny" and len(cfg["git_head"]) == 40
    assert (
        cfg["policy"]["kind"] == "prompt" and cfg["policy"]["group_size"] == cfg["num_generations"]
    )
    runs = {r["arm"]: r for r in saved["runs"]}
    assert set(runs) == {"uniform", "gekodata"}
    full = cfg["epochs"] * cfg["train_size"] * cfg["num_generations"]
    assert runs["uniform"]["rollouts"] == full and "planned_per_epoch" not in runs["uniform"]
    geko = runs["gekodata"]
    assert geko["rollouts"] == cfg["num_generations"] * sum(geko["planned_per_epoch"]) <= full
    for run in saved["runs"]:
        assert [e["epoch"] for e in run["epochs"]] == list(range(1, cfg["epochs"] + 1))
        assert [e["rollouts"] for e in run["epochs"]][-1] == run["rollouts"]
        assert run["epochs"][-1]["held_out_exact_match"] == run["final_exact_match"]  # same weights
        for e in run["epochs"]:
            assert (
                0.0 <= e["held_out_exact_match"] <= 1.0
                and 0.0 <= e["zero_advantage_fraction"] <= 1.0
            )
        assert 0.0 < run["epochs"][-1]["train_seconds"] <= run["wall_clock_s"] + 1.0
    summary = saved["summary"]
    assert summary["uniform"]["0"]["rollouts_vs_uniform"] == 1.0
    assert summary["gekodata"]["0"]["uniform_final"] == runs["uniform"]["final_exact_match"]
    assert summary["uniform"]["0"]["rollouts_to_uniform_final"] <= full
    assert (tmp_path / "rl_llm_quick.png").stat().st_size > 0
    text = (tmp_path / "rl_llm_quick.md").read_text()
    assert "| 0 | gekodata |" in text and "epoch 2" in text
    assert report["summary"] == summary


def test_epoch_eval_is_off_by_default():
    from benchmarks import rl_llm

    example = rl_llm.load_example()
    assert not example.parse_args(["--model", "tiny"]).eval_every_epoch


def test_add_keeps_the_saved_seeds(tmp_path):
    from benchmarks import rl_llm

    threads = torch.get_num_threads()
    try:
        rl_llm.main(["--quick", "--arms", "uniform", "--out", str(tmp_path)])
        rl_llm.main(
            ["--quick", "--arms", "uniform", "--seeds", "1", "--add", "--out", str(tmp_path)]
        )
        with pytest.raises(SystemExit, match="other settings"):
            rl_llm.main(["--quick", "--epochs", "1", "--add", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads((tmp_path / "rl_llm_quick.json").read_text())
    assert [r["seed"] for r in saved["runs"]] == [0, 1] == saved["config"]["seeds"]
    assert all(len(r["git_head"]) == 40 for r in saved["runs"])
    assert set(saved["summary"]["uniform"]) == {"0", "1"}
