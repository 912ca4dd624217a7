"""What a Trainer user sees of a gekodata run (issue 25, item 4), with real Trainer objects: the
progress bar and ``state.max_steps`` end at the true step count, one record per finished epoch
reaches ``log_history`` and every callback's ``on_log``, ``train_samples_per_second`` is counted,
and the efficiency report lands in ``output_dir`` (main process only). Also for GekoSFTTrainer
and GekoGRPOTrainer, which share the code (gekodata/hf/progress.py)."""

import json
import math
import os
import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from support.hf_toy import ToyText, tiny_bert
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from gekodata import InfoBatchPolicy, PruningDataset, WeightedBucketSampler
from gekodata.hf import GekoTrainer
from gekodata.hf.progress import (
    REPORT_JSON,
    REPORT_PNG,
    REPORT_TEXT,
    PlanReportCallback,
    epoch_logs,
    write_report,
)

EPOCHS, N, BS = 3, 48, 8


class Watch(TrainerCallback):
    """Logs received through on_log, and the progress bar as the user sees it. User callbacks run
    before Trainer's ProgressCallback, so on_train_end still sees its bar open."""

    def __init__(self):
        self.logs, self.steps, self.bar_end, self.progress = [], [], None, None

    def on_log(self, args, state, control, logs=None, **kw):
        self.logs.append(dict(logs))

    def on_step_end(self, args, state, control, **kw):
        self.steps.append((state.global_step, state.max_steps))

    def on_train_end(self, args, state, control, **kw):
        bar = self.progress.training_bar
        self.bar_end = (bar.n, bar.total)


def shrinking_run(out, resume_from=None, **kw):
    ds = PruningDataset(ToyText(N))
    sampler = WeightedBucketSampler(
        ds, InfoBatchPolicy(anneal_fraction=0.0), num_epochs=EPOCHS, seed=0, shard=False
    )
    watch = Watch()
    kw.setdefault("save_strategy", "no")
    args = TrainingArguments(
        str(out),
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=BS,
        learning_rate=1e-3,
        report_to=[],
        use_cpu=True,
        logging_strategy="epoch",
        disable_tqdm=False,
        **kw,
    )
    trainer = GekoTrainer(
        model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler, callbacks=[watch]
    )
    watch.progress = next(
        c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)
    )
    output = trainer.train(resume_from_checkpoint=resume_from)
    return trainer, sampler, watch, output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress")
    return (out, *shrinking_run(out, save_strategy="epoch"))


def records(logs):
    return [entry for entry in logs if "gekodata/epoch" in entry]


def test_progress_ends_at_the_true_step_count(run):
    _, trainer, sampler, watch, _ = run
    planned = [r.planned for r in sampler.efficiency_report().epochs]
    assert planned[-1] < planned[0]  # the epochs shrank
    updates = [math.ceil(p / BS) for p in planned]
    total = sum(updates)
    assert trainer.state.global_step == total
    assert trainer.state.max_steps == total  # was EPOCHS * full epoch: the run looked aborted
    assert watch.bar_end == (total, total)  # the bar closes at n/n
    # during the run: exact for the epochs planned, the rest estimated at the current length
    start = 0
    for epoch, n in enumerate(updates):
        for step, max_steps in watch.steps[start : start + n]:
            assert max_steps == start + n * (EPOCHS - epoch) and step <= max_steps
        start += n


def test_per_epoch_records_reach_log_history_and_on_log(run):
    _, trainer, sampler, watch, _ = run
    report = sampler.efficiency_report()
    history = records(trainer.state.log_history)
    assert [h["gekodata/epoch"] for h in history] == list(range(EPOCHS))
    received = records(watch.logs)
    assert [{k: v for k, v in h.items() if k != "step"} for h in history] == received
    for h, r in zip(received, report.epochs):
        assert h["gekodata/planned"] == r.planned and h["gekodata/trained"] == r.reported
        assert h["gekodata/full"] == N and h["gekodata/phase"] == r.phase
        assert h["gekodata/saved"] == pytest.approx(1 - r.reported / N)
        assert sum(v for k, v in h.items() if k.startswith("gekodata/buckets/")) == N
        assert h["epoch"] == pytest.approx(r.epoch + 1)  # Trainer's float epoch at its end
        # the labels travelled with GekoTrainer's reports: the diagnosis is logged from epoch 1
        mislabeled = h.get("gekodata/data/mislabeled_share")
        assert (mislabeled is None) == (r.epoch == 0)
        assert mislabeled is None or mislabeled == r.data["mislabeled_share"]
    # Trainer's own per-epoch loss log is still there (logging_strategy="epoch")
    assert sum("loss" in h for h in trainer.state.log_history) == EPOCHS


