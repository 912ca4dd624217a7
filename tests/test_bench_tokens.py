"""benchmarks/tokens.py --quick: every arm is in the JSON with the promised keys, and the gated arms
back-propagate fewer tokens / samples than full loss (behaviour, no timings asserted).

Runs on a randomly initialised 2-layer Llama (examples/lora_8bit.py's ``tiny`` model), 1 seed, a few
steps: a few seconds after the imports.
"""
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers", minversion="5.0")
pytest.importorskip("peft")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from benchmarks import tokens as bench

    out = tmp_path_factory.mktemp("tokens")
    bench.main(["--quick", "--out", str(out)])
    data = json.loads((out / "tokens_quick.json").read_text())
    return bench, out, data


def ok_runs(data, part, arm):
    return [r for r in data["parts"][part]["arms"][arm]["runs"] if r["status"] == "ok"]


def test_every_arm_with_the_promised_keys(result):
    bench, out, data = result
    assert data["benchmark"] == "tokens" and data["mode"] == "quick" and data["machine"]["cpu_count"]
    assert set(data["parts"]) == set(bench.PARTS)
    cggr_installed = True
    try:
        bench.import_cggr()
    except ImportError:
        cggr_installed = False
    for part, arms in bench.PARTS.items():
        assert tuple(data["parts"][part]["arms"]) == arms
        for arm in arms:
            entry = data["parts"][part]["arms"][arm]
            assert entry["seeds"] == [0] and len(entry["runs"]) == 1
            run = entry["runs"][0]
            if run["status"] != "ok":  # only the external package may fail, and it says why
                assert arm.startswith("cggr") and run["status"].startswith("did not run: ")
                assert not cggr_installed or "Error" in run["status"]
                continue
            assert set(bench.RUN_KEYS) <= set(run)
            steps = data["config"]["steps_a" if part == "token_gating" else "steps_b"]
            assert run["steps"] == steps and run["wall_clock_s"] > 0 and run["process_time_s"] >= 0
            assert run["curve"][0]["step"] == 0 and run["curve"][-1]["step"] == steps
            for key in bench.METRICS:
                assert run["final"][key] == run["curve"][-1][key]
                assert math.isfinite(run["at_equal_time"][key])
            assert 0.0 <= run["final"]["exact_match"] <= 1.0 and run["final"]["eval_loss"] > 0
    assert (out / "tokens_quick.png").stat().st_size > 0
    text = (out / "tokens_quick.md").read_text()
    assert "| gekodata_topk |" in text and "| sb_topk |" in text


def test_gated_arms_backpropagate_less_than_full(result):
    _, _, data = result
    full = ok_runs(data, "token_gating", "full")[0]
    assert full["tokens_backpropagated"] == full["target_tokens_seen"] > 0
    topk = ok_runs(data, "token_gating", "gekodata_topk")[0]
    rand = ok_runs(data, "token_gating", "random_tokens")[0]
    assert 0 < topk["tokens_backpropagated"] < full["tokens_backpropagated"]
    # the control trains on exactly as many answer tokens as the gated arm
    assert rand["tokens_backpropagated"] == topk["tokens_backpropagated"]
    for run in ok_runs(data, "token_gating", "cggr_loss"):
        assert run["tokens_backpropagated"] < full["tokens_backpropagated"]

    full_b = ok_runs(data, "selective_backward", "full")[0]
    assert full_b["samples_backpropagated"] == full_b["samples_seen"]
    for arm in ("sb_topk", "sb_random", "sb_store", "cggr_model"):
        for run in ok_runs(data, "selective_backward", arm):
            assert run["samples_backpropagated"] == full_b["samples_backpropagated"] // 2
    assert ok_runs(data, "selective_backward", "sb_topk")[0]["samples_scored"] == full_b["samples_seen"]
    for arm in ("sb_random", "sb_store"):  # no scoring pass
        assert ok_runs(data, "selective_backward", arm)[0]["samples_scored"] == 0
