"""Hugging Face glue: :class:`GekoTrainer` for ``transformers.Trainer`` and helpers for accelerate loops.

* :mod:`gekodata.hf.loaders`: :func:`sampler_of` and :func:`report_batch` for any (accelerate-prepared)
  DataLoader loop, without Trainer.
* :mod:`gekodata.hf.signals`: :func:`per_sample_signals` from a model's logits and labels.
* :mod:`gekodata.hf.trainer`: :class:`GekoTrainer` (``transformers >= 5``) and its checkpoint file
  names :data:`SAMPLER_FILE`, :data:`TRAINER_FILE`.
* :mod:`gekodata.hf.grpo`: :class:`GekoGRPOTrainer` (TRL's ``GRPOTrainer`` on a prompt plan, trl
  1.16) and :func:`with_prompt_index`; :mod:`gekodata.hf.grpo_sampler`: :class:`GroupedPlanSampler`.
  Imported on first use (they import trl).
* :mod:`gekodata.hf.schedule`: :class:`PlanProgressLR` (the LR schedule by progress through the
  plans); :mod:`gekodata.hf.resume`: the checkpoint files and the resume point read from them.

Importing this package does not need transformers (``GekoTrainer`` then raises ``ImportError`` when
built) nor accelerate.
"""
from .loaders import report_batch, sampler_of
from .signals import per_sample_signals
from .trainer import SAMPLER_FILE, TRAINER_FILE, GekoTrainer

_LAZY = {"GekoGRPOTrainer": "grpo", "with_prompt_index": "grpo", "GroupedPlanSampler": "grpo_sampler"}


def __getattr__(name: str):
    """The GRPO names, imported on first use (``gekodata.hf.grpo`` imports trl)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SAMPLER_FILE", "TRAINER_FILE", "GekoGRPOTrainer", "GekoTrainer", "GroupedPlanSampler",
           "per_sample_signals", "report_batch", "sampler_of", "with_prompt_index"]
