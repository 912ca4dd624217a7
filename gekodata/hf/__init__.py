"""Hugging Face glue: :class:`GekoTrainer` for ``transformers.Trainer``, :class:`GekoSFTTrainer` for
TRL's ``SFTTrainer``, and helpers for accelerate loops.

* :mod:`gekodata.hf.loaders`: :func:`sampler_of` and :func:`report_batch` for any (accelerate-prepared)
  DataLoader loop, without Trainer.
* :mod:`gekodata.hf.signals`: :func:`per_sample_signals` from a model's logits and labels.
* :mod:`gekodata.hf.trainer`: :class:`GekoTrainer` and :class:`GekoTrainerMixin` (for other
  ``Trainer`` subclasses); :mod:`gekodata.hf.checkpoint` its checkpoint files :data:`SAMPLER_FILE`,
  :data:`TRAINER_FILE`; :mod:`gekodata.hf.schedule` the LR schedule by plan progress;
  :mod:`gekodata.hf.compat` the tested transformers / trl ranges, enforced at construction.
* :mod:`gekodata.hf.sft`: :class:`GekoSFTTrainer` (imported on first use: it imports trl).

Importing this package needs neither transformers (``GekoTrainer`` then raises ``ImportError``
when built) nor accelerate nor trl.
"""
from .checkpoint import SAMPLER_FILE, TRAINER_FILE
from .loaders import report_batch, sampler_of
from .signals import per_sample_signals
from .trainer import GekoTrainer, GekoTrainerMixin

__all__ = ["SAMPLER_FILE", "TRAINER_FILE", "GekoTrainer", "GekoTrainerMixin",
           "per_sample_signals", "report_batch", "sampler_of"]


def __getattr__(name):  # GekoSFTTrainer without importing trl with gekodata.hf
    if name == "GekoSFTTrainer":
        from .sft import GekoSFTTrainer

        return GekoSFTTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
