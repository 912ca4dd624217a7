"""The ``training_step`` contract: what a LightningModule returns so that gekodata can learn.

``training_step`` returns a dict with Lightning's ``"loss"`` (the scalar to backpropagate) and
:data:`OUTPUT_KEY` = ``geko_outputs(loss, conf, correct, idx)`` (each [B]: per-sample loss >= 0,
confidence in [0, 1], correctness in [0, 1], the batch's ``"idx"``). Lightning detaches the extra
entries and hands the dict to ``on_train_batch_end``, where :class:`~gekodata.lightning.GekoCallback`
reports them. Returning ``None`` skips a batch (nothing reported); any other output without the
key is refused, so a module that forgot the contract fails at its first batch, not silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sampler.report_buffer import unpack_report

OUTPUT_KEY = "gekodata"
FIELDS = ("loss", "conf", "correct", "idx", "pred", "label")


def geko_outputs(
    loss: Any,
    conf: Any = None,
    correct: Any = None,
    idx: Any = None,
    *,
    pred: Any = None,
    label: Any = None,
) -> dict[str, Any]:
    """The value for ``training_step``'s :data:`OUTPUT_KEY`: per-sample signals of one batch, each
    [B] (``loss`` float >= 0, ``conf`` in [0, 1] or None, ``correct`` in [0, 1] or None, ``idx``
    int64 dataset positions, ``pred`` and ``label`` optional predicted and given labels).
    Arguments as for :meth:`~gekodata.WeightedBucketSampler.report`, so ``geko_outputs(signals,
    batch["idx"])`` with :func:`~gekodata.signals.classification_signals`'s result carries its
    labels."""
    loss, conf, correct, idx, pred, label = unpack_report(loss, conf, correct, idx, pred, label)
    if idx is None:
        raise ValueError(
            "geko_outputs: idx is None; pass the batch's sample indices (batch['idx'] from "
            "PruningDataset) so the sampler knows which samples the signals belong to"
        )
    return {
        "loss": loss,
        "conf": conf,
        "correct": correct,
        "idx": idx,
        "pred": pred,
        "label": label,
    }


def signals_of(outputs: Any) -> dict[str, Any] | None:
    """The report arguments in ``training_step``'s output, or None for a skipped batch (``None``).
    ``ValueError``/``TypeError`` naming the output when it breaks the contract."""
    if outputs is None:
        return None
    if not isinstance(outputs, Mapping) or OUTPUT_KEY not in outputs:
        got = (
            f"a dict with keys {sorted(map(str, outputs))}"
            if isinstance(outputs, Mapping)
            else type(outputs).__name__
        )
        raise ValueError(
            f"training_step returned {got}, without {OUTPUT_KEY!r}: GekoCallback needs per-sample "
            f"signals. Return {{'loss': loss.mean(), {OUTPUT_KEY!r}: geko_outputs(loss, conf, correct, "
            "batch['idx'])}} (gekodata.lightning.geko_outputs; loss, conf, correct of shape [B])"
        )
    value = outputs[OUTPUT_KEY]
    if isinstance(value, Mapping):
        unknown = set(value) - set(FIELDS)
        if unknown or "idx" not in value:
            raise ValueError(
                f"training_step's {OUTPUT_KEY!r} has keys {sorted(value)}; expected loss, conf, "
                "correct, idx (and optional pred, label): build it with geko_outputs(signals, idx)"
            )
        return dict(value)
    if isinstance(value, (tuple, list)) and len(value) == 4:
        return dict(zip(FIELDS, value))
    raise TypeError(
        f"training_step's {OUTPUT_KEY!r} is {type(value).__name__}; expected "
        "geko_outputs(loss, conf, correct, idx) or a 4-tuple (loss, conf, correct, idx)"
    )


__all__ = ["FIELDS", "OUTPUT_KEY", "geko_outputs", "signals_of"]
