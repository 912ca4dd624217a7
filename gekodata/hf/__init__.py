"""Hugging Face glue: :class:`GekoTrainer` for ``transformers.Trainer`` and helpers for accelerate loops.

* :mod:`gekodata.hf.loaders`: :func:`sampler_of` and :func:`report_batch` for any (accelerate-prepared)
  DataLoader loop, without Trainer.
* :mod:`gekodata.hf.signals`: :func:`per_sample_signals` from a model's logits and labels.
* :mod:`gekodata.hf.trainer`: :class:`GekoTrainer` (``transformers >= 5``) and its checkpoint file
  names :data:`SAMPLER_FILE`, :data:`TRAINER_FILE`.

Importing this package does not need transformers (``GekoTrainer`` then raises ``ImportError`` when
built) nor accelerate.
"""
from .loaders import report_batch, sampler_of
from .signals import per_sample_signals
from .trainer import SAMPLER_FILE, TRAINER_FILE, GekoTrainer

__all__ = ["SAMPLER_FILE", "TRAINER_FILE", "GekoTrainer", "per_sample_signals", "report_batch", "sampler_of"]
