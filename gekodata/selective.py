"""Selective backward: train on the hardest rows of each batch, and only pay backward for them.

Unlike token gating (:mod:`gekodata.tokens`), this saves real compute: the rows that are not kept
never enter the graph, so neither their forward-with-grad nor their backward is computed. It is
Selective Backprop (Jiang et al. 2019; Composer's ``SelectiveBackprop``). The gradient of the
loss over the kept rows is exactly the gradient of the full-batch loss restricted to those rows:
nothing is approximated, only fewer rows are trained on.

Two usage shapes
----------------
1. **Scoring forward, then a grad forward on the subset.** One extra no-grad forward over the
   whole batch ranks the rows; the training forward and backward run on the kept rows only::

       from gekodata.selective import SelectiveBackprop, subset_batch
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

Unbiased weighting
------------------
Training on the hardest rows changes the objective. With ``strategy="random"`` or ``"weighted"``
every row has a known inclusion probability ``pi_i``, and :func:`importance_weights` returns
``w_i = k / (B * pi_i)`` for the kept rows, so that ``mean(w * loss_kept)`` is the Horvitz-Thompson
estimate of the full-batch mean loss (unbiased over the draw). ``random``: ``pi = k / B``, so
``w = 1``. ``topk`` is deterministic (``pi`` is 0 or 1) and has no unbiased weighting.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from .tokens import private_generator

ROW_STRATEGIES = ("topk", "random", "weighted")


# --------------------------------------------------------------------------- helpers
def _check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return fraction


def _check_scores(scores: Any) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a 1-D torch tensor, got {type(scores).__name__}")
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D [B], got shape {tuple(scores.shape)}")
    if scores.numel() == 0:
        raise ValueError("scores is empty: nothing to select from")
    scores = scores.detach()
    if not scores.is_floating_point():
        scores = scores.to(torch.float32)
    if bool(torch.isnan(scores).any()):  # a host sync per batch (B values: cheap)
        raise ValueError("scores contain NaN; rank rows by a finite signal (+inf ranks first)")
    return scores


def _checked(scores: Any, fraction: float, strategy: str) -> "tuple[torch.Tensor, int, int]":
    """Validated (scores [B], B, rows kept k) for a row-selection call."""
    scores = _check_scores(scores)
    fraction = _check_fraction(fraction)
    if strategy not in ROW_STRATEGIES:
        raise ValueError(f"strategy must be one of {ROW_STRATEGIES}, got {strategy!r}")
    return scores, scores.numel(), num_kept(scores.numel(), fraction)


def num_kept(batch_size: int, fraction: float) -> int:
    """Rows kept from a batch of ``batch_size``: ``max(1, floor(fraction * B + 0.5))``."""
    fraction = _check_fraction(fraction)
    return max(1, min(int(batch_size), math.floor(fraction * batch_size + 0.5)))


def _rank_ascending(scores: torch.Tensor) -> torch.Tensor:
    """0 = lowest score; ties broken by position."""
    order = torch.sort(scores, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(scores.numel(), device=scores.device)
    return ranks


def inclusion_probabilities(scores: torch.Tensor, fraction: float, strategy: str = "weighted") -> torch.Tensor:
    """Probability that each row is kept by :func:`select_rows`, float64 [B], summing to ``k``.

    * ``"random"``: ``k / B`` for every row.
    * ``"weighted"``: Composer's loss-rank bias. With ``perc_i = (rank_i + 0.5) / B`` (rank 0 =
      lowest score) the weight is ``perc_i ** (1 / fraction - 1)``; probabilities are
      ``pi_i = min(1, c * w_i)`` with ``c`` chosen so that ``sum(pi) = k`` (rows whose share would
      exceed 1 are kept surely and the rest rescaled).
    * ``"topk"``: 1 for the ``k`` highest scores, 0 otherwise (deterministic).
    """
    scores, b, k = _checked(scores, fraction, strategy)
    dev = scores.device
    if strategy == "random":
        return torch.full((b,), k / b, dtype=torch.float64, device=dev)
    if strategy == "topk":
        pi = torch.zeros(b, dtype=torch.float64, device=dev)
        pi[torch.sort(-scores, stable=True).indices[:k]] = 1.0  # the rows select_rows keeps
        return pi
    rank = _rank_ascending(scores)
    perc = (rank.to(torch.float64) + 0.5) / b
    w = perc ** (1.0 / fraction - 1.0)
    # water-filling: sort descending, try m = 0..k-1 rows capped at 1, take the smallest m for
    # which the rescaled largest uncapped row stays <= 1.
    w_sorted, order = torch.sort(w, descending=True)
    tail = torch.flip(torch.cumsum(torch.flip(w_sorted, [0]), 0), [0])  # tail[m] = sum_{j>=m} w_j
    m = torch.arange(k, device=dev, dtype=torch.float64)
    scale = (k - m) / tail[:k]
    ok = scale * w_sorted[:k] <= 1.0 + 1e-12
    m_star = int(torch.argmax(ok.to(torch.int8)))  # ok[k-1] is always true
    c = float(scale[m_star])
    pi_sorted = torch.clamp(c * w_sorted, max=1.0)
    pi_sorted[:m_star] = 1.0
    pi = torch.empty_like(pi_sorted)
    pi[order] = pi_sorted
    return pi


def select_rows(
    scores: torch.Tensor,
    fraction: float,
    strategy: str = "topk",
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rows of the batch to run forward-with-grad and backward on.

    Args:
        scores: float [B], higher = more worth training (e.g. per-sample loss from a no-grad
            forward, or :func:`store_scores`). ``+inf`` ranks first; NaN raises ``ValueError``.
        fraction: share of the batch to keep, in (0, 1]; ``k = max(1, floor(fraction * B + 0.5))``.
        strategy: ``"topk"`` (the ``k`` highest scores; ties: lower index), ``"random"`` (uniform,
            the control) or ``"weighted"`` (loss-rank-biased sampling without replacement with the
            inclusion probabilities of :func:`inclusion_probabilities`, drawn by randomized
            systematic sampling so that those probabilities hold exactly).
        generator: private RNG for ``random`` / ``weighted`` (seed it for reproducibility; None =
            a fresh non-deterministically seeded one). Any device; the draws are moved over.

    Returns:
        int64 [k] row indices in increasing order, on ``scores``' device.
    """
    scores, b, k = _checked(scores, fraction, strategy)
    dev = scores.device
    if strategy == "topk":
        rows = torch.sort(-scores, stable=True).indices[:k]  # highest first, ties: lower index
    else:
        gen = private_generator(generator)
        if strategy == "random":
            u = torch.rand(b, generator=gen, device=gen.device).to(dev)
            rows = torch.topk(u, k).indices
        else:
            pi = inclusion_probabilities(scores, fraction, "weighted")
            perm = torch.randperm(b, generator=gen, device=gen.device).to(dev)
            offset = torch.rand(1, generator=gen, device=gen.device, dtype=torch.float64).to(dev)
            cum = torch.cumsum(pi[perm], 0)
            cum[-1] = float(k)  # exact total: exactly k points u, u+1, ..., u+k-1 are hit
            prev = torch.cat([cum.new_zeros(1), cum[:-1]])
            hit = torch.floor(cum - offset) - torch.floor(prev - offset) >= 1
            rows = perm[torch.topk(hit.to(torch.float32), k, sorted=False).indices]
    return torch.sort(rows).values


