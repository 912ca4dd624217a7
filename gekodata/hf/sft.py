"""GekoSFTTrainer: TRL's ``SFTTrainer`` trained on a gekodata plan (:class:`GekoTrainerMixin` + ``SFTTrainer``).

::

    raw = datasets.Dataset.from_list([{"text": ...}, ...])   # or prompt/completion, messages, input_ids
    ds = PruningDataset(raw)
    sampler = WeightedBucketSampler(ds, num_epochs=3, seed=0, shard=False)
    trainer = GekoSFTTrainer(model=model, args=SFTConfig(out, num_train_epochs=3), train_dataset=ds,
                             processing_class=tokenizer, sampler=sampler)      # instead of SFTTrainer(...)
    trainer.train()

Everything :mod:`gekodata.hf.trainer` says holds (plan per epoch, shrinking epochs with the LR
schedule by plan progress, sampler state in checkpoints, resume). What SFT adds:

* **Rows keep their index through SFT's preparation.** ``SFTTrainer`` formats, tokenizes,
  truncates, may shuffle (``shuffle_dataset``) and drops examples that truncation left without a
  target. The raw dataset gets a column :data:`ROW_COLUMN` (0 .. N-1) before, which ``map`` and
  ``filter`` carry along; afterwards ``ds.dataset`` is replaced by :class:`PreparedRows`, the
  prepared rows read by the index of the example each came from, so ``ds[i]`` is example ``i``
  tokenized and the sampler's indices stay those of ``raw``. Examples SFT dropped: ``ValueError``
  naming them (remove them before building the sampler).
* **Packing is refused** (``packing=True``, ``padding_free=True``): a packed row holds several
  examples, so no per-sample signal could be reported for any of them.
* **The index through the collator.** SFT's ``DataCollatorForLanguageModeling`` keeps only the
  model's inputs; it is wrapped in :class:`CarryIndex`, which adds the index (and loss weight) of
  the examples to the batch after checking that the batch has one row per example. A custom
  ``data_collator`` is not wrapped: it must keep ``"idx"`` itself (checked at ``train()`` start).
* **Signals without logits.** SFT computes its loss with a fused LM head that never builds the
  ``[B, T, V]`` logits. GekoSFTTrainer calls ``SFTTrainer.compute_loss`` unchanged (its loss, its
  metrics) and reads the per-token log-probabilities, top-1 hits and label mask of that same forward
  (a forward hook): per-sample mean NLL, mean target-token probability, and correct = every target
  token is the top-1 prediction, as ``causal_lm_signals`` computes them from logits. ``signals``
  must be None (or ``"causal_lm"``).
* **Loss weights** (``unbiased=True``, ``InfoBatchPolicy``): the loss becomes SFT's NLL with each
  sample's token losses times its weight, normalised as SFT normalises (``num_items_in_batch``, the
  process count); equal to SFT's loss at weight 1. This needs SFT's plain NLL:
  ``loss_type="dft"``, ``compute_loss_func``, label smoothing or an MoE aux loss with a weighted
  sampler are refused.

Text datasets only (a vision dataset is untested). Needs ``trl`` in the range
:data:`gekodata.hf.compat.TESTED` names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..dataset import PruningDataset
from ..sampler.weighted_bucket import WeightedBucketSampler
from ..signals import Signals
from .trainer import GekoTrainerMixin

try:  # GekoSFTTrainer needs trl; importing this module does not
    from trl import SFTTrainer as _SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling as _LMCollator
except ImportError:  # pragma: no cover
    _SFTTrainer = object  # type: ignore[assignment,misc]
    _LMCollator = None  # type: ignore[assignment,misc]

ROW_COLUMN = "gekodata_row"


class PreparedRows(Dataset):
    """SFTTrainer's prepared rows, read by the index of the raw example each came from.

    ``source``: the raw ``datasets.Dataset`` (N rows); ``prepared``: what SFT made of it, with the
    :data:`ROW_COLUMN` column. Raises ``ValueError`` if the column is gone or examples are missing.
    """

    def __init__(self, source: Any, prepared: Any) -> None:
        n = len(source)
        if ROW_COLUMN not in prepared.column_names:
            raise ValueError(
                f"SFTTrainer's prepared training set lost the {ROW_COLUMN!r} column gekodata added "
                f"(columns: {prepared.column_names}), so its rows cannot be matched to examples"
            )
        rows = np.asarray(prepared.with_format("numpy")[ROW_COLUMN], dtype=np.int64).reshape(-1)
        counts = np.bincount(rows, minlength=n) if rows.size else np.zeros(n, dtype=np.int64)
        if rows.size and (rows.min() < 0 or len(counts) > n or counts.max() > 1):
            raise ValueError(
                "SFTTrainer's prepared training set does not hold each example at most once "
                "(packed or duplicated rows): per-sample indices cannot follow it"
            )
        missing = np.flatnonzero(counts == 0)
        if missing.size:
            raise ValueError(
                f"SFTTrainer dropped {missing.size} of {n} examples while preparing them (left without any "
                f"target token by truncation to max_length): indices {missing[:20].tolist()}"
                f"{' ...' if missing.size > 20 else ''}. gekodata's plan would draw samples that no longer "
                "exist: remove them from the dataset before building the PruningDataset and the sampler "
                "(raw.select(...)), or raise max_length / use truncation_mode='keep_end'"
            )
        self.source = source
        self.prepared = prepared.remove_columns(ROW_COLUMN)
        self.positions = np.empty(n, dtype=np.int64)
        self.positions[rows] = np.arange(rows.size)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.prepared[int(self.positions[int(index)])]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A batch in one Arrow read (PruningDataset's batched fetching uses it)."""
        return self.prepared.__getitems__(
            self.positions[np.asarray(indices, dtype=np.int64)].tolist()
        )


