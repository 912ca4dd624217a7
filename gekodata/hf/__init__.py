"""Hugging Face glue: :class:`GekoTrainer` for ``transformers.Trainer``, :class:`GekoSFTTrainer` for
TRL's ``SFTTrainer``, and helpers for accelerate loops.

* :mod:`gekodata.hf.loaders`: :func:`sampler_of` and :func:`report_batch` for any (accelerate-prepared)
  DataLoader loop, without Trainer.
* :mod:`gekodata.hf.signals`: :func:`per_sample_signals` from a model's logits and labels.
* :mod:`gekodata.hf.trainer`: :class:`GekoTrainer` and :class:`GekoTrainerMixin` (for other
  ``Trainer`` subclasses); :mod:`gekodata.hf.checkpoint` its checkpoint files :data:`SAMPLER_FILE`,
  :data:`TRAINER_FILE`; :mod:`gekodata.hf.schedule` the LR schedule by plan progress;
  :mod:`gekodata.hf.compat` the tested transformers / trl ranges, enforced at construction;
  :mod:`gekodata.hf.progress` what every gekodata trainer tells its user (honest step count,
  per-epoch records in the logs, the efficiency report in ``output_dir``: :func:`write_report`).
* :mod:`gekodata.hf.sft`: :class:`GekoSFTTrainer` (imported on first use: it imports trl).
* :mod:`gekodata.hf.grpo`: :class:`GekoGRPOTrainer` (TRL's ``GRPOTrainer`` on a prompt plan) and
  :func:`with_prompt_index` (imported on first use: they import trl);
  :mod:`gekodata.hf.grpo_sampler`: :class:`GroupedPlanSampler` (needs only torch).

Importing this package needs neither transformers (``GekoTrainer`` then raises ``ImportError``
when built) nor accelerate nor trl.
"""

from .checkpoint import SAMPLER_FILE, TRAINER_FILE
from .grpo_sampler import GroupedPlanSampler
from .loaders import report_batch, sampler_of
from .progress import REPORT_JSON, REPORT_PNG, REPORT_TEXT, write_report
from .signals import per_sample_signals
from .trainer import GekoTrainer, GekoTrainerMixin

__all__ = [
    "REPORT_JSON",
    "REPORT_PNG",
    "REPORT_TEXT",
    "SAMPLER_FILE",
    "TRAINER_FILE",
    "GekoGRPOTrainer",
    "GekoSFTTrainer",
    "GekoTrainer",
    "GekoTrainerMixin",
    "GroupedPlanSampler",
    "per_sample_signals",
    "report_batch",
    "sampler_of",
    "with_prompt_index",
    "write_report",
]

_LAZY = {
    "GekoSFTTrainer": "sft",
    "GekoGRPOTrainer": "grpo",
    "with_prompt_index": "grpo",
}


def __getattr__(name: str):
    """The TRL trainers and :func:`with_prompt_index`, imported on first use (they import trl)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
