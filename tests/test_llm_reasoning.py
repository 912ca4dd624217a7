"""examples/llm_reasoning.py at the tiny size: LoRA on a reasoning-gym task with per-sample signals
from the training forward and per-epoch verification by the task's ``score_answer``.

The module fixture runs the example's ``main(argv)`` in-process (as the command line would) on a
randomly initialised 2-layer Llama with a character tokenizer (no download), with a spy on the
task's ``score_answer``; two more short runs check ``--verify-from hardest`` and the printout/JSON.
"""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("peft")
rg = pytest.importorskip("reasoning_gym")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "llm_reasoning.py"
TRAIN, EVAL, EPOCHS, BATCH, VERIFY = 24, 6, 2, 8, 5
ARGS = [
    "--model",
    "tiny",
    "--train-size",
    str(TRAIN),
    "--eval-size",
    str(EVAL),
    "--epochs",
    str(EPOCHS),
    "--batch-size",
    str(BATCH),
    "--verify",
    str(VERIFY),
    "--seed",
    "0",
    "--threads",
    "1",
    "--quiet",
]


def load_example():
    spec = importlib.util.spec_from_file_location("llm_reasoning_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv, calls=None):
    """main(argv); with ``calls`` a list, every score_answer call appends (answer, question)."""
    threads = torch.get_num_threads()
    module = load_example()
    cls = type(rg.create_dataset("chain_sum", size=1, seed=0))
    original = cls.score_answer

    def spy(self, answer, entry):
        calls.append((answer, entry["question"]))
        return original(self, answer, entry)

    try:
        with pytest.MonkeyPatch.context() as mp:
            if calls is not None:
                mp.setattr(cls, "score_answer", spy)
            return module, module.main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def traced():
    calls = []
    module, result = run(ARGS, calls)
    return module, result, calls


@pytest.fixture(scope="module")
def result(traced):
    return traced[1]


def test_run_completes_with_finite_signals(result):
    assert [e["epoch"] for e in result["epochs"]] == list(range(EPOCHS))
    for e in result["epochs"]:
        assert math.isfinite(e["mean_loss"]) and 0.0 <= e["train_exact_match"] <= 1.0
        assert e["eval"]["n"] == EVAL and 0.0 <= e["eval"]["score"] <= 1.0
    assert result["eval_before"]["n"] == EVAL
    assert result["device"] == "cpu" and result["bf16"] is False
    assert set(result["seconds"]) == {"load", "train", "verify", "eval", "total"}


def test_prompt_and_padding_are_masked(traced):
    module, result, _ = traced
    data, tok = result["objects"]["train_ds"], result["objects"]["tokenizer"]
    assert len(data) == TRAIN
    for i, entry in enumerate(data.entries):
        prompt = data.prompts[i]
        assert prompt == tok.encode(module.PROMPT.format(question=entry["question"]))
        labels, ids, mask = data.labels[i], data.input_ids[i], data.attention_mask[i]
        assert (labels[: len(prompt)] == -100).all()  # prompt: no target
        assert (labels[mask == 0] == -100).all()  # padding: no target
        target = labels[labels != -100]
        assert target.tolist() == tok.encode(f" {entry['answer']}") + [tok.eos_token_id]
        assert torch.equal(target, ids[labels != -100])  # labels are the input ids where kept
        assert int(mask.sum()) == len(prompt) + len(target)


def test_reported_indices_are_the_real_sample_indices(result):
    sampler, data = result["objects"]["sampler"], result["objects"]["train_ds"]
    plans = result["plans"]
    assert sorted(plans[0]) == list(range(TRAIN))  # epoch 0 visits every sample once
    assert all(0 <= i < TRAIN for plan in plans for i in plan)
    sampler.flush()
    np.testing.assert_array_equal(
        sampler.store.visits.astype(np.int64),
        np.bincount(np.concatenate([np.asarray(p) for p in plans]), minlength=TRAIN),
    )
    batch = next(
        iter(torch.utils.data.DataLoader(sampler.data_source, batch_size=BATCH, shuffle=True))
    )
    assert torch.equal(
        batch["labels"], data.labels[batch["idx"]]
    )  # idx names the row that was trained
    # verification scored the entry that idx names in the task's own generator
    fresh = rg.create_dataset(
        "chain_sum", size=TRAIN, seed=result["config"]["data_seed"], **result["task"]["kwargs"]
    )
    for rec in result["verify_records"]:
        assert (
            fresh[rec["idx"]]["question"] == rec["question"] == data.entries[rec["idx"]]["question"]
        )


def test_efficiency_report_counts_the_trained_passes(result):
    report, plans = result["efficiency_report"], result["plans"]
    assert report["trained_passes"] == result["reported_passes"] == sum(len(p) for p in plans)
    assert (
        [e["reported"] for e in report["epochs"]]
        == [len(p) for p in plans]
        == [e["passes"] for e in result["epochs"]]
    )
    assert [e["planned"] for e in report["epochs"]] == [e["planned"] for e in result["epochs"]]
    assert report["full_data_passes"] == EPOCHS * TRAIN
    assert [sum(e["buckets"].values()) for e in result["epochs"]] == [TRAIN] * EPOCHS


def test_verify_scores_with_score_answer(traced):
    _, result, calls = traced
    # held-out before + after each epoch, and VERIFY training samples after each epoch
    assert len(calls) == (EPOCHS + 1) * EVAL + EPOCHS * VERIFY
    rg_ds, data = result["objects"]["rg_dataset"], result["objects"]["train_ds"]
    records = result["verify_records"]
    assert len(records) == EPOCHS * VERIFY
    for epoch, (row, plan) in enumerate(zip(result["epochs"], result["plans"])):
        mine = [r for r in records if r["epoch"] == epoch]
        assert len({r["idx"] for r in mine}) == VERIFY and all(r["idx"] in plan for r in mine)
        for r in mine:
            assert (r["generated"], r["question"]) in calls
            assert r["score"] == rg_ds.score_answer(r["generated"], data.entries[r["idx"]])
        v = row["verify"]
        assert v["n"] == VERIFY and v["source"] == "epoch" and v["seconds"] > 0
        assert v["score"] == pytest.approx(np.mean([r["score"] for r in mine]))
        assert 0.0 <= v["agrees_with_step_exact"] <= 1.0


def test_verify_hardest_picks_the_highest_loss(tmp_path):
    calls = []
    _, r = run(ARGS[:] + ["--epochs", "1", "--eval-size", "0", "--verify-from", "hardest"], calls)
    assert len(calls) == VERIFY and r["eval_before"] is None
    store = r["objects"]["sampler"].store
    chosen = sorted(rec["idx"] for rec in r["verify_records"])
    assert chosen == sorted(np.argsort(-store.loss, kind="stable")[:VERIFY].tolist())


def test_entries_are_deterministic_and_held_out_is_disjoint():
    module = load_example()
    kwargs = module.ARITHMETIC
    _, train_a, eval_a = module.make_entries("chain_sum", 40, 10, 3, kwargs)
    _, train_b, eval_b = module.make_entries("chain_sum", 40, 10, 3, kwargs)
    assert [e["question"] for e in train_a + eval_a] == [e["question"] for e in train_b + eval_b]
    assert not {e["question"] for e in train_a} & {e["question"] for e in eval_a}
    _, train_c, _ = module.make_entries("chain_sum", 40, 10, 4, kwargs)
    assert [e["question"] for e in train_a] != [e["question"] for e in train_c]


def test_command_line_output_and_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    _, r = run(
        [
            "--model",
            "tiny",
            "--train-size",
            "16",
            "--eval-size",
            "4",
            "--epochs",
            "1",
            "--verify",
            "4",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert "epoch 0" in printed and "verify 4 (epoch)" in printed and "held-out exact" in printed
    assert "trained" in printed and "full-data sample passes" in printed  # the efficiency report
    summary = json.loads(out.read_text())
    assert {
        "config",
        "task",
        "epochs",
        "plans",
        "reported_passes",
        "efficiency_report",
        "eval_before",
        "verify_records",
        "seconds",
    } <= set(summary)
    assert summary["reported_passes"] == summary["efficiency_report"]["trained_passes"] == 16
    assert len(summary["verify_records"]) == 4 and summary["plans"] == r["plans"]
