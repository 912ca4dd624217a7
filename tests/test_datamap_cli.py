"""Data map, state summary and the ``python -m gekodata`` command line, on real saved runs.

A small softmax-regression model is trained for a few epochs on a synthetic 3-class problem with
10% flipped labels, through ``PruningDataset`` + ``WeightedBucketSampler`` reporting real
per-sample signals; the sampler file and the bare store file it leaves are then read back by
``gekodata.datamap`` and by the CLI (in process and as a subprocess).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gekodata import (
    Bucket,
    BucketPolicy,
    GEKOStateStore,
    PruningDataset,
    WeightedBucketSampler,
)
from gekodata.datamap import plot_data_map
from gekodata.diagnostics import cli, datamap
from gekodata.signals import classification_signals

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NUM_SAMPLES = 600
NUM_EPOCHS = 5


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "gekodata", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train, save sampler and store files; returns (sampler, sampler_path, store_path)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
        labels = torch.arange(NUM_SAMPLES) % 3
        x = centers[labels] + 0.9 * torch.randn(NUM_SAMPLES, 2, generator=gen)
        flipped = torch.rand(NUM_SAMPLES, generator=gen) < 0.10
        y = torch.where(flipped, (labels + 1) % 3, labels)
        fields = {f.name for f in dataclasses.fields(BucketPolicy)}
        policy = BucketPolicy(noise_guard=True) if "noise_guard" in fields else BucketPolicy()
        ds = PruningDataset(list(range(NUM_SAMPLES)), prune_frozen_after=1)
        sampler = WeightedBucketSampler(ds, policy, num_epochs=NUM_EPOCHS, seed=0)
        model = torch.nn.Linear(2, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for epoch in range(NUM_EPOCHS - 1):  # the last epoch stays unfinished: a mid-run file
            sampler.set_epoch(epoch)
            plan = torch.as_tensor(np.fromiter(iter(sampler), dtype=np.int64))
            for batch in plan.split(32):
                logits = model(x[batch])
                loss, conf, correct = classification_signals(logits, y[batch])
                opt.zero_grad()
                loss.mean().backward()
                opt.step()
                sampler.report(loss, conf, correct, batch)
        sampler.set_epoch(NUM_EPOCHS - 1)
        half = np.array(sampler.plan[: len(sampler.plan) // 2])
        with torch.no_grad():
            loss, conf, correct = classification_signals(model(x[half]), y[half])
        sampler.report(loss, conf, correct, half)
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("datamap")
    sampler_path, store_path = folder / "sampler.safetensors", folder / "store.safetensors"
    sampler.save(sampler_path)
    sampler.store.save(store_path)
    return sampler, sampler_path, store_path


# ---------------------------------------------------------------------------- loading
def test_load_state_reads_both_kinds(run):
    sampler, sampler_path, store_path = run
    expected = sampler.store
    for path, kind in ((sampler_path, "sampler"), (store_path, "store")):
        loaded = datamap.load_state(path)
        assert loaded.kind == kind and len(loaded.store) == NUM_SAMPLES
        assert set(loaded.store.columns) == set(expected.columns)
        for name, col in expected.columns.items():
            np.testing.assert_array_equal(loaded.store.columns[name], col)
        assert loaded.store.total_updates == expected.total_updates
    loaded = datamap.load_state(sampler_path)
    assert loaded.report is not None
    assert loaded.report.to_dict() == sampler.efficiency_report().to_dict()
    assert loaded.run["epoch"] == NUM_EPOCHS - 1 and loaded.run["num_epochs"] == NUM_EPOCHS
    assert datamap.load_state(store_path).report is None


def test_load_state_rejects_other_files(run, tmp_path):
    from safetensors.numpy import save_file

    _, sampler_path, _ = run
    other = tmp_path / "other.safetensors"
    save_file(
        {"w": np.zeros(3, dtype=np.float32)}, str(other), metadata={"format": "somebody.else"}
    )
    with pytest.raises(ValueError, match="not a gekodata state or sampler file"):
        datamap.load_state(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a tensor file\n")
    with pytest.raises(ValueError, match="not a gekodata state file"):
        datamap.load_state(text)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(sampler_path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"not a gekodata state file .*truncated or corrupt"):
        datamap.load_state(truncated)
    with pytest.raises(
        FileNotFoundError, match=r"No such file or directory: .*missing\.safetensors"
    ):
        datamap.load_state(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------------------- signals
def test_variability_is_confidence_times_loss_std():
    store = GEKOStateStore(4, ema_alpha=0.5)
    idx = np.array([0, 1, 2])
    store.update(
        idx, np.array([0.2, 1.0, 3.0]), np.exp(-np.array([0.2, 1.0, 3.0])), np.array([1, 0, 0])
    )
    store.update(
        idx, np.array([0.6, 1.0, 0.1]), np.exp(-np.array([0.6, 1.0, 0.1])), np.array([1, 0, 1])
    )
    var = datamap.variability(store)
    assert var.dtype == np.float32 and var.shape == (4,)
    # West's EW variance after two observations x1, x2 with a = 0.5: (1 - a) a (x2 - x1)^2
    loss_std = np.sqrt(0.25 * np.array([0.4, 0.0, 2.9, 0.0]) ** 2)
    expected = np.minimum(store.confidence.astype(np.float64) * loss_std, 0.5)
    np.testing.assert_allclose(var, expected, rtol=2e-3, atol=1e-4)
    assert var[1] == 0.0 and var[3] == 0.0  # constant loss; unseen
    # the documented definition, straight from the store's decoded loss std
    direct = np.minimum(store.confidence * store.loss_std, 0.5)
    np.testing.assert_array_equal(var, direct)
    store.update(np.array([3]), np.array([0.0]), np.array([1.0]), np.array([1.0]))
    store.update(np.array([3]), np.array([40.0]), np.array([1.0]), np.array([1.0]))
    assert datamap.variability(store)[3] == pytest.approx(datamap.MAX_VARIABILITY)


def test_subsample_is_deterministic_uniform_and_chunk_safe():
    rng = np.random.default_rng(123)
    n = datamap._CHUNK + 50_000  # crosses a chunk boundary
    seen = rng.random(n) < 0.3
    all_seen = np.flatnonzero(seen)
    np.testing.assert_array_equal(datamap.subsample_seen(seen, len(all_seen)), all_seen)
    a = datamap.subsample_seen(seen, 5_000, seed=0)
    b = datamap.subsample_seen(seen, 5_000, seed=0)
    c = datamap.subsample_seen(seen, 5_000, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(a) == 5_000 and np.all(np.diff(a) > 0) and seen[a].all()
    # exactly the seen samples at uniformly drawn ranks (the generator's documented draw)
    ranks = np.sort(np.random.default_rng(0).choice(len(all_seen), size=5_000, replace=False))
    np.testing.assert_array_equal(a, all_seen[ranks])
    assert (a >= datamap._CHUNK).any() and (a < datamap._CHUNK).any()
    with pytest.raises(ValueError, match="max_points"):
        datamap.subsample_seen(seen, 0)


def test_data_map_points_subsample_above_max_points(run):
    sampler, _, _ = run
    store = sampler.store
    seen = store.seen
    num_seen = int(seen.sum())
    assert num_seen > 100
    full = datamap.data_map_points(store)
    assert not full.subsampled and len(full.index) == num_seen
    assert full.num_unseen == NUM_SAMPLES - num_seen
    few = datamap.data_map_points(store, max_points=100)
    assert few.subsampled and len(few.index) == 100 and seen[few.index].all()
    np.testing.assert_array_equal(few.index, datamap.data_map_points(store, max_points=100).index)
    np.testing.assert_array_equal(few.confidence, store.confidence[few.index])
    np.testing.assert_array_equal(few.variability, datamap.variability(store)[few.index])
    np.testing.assert_array_equal(few.bucket, store.bucket[few.index])
    codes = np.bincount(store.bucket[seen], minlength=8)
    assert few.counts == {Bucket(c).name: int(codes[c]) for c in np.flatnonzero(codes)}
    assert sum(few.counts.values()) == num_seen


# ---------------------------------------------------------------------------- plotting
def test_plot_data_map_png_with_suspect_and_unknown_codes(run, tmp_path):
    pytest.importorskip("matplotlib")
    sampler, _, _ = run
    points = plot_data_map(sampler.store, str(tmp_path / "map.png"), title="toy run")
    _assert_png(tmp_path / "map.png")
    assert len(points.index) == int(sampler.store.seen.sum())
    store = datamap.load_state(run[2]).store  # a copy to relabel
    codes = store.bucket.copy()
    seen = np.flatnonzero(store.seen)
    suspect = getattr(Bucket, "SUSPECT", None)
    if suspect is not None:
        codes[seen[:7]] = suspect
    codes[seen[7:9]] = 7  # a code Bucket lacks: drawn with a fallback colour
    store.set_buckets(codes, codes == Bucket.FREEZE)
    points = datamap.plot_data_map(store, tmp_path / "relabelled.png", max_points=50)
    _assert_png(tmp_path / "relabelled.png")
    assert points.counts["code7"] == 2 and len(points.index) == 50
    if suspect is not None:
        assert points.counts["SUSPECT"] == int(np.count_nonzero(codes[seen] == suspect)) >= 7
    assert datamap.bucket_counts(store)["code7"] == 2


# ---------------------------------------------------------------------------- command line
def test_cli_subprocess_map_and_report(run, tmp_path):
    pytest.importorskip("matplotlib")
    sampler, sampler_path, _ = run
    out = tmp_path / "map.png"
    proc = _run_cli(
        "map", str(sampler_path), "-o", str(out), "--title", "toy", "--max-points", "100"
    )
    assert proc.returncode == 0, proc.stderr
    _assert_png(out)
    assert "100 points (uniform subsample of" in proc.stdout
    proc = _run_cli("report", str(sampler_path), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    store = sampler.store
    codes = np.bincount(store.bucket, minlength=8)
    assert {name: b["count"] for name, b in summary["buckets"].items()} == {
        m.name: int(codes[m]) for m in Bucket
    }
    assert summary["buckets"]["UNSEEN"]["share"] == pytest.approx(
        codes[Bucket.UNSEEN] / NUM_SAMPLES
    )
    assert summary["num_samples"] == NUM_SAMPLES
    assert summary["seen"] == int(store.seen.sum()) and summary["pruned"] == store.num_pruned > 0
    assert summary["visits"]["total"] == int(store.visits.sum())
    assert summary["visits"]["max"] == int(store.visits.max())
    assert summary["visits"]["median_seen"] == float(np.median(store.visits[store.seen]))
    assert summary["mean_confidence"] == pytest.approx(
        float(store.confidence[store.seen].mean()), rel=1e-6
    )
    assert summary["mean_correctness"] == pytest.approx(
        float(store.correctness[store.seen].mean()), rel=1e-6
    )
    report = sampler.efficiency_report()
    assert summary["efficiency"]["fraction_saved"] == pytest.approx(report.fraction_saved)
    assert len(summary["efficiency"]["epochs"]) == NUM_EPOCHS
    assert summary["run"]["epoch"] == NUM_EPOCHS - 1


def test_cli_main_report_text(run, capsys):
    sampler, sampler_path, store_path = run
    store = sampler.store
    assert cli.main(["report", str(sampler_path)]) == 0
    text = capsys.readouterr().out
    assert f"samples: {NUM_SAMPLES:,}" in text and f"pruned: {store.num_pruned:,}" in text
    for member in Bucket:
        count = int(np.count_nonzero(store.bucket == member))
        assert any(
            line.split()[:2] == [member.name.lower(), f"{count:,}"] for line in text.splitlines()
        )
    report = sampler.efficiency_report()
    assert str(report) in text
    assert f"saved fraction: {report.fraction_saved:.1%}" in text
    assert cli.main(["report", str(store_path)]) == 0
    text = capsys.readouterr().out
    assert "(store file)" in text and "efficiency" not in text and "saved fraction" not in text
    assert cli.main(["report", str(store_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "store" and "efficiency" not in summary
    assert summary == datamap.summarize(datamap.load_state(store_path))


def test_cli_main_map_writes_png(run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    _, _, store_path = run
    assert cli.main(["map", str(store_path), "-o", str(tmp_path / "m.png")]) == 0
    _assert_png(tmp_path / "m.png")
    assert "wrote" in capsys.readouterr().out


def test_cli_errors_exit_2_with_one_line(run, tmp_path, capsys):
    _, sampler_path, _ = run
    text = tmp_path / "notes.txt"
    text.write_text("not a state file\n")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(sampler_path.read_bytes()[:200])
    for argv in (
        ["report", str(tmp_path / "missing.safetensors")],
        ["report", str(text), "--json"],
        ["map", str(truncated), "-o", str(tmp_path / "x.png")],
        ["report", str(tmp_path)],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith("gekodata: error: ") and err.count("\n") == 1 and "Traceback" not in err
        )
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(SystemExit, match=r"^2$") as exc:  # argparse's usage error: exit status 2
        cli.main(["map", str(sampler_path), "-o", "x.png", "--max-points", "0"])
    assert exc.value.code == 2
    capsys.readouterr()


def test_cli_subprocess_help_errors_and_no_matplotlib(run, tmp_path):
    _, sampler_path, _ = run
    proc = _run_cli("--help")
    assert proc.returncode == 0 and "map" in proc.stdout and "report" in proc.stdout
    proc = _run_cli("report", str(tmp_path / "missing.safetensors"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
    # an interpreter where matplotlib cannot be imported (None in sys.modules blocks the import)
    code = (
        "import sys; sys.modules['matplotlib'] = None; from gekodata.diagnostics.cli import main; "
        f"raise SystemExit(main(['map', {str(sampler_path)!r}, '-o', {str(tmp_path / 'n.png')!r}]))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2 and "matplotlib" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "n.png").exists()


def test_summary_of_a_large_store_is_vectorized_and_exact():
    n = 300_000
    rng = np.random.default_rng(5)
    store = GEKOStateStore(n)
    for _ in range(3):
        idx = np.flatnonzero(rng.random(n) < 0.6)
        loss = rng.gamma(1.0, 0.7, size=len(idx)).astype(np.float32)
        store.update(idx, loss, np.exp(-loss), np.exp(-loss) > 0.5)
    summary = datamap.summarize(store)
    seen = store.visits > 0
    assert summary["seen"] == int(seen.sum()) and summary["unseen"] == n - int(seen.sum())
    assert summary["visits"]["median_seen"] == float(np.median(store.visits[seen]))
    assert summary["visits"]["mean_seen"] == pytest.approx(float(store.visits[seen].mean()))
    assert summary["buckets"]["UNSEEN"]["count"] == n  # never classified
    assert sum(b["count"] for b in summary["buckets"].values()) == n
    points = datamap.data_map_points(store, max_points=10_000)
    assert points.subsampled and len(points.index) == 10_000