def importance_weights(
    scores: torch.Tensor, rows: torch.Tensor, fraction: float, strategy: str
) -> torch.Tensor:
    """Loss weights for the kept ``rows`` so that ``mean(w * loss[rows])`` is unbiased.

    ``w_i = k / (B * pi_i)`` with ``pi_i`` from :func:`inclusion_probabilities`: the
    Horvitz-Thompson estimator ``(1/B) * sum_{i kept} loss_i / pi_i`` written as a mean over the
    ``k`` kept rows. ``random``: all ones. ``weighted``: hard rows (likely kept) get weights below
    1, easy rows above 1. ``topk`` raises ``ValueError`` (deterministic: no unbiased weighting).

    Returns:
        float32 [k] on ``rows``' device.
    """
    if strategy == "topk":
        raise ValueError("topk selection is deterministic: no unbiased weights exist (use 'random' or 'weighted')")
    pi = inclusion_probabilities(scores, fraction, strategy)
    rows = torch.as_tensor(rows, device=pi.device).long()
    b = pi.numel()
    k = num_kept(b, fraction)
    if rows.dim() != 1 or rows.numel() != k:
        raise ValueError(f"rows must be the {k} indices select_rows returned, got shape {tuple(rows.shape)}")
    return (k / (b * pi[rows])).to(torch.float32)


