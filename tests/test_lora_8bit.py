"""examples/lora_8bit.py at the tiny size: gekodata unchanged under PEFT LoRA, bitsandbytes
AdamW8bit, bf16 autocast, gradient checkpointing and torch.compile.

The module fixture runs the example's ``main()`` twice with every feature on (same seed), on a
randomly initialised 2-layer Llama (no download). Most of its time is inductor compiling the
model, once per run: about 20-70 s per run on 2 busy CPU cores. If bitsandbytes is missing (CI
installs it with the ``bnb`` extra), the example falls back to torch AdamW with a printed message and only the 8-bit
check is skipped.
"""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("peft")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lora_8bit.py"
TRAIN_SIZE, EPOCHS, BATCH = 64, 3, 8  # 64 = 8 full batches: one batch shape, one compiled graph
ARGS = [
    "--model",
    "tiny",
    "--train-size",
    str(TRAIN_SIZE),
    "--eval-size",
    "16",
    "--epochs",
    str(EPOCHS),
    "--batch-size",
    str(BATCH),
    "--seed",
    "0",
    "--threads",
    "1",
    "--quiet",
]


def load_example():
    spec = importlib.util.spec_from_file_location("lora_8bit_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv):
    threads = torch.get_num_threads()
    torch._dynamo.reset()  # each run compiles its own model from scratch (no stale guards)
    try:
        return load_example().main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs():
    return run(ARGS), run(ARGS)


@pytest.fixture(scope="module")
def result(runs):
    return runs[0]


def test_all_features_were_on(result):
    features = result["features"]
    assert features["compile"] and features["bf16"] and features["gradient_checkpointing"]
    assert result["compile"] is not None and result["compile"]["graphs"] >= 1
    assert features["checkpointed_layers"] == 2  # both decoder layers of the tiny model


def test_loss_finite_and_decreasing(result):
    losses = result["step_losses"]
    assert len(losses) == EPOCHS * TRAIN_SIZE // BATCH
    assert all(math.isfinite(x) for x in losses)
    first, last = result["epochs"][0]["mean_loss"], result["epochs"][-1]["mean_loss"]
    assert last < first, [e["mean_loss"] for e in result["epochs"]]


def test_every_trained_sample_has_its_visits(result):
    sampler = result["objects"]["sampler"]
    sampler.flush()  # the last epoch's reports wait for a sync point
    trained = np.concatenate([np.asarray(p, dtype=np.int64) for p in result["plans"]])
    expected = np.bincount(trained, minlength=TRAIN_SIZE)
    assert (expected > 0).all()  # epoch 0 visits every sample
    np.testing.assert_array_equal(sampler.store.visits.astype(np.int64), expected)


def test_only_lora_parameters_changed(result):
    model, initial = result["objects"]["model"], result["objects"]["initial_params"]
    base = lora = 0
    for name, param in model.named_parameters():
        if "lora_" in name:
            assert param.requires_grad, name
            assert not torch.equal(param.detach(), initial[name]), (
                f"LoRA tensor {name} did not train"
            )
            lora += 1
        else:
            assert not param.requires_grad, name
            assert torch.equal(param.detach(), initial[name]), f"base weight {name} changed"
            base += 1
    assert lora > 0 and base > 0
    assert result["base_unchanged"] is True and result["lora_tensors_changed"] == lora


def test_efficiency_report_counts_reported_passes(result):
    report = result["efficiency_report"]
    assert (
        report["trained_passes"]
        == result["reported_passes"]
        == sum(len(p) for p in result["plans"])
    )
    assert [e["reported"] for e in report["epochs"]] == [len(p) for p in result["plans"]]
    assert [e["planned"] for e in report["epochs"]] == [len(p) for p in result["plans"]]
    assert report["full_data_passes"] == EPOCHS * TRAIN_SIZE


def test_same_seed_same_plan(runs):
    first, second = runs
    assert first["plans"] == second["plans"]
    for r in runs:
        r["objects"]["sampler"].flush()
    a, b = (r["objects"]["sampler"].store for r in runs)
    for column in ("visits", "bucket", "loss"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column))


def test_bf16_logits_give_float32_signals(result):
    assert result["signal_dtypes"] == {
        "logits": "torch.bfloat16",
        "loss": "torch.float32",
        "conf": "torch.float32",
        "correct": "torch.bool",
    }


def test_compiled_model_has_no_graph_breaks_and_no_recompiles(result):
    info = result["compile"]
    # gekodata's calls are outside the compiled model, so nothing of it is traced; with the
    # embeddings' requires_grad_ hooks removed the LoRA model compiles without graph breaks
    assert not any("gekodata" in reason for reason in info["graph_breaks"])
    assert info["graph_breaks"] == {}
    # every batch has the same shape here: compiled in epoch 0, never again
    assert result["epochs"][0]["compiled_frames"] >= 1
    assert all(e["compiled_frames"] == 0 for e in result["epochs"][1:])


def test_optimizer_keeps_8bit_states(result):
    if result["notes"]:
        pytest.skip("bitsandbytes AdamW8bit unavailable here: " + " ".join(result["notes"]))
    assert result["features"]["optimizer"].startswith("bitsandbytes")
    dtypes = result["optimizer_state_dtypes"]
    assert set(dtypes) == {"uint8"} and dtypes["uint8"] == result["features"]["lora_tensors"]


def test_every_feature_can_be_turned_off():
    r = run(
        ARGS[:] + ["--epochs", "1", "--no-compile", "--no-bf16", "--no-8bit", "--no-checkpointing"]
    )
    assert r["compile"] is None and r["features"]["optimizer"] == "torch AdamW"
    assert r["features"]["checkpointed_layers"] == 0
    assert r["signal_dtypes"]["logits"] == "torch.float32"
    assert r["base_unchanged"] is True and r["reported_passes"] == TRAIN_SIZE
    assert r["optimizer_state_dtypes"] == {"float32": r["features"]["lora_tensors"]}


def test_without_bitsandbytes_falls_back_with_a_message(monkeypatch, capsys):
    monkeypatch.setitem(
        sys.modules, "bitsandbytes", None
    )  # makes `import bitsandbytes` raise ImportError
    r = run(ARGS[:] + ["--epochs", "1", "--no-compile"])
    assert r["features"]["optimizer"] == "torch AdamW"
    assert len(r["notes"]) == 1 and "falling back to torch.optim.AdamW" in r["notes"][0]
    assert "falling back to torch.optim.AdamW" in capsys.readouterr().out
    assert r["reported_passes"] == TRAIN_SIZE
