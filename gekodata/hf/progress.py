"""What a Trainer user sees of a gekodata run: an honest step count, one record per epoch in the
logs, and the efficiency report in the output folder. Shared by every gekodata trainer
(:class:`~gekodata.hf.GekoTrainer`, :class:`~gekodata.hf.GekoSFTTrainer`,
:class:`~gekodata.hf.GekoGRPOTrainer`) through :class:`PlanReportMixin` and :class:`PlanReportCallback`.

* **Steps and the progress bar.** Trainer prints "Total optimization steps = T" and sizes its
  progress bar for ``T = num_train_epochs * F`` optimizer steps, ``F`` from the first (full)
  epoch; gekodata's later epochs are shorter, so a finished run would stop at e.g. 57/75. Once an
  epoch is planned, ``state.max_steps`` becomes the steps taken before it + its own (exact) step
  count x the epochs left including it (the remaining epochs estimated as long as the current
  one), and the progress bar's total follows. The last epoch's total is exact: a finished run
  ends at n/n. (Trainer's "Total optimization steps" line is printed before any plan and keeps
  ``T``.) The LR schedule does not use ``max_steps``: it follows plan progress
  (:mod:`gekodata.hf.schedule`).
* **Per-epoch records.** At each epoch's end the sampler folds the epoch's reports (a sync point,
  every process) and its record goes through ``transformers.Trainer.log``: into
  ``state.log_history`` and to every callback's ``on_log`` (``report_to`` integrations, the
  progress bar's printout). Keys: :func:`epoch_logs`. ``Trainer.log`` itself is called, not an
  override of a subclass (TRL's trainers drain their own metric buffers in theirs).
* **Counted throughput.** Trainer's ``train_samples_per_second`` is
  ``num_train_epochs x len(train_dataset)`` x (steps run / ``max_steps``) / runtime: an estimate
  from full epochs. The final training metrics here count instead: sample passes actually
  trained in this ``train()`` call (reported to the sampler; prompts for GRPO) / runtime, with
  ``gekodata/trained_passes``, ``gekodata/full_data_passes`` and ``gekodata/fraction_saved``
  (whole run) beside it.
* **Report files.** At the end of training the main process writes :data:`REPORT_TEXT`,
  :data:`REPORT_JSON` and, where matplotlib is installed, :data:`REPORT_PNG` into
  ``args.output_dir`` (``sampler.efficiency_report()``, ``to_dict()``, ``plot()``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from typing import TYPE_CHECKING, Any

from ..diagnostics.efficiency import EfficiencyReport
from ..planning.record import EpochRecord
from ..store.files import atomic_write

try:  # the callback needs transformers; importing this module does not
    from transformers import TrainerCallback as _Callback
except ImportError:  # pragma: no cover
    _Callback = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:  # the mixin is type-checked as the Trainer it extends
    from transformers import Trainer as _MixinBase

    from ..sampler.weighted_bucket import WeightedBucketSampler
else:
    _MixinBase = object

REPORT_TEXT = "gekodata_report.txt"
REPORT_JSON = "gekodata_report.json"
REPORT_PNG = "gekodata_report.png"
PREFIX = "gekodata/"


def epoch_logs(record: EpochRecord) -> dict[str, Any]:
    """One epoch's record as log values (sample passes, except ``saved``: a share in [0, 1]).

    ``gekodata/epoch`` (0-based), ``phase`` (the curriculum phase's name, a string), ``planned``,
    ``trained`` (passes reported), ``full`` (the dataset's size: a full-data epoch), ``saved``
    (``1 - trained / full``; left out when the epoch planned draws and none was reported: then
    nothing can be said about savings), ``pruned``, ``buckets/<name>`` (samples per bucket at
    planning), with a forgetting audit ``audit_trained`` and ``audit_unfrozen``, and what the run
    said about its data when the epoch was planned (``data/mislabeled_share``,
    ``data/still_learning_share``, ``data/learned_at_once_share``, where known).
    """
    logs: dict[str, Any] = {
        f"{PREFIX}epoch": record.epoch,
        f"{PREFIX}phase": record.phase,
        f"{PREFIX}planned": record.planned,
        f"{PREFIX}trained": record.reported,
        f"{PREFIX}full": record.num_samples,
    }
    if record.num_samples and (record.reported or not record.planned):
        logs[f"{PREFIX}saved"] = 1.0 - record.reported / record.num_samples
    logs[f"{PREFIX}pruned"] = record.pruned
    for name, count in record.buckets.items():
        logs[f"{PREFIX}buckets/{name.lower()}"] = int(count)
    if record.audit_planned:
        logs[f"{PREFIX}audit_trained"] = record.audit_reported
        logs[f"{PREFIX}audit_unfrozen"] = record.audit_unfrozen
    for key in ("mislabeled_share", "still_learning_share", "learned_at_once_share"):
        value = (record.data or {}).get(key)
        if value is not None:  # the diagnosis as of the epoch's plan (labels needed for the first)
            logs[f"{PREFIX}data/{key}"] = float(value)
    return logs


def write_report(report: EfficiencyReport, folder: str | os.PathLike) -> list[str]:
    """Write ``report`` into ``folder`` (made if missing): :data:`REPORT_TEXT` (``str(report)``),
    :data:`REPORT_JSON` (``report.to_dict()``) and, if matplotlib is installed, :data:`REPORT_PNG`
    (``report.plot``). Text and JSON are written atomically. Returns the paths written."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    text, data = os.path.join(folder, REPORT_TEXT), os.path.join(folder, REPORT_JSON)
    atomic_write(text, (str(report) + "\n").encode())
    atomic_write(data, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    written = [text, data]
    if report.epochs and importlib.util.find_spec("matplotlib") is not None:
        png = os.path.join(folder, REPORT_PNG)
        tmp = os.path.join(folder, f".{os.getpid()}.{REPORT_PNG}")  # keeps the .png suffix
        try:
            _plot_keeping_backend(report, tmp)
            os.replace(tmp, png)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        written.append(png)
    return written


def _plot_keeping_backend(report: EfficiencyReport, path: str) -> None:
    """``report.plot(path)``, then the matplotlib backend the process had selected is restored
    (``plot`` selects Agg; a notebook's inline backend must survive the end of training)."""
    import matplotlib

    try:
        before = matplotlib.get_backend(auto_select=False)
    except TypeError:  # matplotlib < 3.10: the setting, read without resolving it
        raw = dict.__getitem__(matplotlib.rcParams, "backend")
        before = raw if isinstance(raw, str) else None
    try:
        report.plot(path)
    finally:
        if before is not None and matplotlib.get_backend() != before:
            import matplotlib.pyplot as plt

            plt.switch_backend(before)


def resize_progress_bars(callbacks: list[Any], total: int) -> None:
    """Set the total of the training progress bar of Trainer's progress callbacks to ``total``
    optimizer steps: ``ProgressCallback.training_bar`` (tqdm) and
    ``NotebookProgressCallback.training_tracker`` (Jupyter). Others are left alone."""
    for callback in callbacks:
        bar = getattr(callback, "training_bar", None)
        if bar is not None and hasattr(bar, "total"):
            bar.total = total
            bar.refresh()
        tracker = getattr(callback, "training_tracker", None)
        if tracker is not None and hasattr(tracker, "total"):
            tracker.total = total


def _run_figures(report: EfficiencyReport, trained_before: int) -> dict[str, Any]:
    """The run's totals for the final training metrics: passes trained in this call, full-data
    passes and the fraction saved over every epoch recorded (left out if nothing was reported)."""
    figures: dict[str, Any] = {
        f"{PREFIX}trained_passes": report.trained_passes - trained_before,
        f"{PREFIX}full_data_passes": report.full_data_passes,
    }
    if report.trained_passes:
        figures[f"{PREFIX}fraction_saved"] = report.fraction_saved
    return figures


class PlanReportMixin(_MixinBase):
    """The honest step count and counted throughput of :mod:`gekodata.hf.progress` for a gekodata
    trainer. Needs ``self.gekodata_sampler``; the trainer calls :meth:`_geko_plan_steps` once an
    epoch is planned and adds a :class:`PlanReportCallback`. Put it before the ``Trainer`` class
    in the bases."""

    gekodata_sampler: WeightedBucketSampler
    _geko_trained_before: int = 0

    def _geko_plan_steps(self, epoch: int, epoch_start: int, updates: int) -> None:
        """Epoch ``epoch`` (0-based) has ``updates`` optimizer steps starting at global step
        ``epoch_start``: ``state.max_steps`` and the progress bar become those steps + the
        epochs left, each estimated at ``updates``."""
        left = max(self.gekodata_sampler.num_epochs - int(epoch) - 1, 0)
        self.state.max_steps = int(epoch_start) + int(updates) * (1 + left)
        resize_progress_bars(self.callback_handler.callbacks, self.state.max_steps)

    def log(self, logs: dict[str, Any], start_time: float | None = None) -> None:
        """The base ``log``; Trainer's final training metrics get the counted sample throughput
        and the run's totals (module docstring)."""
        if "train_samples_per_second" in logs and logs.get("train_runtime"):
            report = self.gekodata_sampler.efficiency_report()
            figures = _run_figures(report, self._geko_trained_before)
            logs["train_samples_per_second"] = round(
                figures[f"{PREFIX}trained_passes"] / logs["train_runtime"], 3
            )
            logs.update(figures)
        super().log(logs, start_time)


class PlanReportCallback(_Callback):  # type: ignore[misc,valid-type]
    """Per-epoch records to the logs and the report files at the end (module docstring).

    Runs on every process: the epoch-end fold is a sync point; only the main process writes files.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # after a resume restored the sampler: count only what this train() call trains
        report = self.trainer.gekodata_sampler.efficiency_report()
        self.trainer._geko_trained_before = report.trained_passes

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers import Trainer

        sampler = self.trainer.gekodata_sampler
        sampler.flush()  # the epoch's reports, of every process, into its record
        should_log = control.should_log  # on_log clears it: keep Trainer's own epoch-end log
        Trainer.log(self.trainer, epoch_logs(sampler.epoch_record))
        control.should_log = should_log

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        sampler = self.trainer.gekodata_sampler
        sampler.flush()
        if self.trainer.is_world_process_zero():
            write_report(sampler.efficiency_report(), args.output_dir)


__all__ = [
    "REPORT_JSON",
    "REPORT_PNG",
    "REPORT_TEXT",
    "PlanReportCallback",
    "PlanReportMixin",
    "epoch_logs",
    "resize_progress_bars",
    "write_report",
]