# --------------------------------------------------------------------------- batches
def subset_batch(batch: Any, rows: torch.Tensor) -> Any:
    """Index every tensor (and numpy array) inside ``batch`` along dim 0 by ``rows``.

    Dicts (any Mapping: returned as a plain dict, or the same class when it can be built from a
    dict, e.g. ``BatchEncoding``), tuples (named tuples keep their type) and lists are recursed;
    tensors and numpy arrays with at least one dimension are indexed (``rows`` is moved to each
    tensor's device); 0-d tensors and other values (strings, ints, None) pass through unchanged.
    Note that a Python list is treated as a container, not as a per-sample sequence.
    """
    if isinstance(rows, np.ndarray):
        rows = torch.from_numpy(rows)
    if not isinstance(rows, torch.Tensor) or rows.dim() != 1 or rows.is_floating_point() or rows.dtype == torch.bool:
        raise ValueError("rows must be a 1-D integer tensor of row indices (from select_rows)")
    rows = rows.long()
    on_device: dict = {}
    rows_np = None

    def rows_on(device: torch.device) -> torch.Tensor:
        if device not in on_device:
            on_device[device] = rows.to(device)
        return on_device[device]

    def go(x: Any) -> Any:
        nonlocal rows_np
        if isinstance(x, torch.Tensor):
            return x.index_select(0, rows_on(x.device)) if x.dim() >= 1 else x
        if isinstance(x, np.ndarray):
            if x.ndim == 0:
                return x
            if rows_np is None:
                rows_np = rows.cpu().numpy()
            return x[rows_np]
        if isinstance(x, Mapping):
            out = {key: go(value) for key, value in x.items()}
            if type(x) is dict:
                return out
            try:
                return type(x)(out)
            except Exception:  # noqa: BLE001 - fall back to a plain dict for exotic mappings
                return out
        if isinstance(x, tuple):
            items = [go(value) for value in x]
            return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
        if isinstance(x, list):
            return [go(value) for value in x]
        return x

    return go(batch)


def store_scores(store: Any, idx: Any) -> torch.Tensor:
    """Scores for dataset indices ``idx`` from a gekodata store: the loss EMA, ``+inf`` if unseen.

    Args:
        store: a :class:`gekodata.GEKOStateStore`, or anything with a ``.store`` attribute
            holding one (e.g. :class:`gekodata.WeightedBucketSampler`).
        idx: int [B] dataset indices (``batch["idx"]``), tensor (any device) or numpy array.

    Returns:
        float32 [B] on ``idx``'s device (CPU for numpy input). Samples never reported get
        ``+inf`` so that they are trained (and reported) before anything else.
    """
    if not hasattr(store, "columns") and hasattr(store, "store"):
        store = store.store
    if not (hasattr(store, "loss_of") and hasattr(store, "visits")):
        raise TypeError(f"store must be a GEKOStateStore (or hold one as .store), got {type(store).__name__}")
    device = idx.device if isinstance(idx, torch.Tensor) else torch.device("cpu")
    idx_np = idx.detach().cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
    if idx_np.ndim != 1 or not np.issubdtype(idx_np.dtype, np.integer):
        raise ValueError(f"idx must be a 1-D integer array of dataset indices, got shape {idx_np.shape} {idx_np.dtype}")
    n = len(store)
    if idx_np.size and (idx_np.min() < 0 or idx_np.max() >= n):
        raise ValueError(f"idx must be in [0, {n}), got values in [{idx_np.min()}, {idx_np.max()}]")
    loss = store.loss_of(idx_np)  # decoded float32, O(B), no N-sized copy
    loss[store.visits[idx_np] == 0] = np.inf
    return torch.from_numpy(loss).to(device)


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
        self, keep_fraction: float, strategy: str = "topk", *, generator: torch.Generator | None = None
    ) -> None:
        self.keep_fraction = _check_fraction(keep_fraction)
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
        """Unbiased loss weights [k] for the rows of the last :meth:`select` (see module doc)."""
        if self._last is None:
            raise ValueError("call select() first")
        scores, rows = self._last
        return importance_weights(scores, rows, self.keep_fraction, self.strategy)

    def record_time(self, scoring: float = 0.0, training: float = 0.0) -> None:
        """Add measured seconds of scoring passes and of training (forward+backward) passes."""
        scoring, training = float(scoring), float(training)
        if not (scoring >= 0.0 and training >= 0.0 and math.isfinite(scoring) and math.isfinite(training)):
            raise ValueError(f"seconds must be finite and >= 0, got scoring={scoring}, training={training}")
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
            "kept_fraction": self.samples_backpropagated / self.samples_seen if self.samples_seen else 0.0,
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
            for key in ("steps", "samples_seen", "samples_scored", "samples_backpropagated",
                        "scoring_seconds", "training_seconds")
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