class CarryIndex:
    """Wraps a collator that drops unknown keys: adds the examples' index (and weight) to its batch.

    Only for collators that return one row per example, in order (SFT's
    ``DataCollatorForLanguageModeling`` without padding-free); the row count is checked.
    """

    def __init__(self, collator: Any, keys: tuple[str, ...]) -> None:
        self.collator, self.keys = collator, tuple(keys)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(features)
        carried = [k for k in self.keys if features and k in features[0] and k not in batch]
        if not carried:
            return batch
        for name, value in batch.items():
            if (
                isinstance(value, torch.Tensor)
                and value.dim() >= 1
                and value.shape[0] != len(features)
            ):
                raise ValueError(
                    f"the collator made {value.shape[0]} rows of {name!r} from {len(features)} "
                    "examples (packing, padding-free?): their indices cannot be attached"
                )
        for key in carried:
            values = [f[key] for f in features]
            batch[key] = torch.tensor(
                values, dtype=torch.int64 if key == self.keys[0] else torch.float64
            )
        return batch


def fused_signals(output: Any) -> tuple[torch.Tensor, torch.Tensor, Signals]:
    """(NLL sum per sample [B] differentiable, label mask [B, T-1], signals) from a
    ``FusedCausalLMOutput`` (per-token ``log_probs``, ``is_top1``, ``label_mask``)."""
    if output.is_top1 is None:
        raise RuntimeError(
            "SFTTrainer's fused LM head returned no is_top1: correctness cannot be computed"
        )
    log_probs, mask = output.log_probs.float(), output.label_mask
    maskf = mask.to(log_probs.dtype)
    targets = maskf.sum(dim=1)
    nll = -(log_probs * maskf).sum(dim=1)
    loss = nll / targets.clamp(min=1.0)
    with torch.no_grad():
        prob = (log_probs.detach().exp() * maskf).sum(dim=1) / targets.clamp(min=1.0)
        conf = torch.where(targets > 0, prob, torch.ones_like(prob))
        correct = (output.is_top1.bool() | ~mask.bool()).all(dim=1)
    return nll, mask, Signals(loss, conf, correct)