def test_samples_per_second_is_counted_from_trained_samples(run):
    _, _, sampler, watch, output = run
    metrics = output.metrics
    trained = sampler.efficiency_report().trained_passes
    assert metrics["gekodata/trained_passes"] == trained < EPOCHS * N
    assert metrics["gekodata/full_data_passes"] == EPOCHS * N
    assert metrics["train_samples_per_second"] == pytest.approx(
        trained / metrics["train_runtime"], rel=1e-3
    )
    assert watch.logs[-1]["train_samples_per_second"] == metrics["train_samples_per_second"]


def test_report_files_in_output_dir(run):
    out, _, sampler, _, _ = run
    report = sampler.efficiency_report()
    assert (out / REPORT_TEXT).read_text().strip() == str(report)
    data = json.loads((out / REPORT_JSON).read_text())
    assert data["trained_passes"] == report.trained_passes
    assert [e["planned"] for e in data["epochs"]] == [r.planned for r in report.epochs]
    pytest.importorskip("matplotlib")
    assert (out / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_logs_each_epoch_once_and_counts_this_call(run, tmp_path):
    out, ref_trainer, _, _, _ = run
    first = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[0]
    shutil.copytree(first, tmp_path / first.name)  # saved at the end of epoch 0
    trainer, sampler, watch, output = shrinking_run(
        tmp_path, resume_from=str(tmp_path / first.name)
    )
    history = records(trainer.state.log_history)
    assert [h["gekodata/epoch"] for h in history] == list(range(EPOCHS))  # 0 from the checkpoint
    assert [h["gekodata/epoch"] for h in records(watch.logs)] == [1, 2]
    assert history == records(ref_trainer.state.log_history)
    report = sampler.efficiency_report()
    assert output.metrics["gekodata/trained_passes"] == report.trained_passes - N
    assert watch.bar_end[0] == watch.bar_end[1] == trainer.state.global_step


def test_only_the_main_process_writes_the_report(tmp_path):
    ds = PruningDataset(ToyText(16))
    sampler = WeightedBucketSampler(ds, num_epochs=1, seed=0, shard=False)
    args = TrainingArguments(str(tmp_path), num_train_epochs=1, report_to=[], use_cpu=True)
    trainer = GekoTrainer(model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler)
    callback = next(
        c for c in trainer.callback_handler.callbacks if isinstance(c, PlanReportCallback)
    )
    trainer.is_world_process_zero = lambda: False
    callback.on_train_end(args, trainer.state, trainer.control)
    assert not any(tmp_path.iterdir())
    trainer.is_world_process_zero = lambda: True
    callback.on_train_end(args, trainer.state, trainer.control)
    assert (tmp_path / REPORT_TEXT).exists() and (tmp_path / REPORT_JSON).exists()


def test_an_epoch_without_reports_claims_no_savings():
    ds = PruningDataset(ToyText(8))
    sampler = WeightedBucketSampler(ds, num_epochs=1, seed=0, shard=False)
    logs = epoch_logs(sampler.epoch_record)  # planned 8, nothing reported
    assert logs["gekodata/planned"] == 8 and logs["gekodata/trained"] == 0
    assert "gekodata/saved" not in logs


def test_writing_the_png_keeps_the_matplotlib_backend(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    ds = PruningDataset(ToyText(8))
    sampler = WeightedBucketSampler(ds, num_epochs=1, seed=0, shard=False)
    before = matplotlib.get_backend()
    plt.switch_backend("svg")  # stands for a notebook's inline backend
    try:
        assert (tmp_path / REPORT_PNG).name in {
            os.path.basename(p) for p in write_report(sampler.efficiency_report(), tmp_path)
        }
        assert matplotlib.get_backend() == "svg"
    finally:
        plt.switch_backend(before)
