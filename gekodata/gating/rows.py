"""Row selection for selective backward (:mod:`gekodata.gating.selective`): pure functions that pick
the rows of a batch to run forward-with-grad and backward on, and carry them out.

* :func:`num_kept`, :func:`select_rows` (``topk``, ``random``, ``weighted``) and
  :func:`inclusion_probabilities` -- which rows are kept, and each row's chance of being kept.
* :func:`importance_weights` -- loss weights that undo the selection's bias (below).
* :func:`subset_batch` -- the kept rows of every tensor in a batch.
* :func:`store_scores` -- scores from gekodata's stored loss EMA, so no scoring pass is needed.

Unbiased weighting
------------------
Training on the hardest rows changes the objective. With ``strategy="random"`` or ``"weighted"``
every row has a known inclusion probability ``pi_i``, and :func:`importance_weights` returns
``w_i = k / (B * pi_i)`` for the kept rows, so that ``mean(w * loss_kept)`` is the Horvitz-Thompson
estimate of the full-batch mean loss (unbiased over the draw). ``random``: ``pi = k / B``, so
``w = 1``. ``topk`` is deterministic (``pi`` is 0 or 1) and has no unbiased weighting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..arguments import check_unit_interval
from .common import private_generator, ranks_ascending

ROW_STRATEGIES = ("topk", "random", "weighted")


# --------------------------------------------------------------------------- helpers
def check_fraction(fraction: float) -> float:
    """``fraction`` as a float in (0, 1], the share of a batch to keep, else ``ValueError``."""
    return check_unit_interval("fraction", fraction, exclude_zero=True)


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


def _checked(scores: Any, fraction: float, strategy: str) -> tuple[torch.Tensor, int, int]:
    """Validated (scores [B], B, rows kept k) for a row-selection call."""
    scores = _check_scores(scores)
    fraction = check_fraction(fraction)
    if strategy not in ROW_STRATEGIES:
        raise ValueError(f"strategy must be one of {ROW_STRATEGIES}, got {strategy!r}")
    return scores, scores.numel(), num_kept(scores.numel(), fraction)


def num_kept(batch_size: int, fraction: float) -> int:
    """Rows kept from a batch of ``batch_size``: ``max(1, floor(fraction * B + 0.5))``."""
    fraction = check_fraction(fraction)
    return max(1, min(int(batch_size), math.floor(fraction * batch_size + 0.5)))


def inclusion_probabilities(
    scores: torch.Tensor, fraction: float, strategy: str = "weighted"
) -> torch.Tensor:
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
    rank = ranks_ascending(scores)
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
        raise ValueError(
            "topk selection is deterministic: no unbiased weights exist (use 'random' or 'weighted')"
        )
    pi = inclusion_probabilities(scores, fraction, strategy)
    rows = torch.as_tensor(rows, device=pi.device).long()
    b = pi.numel()
    k = num_kept(b, fraction)
    if rows.dim() != 1 or rows.numel() != k:
        raise ValueError(
            f"rows must be the {k} indices select_rows returned, got shape {tuple(rows.shape)}"
        )
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
    if (
        not isinstance(rows, torch.Tensor)
        or rows.dim() != 1
        or rows.is_floating_point()
        or rows.dtype == torch.bool
    ):
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
            mapping_type: Any = type(x)  # a Mapping subclass: built from a dict, if it can be
            try:
                return mapping_type(out)
            except Exception:
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
        raise TypeError(
            f"store must be a GEKOStateStore (or hold one as .store), got {type(store).__name__}"
        )
    device = idx.device if isinstance(idx, torch.Tensor) else torch.device("cpu")
    idx_np = idx.detach().cpu().numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
    if idx_np.ndim != 1 or not np.issubdtype(idx_np.dtype, np.integer):
        raise ValueError(
            f"idx must be a 1-D integer array of dataset indices, got shape {idx_np.shape} {idx_np.dtype}"
        )
    n = len(store)
    if idx_np.size and (idx_np.min() < 0 or idx_np.max() >= n):
        raise ValueError(f"idx must be in [0, {n}), got values in [{idx_np.min()}, {idx_np.max()}]")
    loss = store.loss_of(idx_np)  # decoded float32, O(B), no N-sized copy
    loss[store.visits[idx_np] == 0] = np.inf
    return torch.from_numpy(loss).to(device)