class GekoSFTTrainer(GekoTrainerMixin, _SFTTrainer):  # type: ignore[misc,valid-type]
    """TRL's ``SFTTrainer`` on a gekodata plan; see the module docstring.

    ``train_dataset``: a :class:`PruningDataset` over a ``datasets.Dataset`` (by keyword);
    ``sampler``: the :class:`WeightedBucketSampler` over it; ``signals``: None or ``"causal_lm"``.
    """

    _gekodata_packages = ("transformers", "trl")

    def __init__(
        self, *args: Any, sampler: WeightedBucketSampler, signals: Any = None, **kwargs: Any
    ) -> None:
        if _SFTTrainer is object:  # pragma: no cover
            raise ImportError("GekoSFTTrainer needs trl: pip install 'gekodata[trl]'")
        if len(args) > 2:
            raise TypeError(
                "pass GekoSFTTrainer's arguments after model and args by keyword (train_dataset=...)"
            )
        if signals not in (None, "causal_lm"):
            raise ValueError(
                "GekoSFTTrainer reads per-sample signals from SFTTrainer's fused LM head (no logits "
                f"are built): signals must be None or 'causal_lm', got {signals!r}"
            )
        config = args[1] if len(args) > 1 else kwargs.get("args")
        if getattr(config, "packing", False) or getattr(config, "padding_free", False):
            raise ValueError(
                "packing=True / padding_free=True put several examples into one row: per-sample "
                "signals and indices cannot follow them. Train GekoSFTTrainer without packing"
            )
        ds = kwargs.get("train_dataset")
        if not isinstance(ds, PruningDataset):
            raise TypeError(
                f"train_dataset is a {type(ds).__name__}: pass gekodata.PruningDataset(your "
                "datasets.Dataset) and build the sampler over it"
            )
        import datasets

        source = ds.dataset.source if isinstance(ds.dataset, PreparedRows) else ds.dataset
        if not isinstance(source, datasets.Dataset):
            raise TypeError(
                f"GekoSFTTrainer's PruningDataset must wrap a datasets.Dataset (SFTTrainer prepares "
                f"it), got {type(source).__name__}"
            )
        if ROW_COLUMN in source.column_names:
            raise ValueError(
                f"the dataset already has a column {ROW_COLUMN!r}: gekodata uses that name"
            )
        self._geko_source, self._geko_pruning = source, ds
        kwargs["train_dataset"] = source.add_column(ROW_COLUMN, list(range(len(source))))
        super().__init__(*args, sampler=sampler, signals=signals, **kwargs)
        lm_collator = _LMCollator is not None and isinstance(self.data_collator, _LMCollator)
        if lm_collator and not getattr(
            self, "padding_free", False
        ):  # one row per example, in order
            self.data_collator = CarryIndex(self.data_collator, self._geko_keys)

    def _geko_adopt(self, train_dataset: Any) -> Any:
        """SFT's prepared rows become ``ds.dataset``; the trainer trains on ``ds``."""
        ds = self._geko_pruning
        ds.dataset = PreparedRows(self._geko_source, train_dataset)
        return ds

    def _geko_check_loss_options(self, sampler: WeightedBucketSampler) -> None:
        weighted = sampler.unbiased or sampler.policy.provides_loss_weights
        if weighted and (
            self.compute_loss_func is not None
            or self.label_smoother is not None
            or getattr(self.args, "loss_type", "nll") != "nll"
            or getattr(self, "aux_loss_enabled", False)
        ):
            raise ValueError(
                "this sampler gives loss weights (unbiased=True / InfoBatchPolicy), which GekoSFTTrainer applies "
                "to SFT's plain NLL; loss_type='dft', compute_loss_func, label smoothing and MoE aux losses are "
                "not supported with them (use an unweighted sampler, or loss_type='nll')"
            )

    def _geko_loss(
        self,
        model,
        inputs: dict[str, Any],
        weight: Any,
        num_items_in_batch: Any,
        return_outputs: bool,
    ) -> tuple[torch.Tensor, Any, Signals]:
        captured: list[Any] = []

        def keep(module, args, output):
            if getattr(output, "log_probs", None) is not None:
                captured.append(output)

        handle = model.register_forward_hook(keep)
        try:
            result = super(GekoTrainerMixin, self).compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        finally:
            handle.remove()
        loss, outputs = result if return_outputs else (result, None)
        if not captured:
            raise RuntimeError(
                "SFTTrainer.compute_loss ran no fused-LM-head forward through the model "
                "(sequence parallelism, a subclass?): GekoSFTTrainer cannot read per-sample signals"
            )
        nll, mask, signals = fused_signals(captured[0])
        if weight is not None:
            w = torch.as_tensor(weight, device=nll.device, dtype=nll.dtype)
            denom = mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = (w * nll).sum() / torch.as_tensor(denom, device=nll.device).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss, outputs, signals


__all__ = ["ROW_COLUMN", "CarryIndex", "GekoSFTTrainer", "PreparedRows", "fused_signals"]
