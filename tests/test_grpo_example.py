"""examples/grpo_reasoning.py at the CI size (``--model tiny``): GekoGRPOTrainer with LoRA on a
reasoning-gym task, score_answer as the reward, and the plain-GRPOTrainer comparison."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("trl")
pytest.importorskip("peft")
rg = pytest.importorskip("reasoning_gym")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "grpo_reasoning.py"
TRAIN, EVAL, EPOCHS, G = 16, 8, 2, 4


def run(argv):
    threads = torch.get_num_threads()
    spec = importlib.util.spec_from_file_location("grpo_reasoning_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    cls = type(rg.create_dataset("chain_sum", size=1, seed=0))
    original = cls.score_answer

    def spy(self, answer, entry):
        calls.append(answer)
        return original(self, answer, entry)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(cls, "score_answer", spy)
            return module.main(argv), calls
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gekodata_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo_example") / "run.json"
    result, calls = run(
        [
            "--model",
            "tiny",
            "--train-size",
            str(TRAIN),
            "--eval-size",
            str(EVAL),
            "--epochs",
            str(EPOCHS),
            "--num-generations",
            str(G),
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    return result, calls, out


def test_rollouts_follow_the_plan_and_the_reward_is_score_answer(gekodata_run):
    result, calls, _ = gekodata_run
    report = result["efficiency_report"]
    assert [e["planned"] for e in report["epochs"]][0] == TRAIN
    assert (
        result["rollouts"] == report["trained_passes"] * G
    )  # every group reported, counted as one pass
    assert (
        result["rollouts"] < result["full_data_rollouts"] == EPOCHS * TRAIN * G
    )  # the second epoch shrank
    assert (
        len(calls) == result["rollouts"] + 2 * EVAL
    )  # rewards and the held-out before/after: score_answer
    assert result["prompts"]["rollouts"] == result["rollouts"]
    sampler = result["objects"]["sampler"]
    assert sampler.store.visits.sum() == result["rollouts"]
    assert result["objects"]["trainer"].gekodata_reporter.reported_rows == result["rollouts"]


def test_summary_json(gekodata_run):
    result, _, out = gekodata_run
    saved = json.loads(out.read_text())
    assert saved["config"]["selection"] == "gekodata" and saved["device"] == "cpu"
    assert saved["eval_before"]["n"] == saved["eval_after"]["n"] == EVAL
    assert 0.0 <= saved["eval_after"]["exact_match"] <= 1.0
    assert saved["optimizer_steps"] == len(saved["reward"]) > 0
    assert all(0.0 <= z <= 1.0 for z in saved["frac_reward_zero_std"])
    assert saved["params"]["trainable"] < saved["params"]["total"]  # LoRA


def test_uniform_selection_rolls_out_everything(tmp_path):
    result, _ = run(
        [
            "--model",
            "tiny",
            "--selection",
            "uniform",
            "--train-size",
            str(TRAIN),
            "--eval-size",
            "0",
            "--epochs",
            str(EPOCHS),
            "--num-generations",
            str(G),
            "--batch-size",
            "8",
            "--threads",
            "1",
            "--quiet",
        ]
    )
    assert (
        result["rollouts"] == result["full_data_rollouts"] and result["objects"]["sampler"] is None
    )
    assert result["eval_before"] is None


def test_batch_size_must_hold_whole_groups():
    with pytest.raises(SystemExit, match=r"^2$"):  # argparse's usage error: exit status 2
        run(["--model", "tiny", "--batch-size", "6", "--num-generations", "4", "--quiet"])
