"""Selective backward: train on the hardest rows of each batch, and only pay backward for them.

Unlike token gating (:mod:`gekodata.gating.tokens`), this saves real compute: the rows that are not kept
never enter the graph, so neither their forward-with-grad nor their backward is computed. It is
Selective Backprop (Jiang et al. 2019; Composer's ``SelectiveBackprop``). The gradient of the
loss over the kept rows is exactly the gradient of the full-batch loss restricted to those rows:
nothing is approximated, only fewer rows are trained on.

Two usage shapes
----------------
1. **Scoring forward, then a grad forward on the subset.** One extra no-grad forward over the
   whole batch ranks the rows; the training forward and backward run on the kept rows only::

       from gekodata.gating.selective import SelectiveBackprop, subset_batch
       from gekodata.signals import causal_lm_signals

       sb = SelectiveBackprop(keep_fraction=0.5, strategy="topk")
       for batch in loader:
           with torch.no_grad(), sb.timer("scoring"):
               logits = model(batch["input_ids"]).logits
               scores, _, _ = causal_lm_signals(logits, batch["labels"])   # per-sample loss [B]
           rows = sb.select(scores)                                         # LongTensor [k]
           sub = subset_batch(batch, rows)
           with sb.timer("training"):
               loss, conf, correct = causal_lm_signals(model(sub["input_ids"]).logits, sub["labels"])
               loss.mean().backward()
               opt.step(); opt.zero_grad()

   Cost in forward-units per sample (forward = 1, backward = 2): ``B * 1 + k * 3`` against
   ``B * 3`` for the full batch, i.e. a saving only for ``keep_fraction < 2/3`` (at 0.5: 2.5/3,
   17% fewer FLOPs; at 0.25: 1.75/3, 42% fewer). With a frozen base (LoRA) a backward costs
   about one forward, so the break-even is ``keep_fraction < 1/2``: measured on SmolLM2-135M LoRA
   (``benchmarks/tokens.py``), keep 0.5 with a scoring pass saved nothing. A no-grad forward also
   stores no activations.

2. **No scoring pass: rank by gekodata's stored loss EMA.** Rows carry their dataset index
   (``PruningDataset`` puts it in ``batch["idx"]``); the store already holds each sample's loss
   EMA from earlier reports, so ranking is free (stale by up to one visit)::

       rows = sb.select_from_store(sampler.store, batch["idx"])   # unseen samples rank first
       sub = subset_batch(batch, rows)
       loss, conf, correct = causal_lm_signals(model(sub["input_ids"]).logits, sub["labels"])
       loss.mean().backward()
       sampler.report(loss.detach(), conf, correct, idx=sub["idx"])

   Cost: ``k * 3`` forward-units against ``B * 3``. Only the kept rows get fresh reports.

:meth:`SelectiveBackprop.cost_summary` reports the analytic FLOP units next to the measured
seconds (if you time the passes with :meth:`SelectiveBackprop.timer` or
:meth:`SelectiveBackprop.record_time`), so a claimed saving can be checked against the clock.

The pure functions (:func:`select_rows`, :func:`importance_weights`, :func:`subset_batch`,
:func:`store_scores`, ...) live in :mod:`gekodata.gating.rows`, whose docstring also explains the
unbiased weighting that :meth:`SelectiveBackprop.importance_weights` applies; they are importable
from here too.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from .common import private_generator
from .rows import (
    ROW_STRATEGIES,
    check_fraction,
    importance_weights,
    inclusion_probabilities,
    num_kept,
    select_rows,
    store_scores,
    subset_batch,
)


# --------------------------------------------------------------------------- loop helper
class SelectiveBackprop:
    """Row selection for the training loop, with counters that say what it really cost.

    Args:
        keep_fraction: share of each batch that gets forward-with-grad and backward, in (0, 1].
        strategy: ``"topk"``, ``"random"`` or ``"weighted"`` (see :func:`select_rows`).
        generator: private RNG for the random strategies.

    Counters (plain ints/floats, cumulative): ``steps``, ``samples_seen`` (rows in the batches
    handed to :meth:`select`), ``samples_scored`` (rows that went through a scoring forward),
    ``samples_backpropagated`` (kept rows), ``scoring_seconds``, ``training_seconds``.
    """

    def __init__(
        self,
        keep_fraction: float,
        strategy: str = "topk",
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.keep_fraction = check_fraction(keep_fraction)
        if strategy not in ROW_STRATEGIES:
            raise ValueError(f"strategy must be one of {ROW_STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.generator = private_generator(generator) if strategy != "topk" else generator
        self.steps = 0
        self.samples_seen = 0
        self.samples_scored = 0
        self.samples_backpropagated = 0
        self.scoring_seconds = 0.0
        self.training_seconds = 0.0
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def select(self, scores: torch.Tensor, *, scoring_pass: bool = True) -> torch.Tensor:
        """Rows to train on for this batch (int64 [k], increasing).

        Args:
            scores: float [B], higher = harder (see :func:`select_rows`).
            scoring_pass: whether the scores came from an extra forward over the batch (counts
                ``B`` scored samples). False when they come for free (store EMA, an earlier pass).
        """
        rows = select_rows(scores, self.keep_fraction, self.strategy, generator=self.generator)
        b = int(scores.shape[0])
        self.steps += 1
        self.samples_seen += b
        if scoring_pass:
            self.samples_scored += b
        self.samples_backpropagated += int(rows.numel())
        self._last = (scores.detach(), rows)
        return rows

    def select_from_store(self, store: Any, idx: Any) -> torch.Tensor:
        """:meth:`select` on :func:`store_scores` (no scoring pass is counted)."""
        return self.select(store_scores(store, idx), scoring_pass=False)

    def importance_weights(self) -> torch.Tensor:
        """Unbiased loss weights [k] for the rows of the last :meth:`select` (see
        :func:`~gekodata.gating.rows.importance_weights`)."""
        if self._last is None:
            raise ValueError("call select() first")
        scores, rows = self._last
        return importance_weights(scores, rows, self.keep_fraction, self.strategy)

    def record_time(self, scoring: float = 0.0, training: float = 0.0) -> None:
        """Add measured seconds of scoring passes and of training (forward+backward) passes."""
        scoring, training = float(scoring), float(training)
        if not (
            scoring >= 0.0
            and training >= 0.0
            and math.isfinite(scoring)
            and math.isfinite(training)
        ):
            raise ValueError(
                f"seconds must be finite and >= 0, got scoring={scoring}, training={training}"
            )
        self.scoring_seconds += scoring
        self.training_seconds += training

    @contextlib.contextmanager
    def timer(self, phase: str, device: torch.device | str | None = None) -> Iterator[None]:
        """Time a block as ``"scoring"`` or ``"training"`` and add it to the counters.

        With a CUDA ``device`` the block is bracketed by ``torch.cuda.synchronize`` so that the
        asynchronous kernels are counted (this syncs the host: use it for measurement runs).
        """
        if phase not in ("scoring", "training"):
            raise ValueError(f"phase must be 'scoring' or 'training', got {phase!r}")
        dev = torch.device(device) if device is not None else None
        cuda = dev is not None and dev.type == "cuda"
        if cuda:
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(dev)
            elapsed = time.perf_counter() - t0
            self.record_time(**{phase: elapsed})

    def cost_summary(self, backward_cost: float = 2.0) -> dict[str, float]:
        """Analytic cost next to measured time.

        FLOP units: a forward is 1 unit per sample and a backward ``backward_cost`` units (2 for
        full training, where weight and input gradients each cost about a forward; about 1 when
        the base is frozen, e.g. LoRA, where only input gradients flow through it). A full-batch
        step costs ``(1 + backward_cost) * samples_seen`` and selective backprop ``samples_scored
        + (1 + backward_cost) * samples_backpropagated``, so with a scoring pass it saves only
        when ``keep_fraction < backward_cost / (1 + backward_cost)`` (2/3 for full training, 1/2
        under LoRA). ``flop_ratio`` < 1 means a real saving; the seconds show whether the
        hardware agreed (small sub-batches use an accelerator less efficiently).
        """
        if not (math.isfinite(backward_cost) and backward_cost >= 0):
            raise ValueError(f"backward_cost must be finite and >= 0, got {backward_cost}")
        step = 1.0 + float(backward_cost)
        full = step * self.samples_seen
        selective = float(self.samples_scored) + step * self.samples_backpropagated
        return {
            "steps": float(self.steps),
            "samples_seen": float(self.samples_seen),
            "samples_scored": float(self.samples_scored),
            "samples_backpropagated": float(self.samples_backpropagated),
            "kept_fraction": self.samples_backpropagated / self.samples_seen
            if self.samples_seen
            else 0.0,
            "flop_units_full": full,
            "flop_units_selective": selective,
            "flop_ratio": selective / full if full else 0.0,
            "backward_cost": float(backward_cost),
            "scoring_seconds": self.scoring_seconds,
            "training_seconds": self.training_seconds,
            "total_seconds": self.scoring_seconds + self.training_seconds,
        }

    def reset(self) -> None:
        """Zero the counters."""
        self.steps = self.samples_seen = self.samples_scored = self.samples_backpropagated = 0
        self.scoring_seconds = self.training_seconds = 0.0
        self._last = None

    def state_dict(self) -> dict[str, Any]:
        """Counters and the generator state, for checkpoints."""
        state: dict[str, Any] = {
            key: getattr(self, key)
            for key in (
                "steps",
                "samples_seen",
                "samples_scored",
                "samples_backpropagated",
                "scoring_seconds",
                "training_seconds",
            )
        }
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        for key in ("steps", "samples_seen", "samples_scored", "samples_backpropagated"):
            setattr(self, key, int(state[key]))
        for key in ("scoring_seconds", "training_seconds"):
            setattr(self, key, float(state[key]))
        if "generator" in state and self.generator is not None:
            self.generator.set_state(state["generator"])


__all__ = [
    "SelectiveBackprop",
    "importance_weights",
    "inclusion_probabilities",
    "num_kept",
    "select_rows",
    "store_scores",
    "subset_batch",
]
