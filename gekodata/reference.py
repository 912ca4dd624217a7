"""Reference ("irreducible") losses for RHO-LOSS selection, by cross-fitting a small model.

RHO-LOSS (Mindermann et al., ICML 2022) ranks samples by their *reducible* loss: the training
model's loss minus the loss of a model that was trained on other data (the "irreducible loss
model"). A sample the small model cannot fit either (a wrong label, an ambiguous input) has a high
reference loss, so its reducible loss stays low however high its training loss is; a sample that
is learnable but not learnt yet has a high training loss and a low reference loss.

The paper trains the reference model on a held-out set. Without one, :func:`cross_fit_reference_losses`
splits the training set into ``folds`` parts (2 = halves), trains one model per part on the
*other* parts and scores that part with it, so that no sample's reference loss comes from a model
that saw it. The model can be much smaller than the one being trained (the paper: a small model
trained on held-out data works nearly as well as a large one). The helper only orchestrates: you
supply the model, its training and its per-sample loss as callables, so it works with any
framework; it reports the wall-clock and passes it spent, and benchmarks count them as part of
the selection's cost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .store.state_store import GEKOStateStore

_FOLD_STREAM = 0x7EF  # second seed word of the fold split's generator


@dataclass(frozen=True)
class ReferenceLosses:
    """What :func:`cross_fit_reference_losses` computed and what it cost."""

    losses: np.ndarray
    """float32 [N]: each sample's loss under the model that did not train on it."""
    fold: np.ndarray
    """int64 [N]: the fold each sample was scored in."""
    seconds: float
    """Wall-clock of making, training and scoring every fold's model."""
    train_passes: int
    """Sample passes the reference models trained (what ``train`` returned; its subset size when
    it returned None)."""
    score_passes: int
    """Samples scored (forward only): N."""


def fold_split(num_samples: int, folds: int, seed: int) -> np.ndarray:
    """int64 [N]: a random fold in ``[0, folds)`` per sample, folds as equal as possible
    (private generator seeded by ``seed``)."""
    if int(folds) < 2:
        raise ValueError(
            f"folds must be >= 2 (each sample is scored by a model trained on the others), got {folds}"
        )
    if num_samples < int(folds):
        raise ValueError(f"need at least {folds} samples for {folds} folds, got {num_samples}")
    order = np.random.default_rng([int(seed), _FOLD_STREAM]).permutation(num_samples)
    fold = np.empty(num_samples, dtype=np.int64)
    fold[order] = np.arange(num_samples) % int(folds)
    return fold


def cross_fit_reference_losses(
    num_samples: int,
    make_model: Callable[[int], Any],
    train: Callable[[Any, np.ndarray], int | None],
    loss: Callable[[Any, np.ndarray], Sequence[float]],
    *,
    folds: int = 2,
    seed: int = 0,
    store: GEKOStateStore | None = None,
) -> ReferenceLosses:
    """Reference losses by cross-fitting: for each fold ``k``, ``model = make_model(k)``,
    ``train(model, idx_of_other_folds)``, then ``loss(model, idx_of_fold_k)``.

    Args:
        num_samples: N, the training set's length (indices are positions in it).
        make_model: fold number -> a fresh model (anything your ``train`` and ``loss`` take).
        train: trains the model on the given sample indices (int64 [k], sorted); returns the
            sample passes it trained (e.g. epochs x k), or None to count k.
        loss: per-sample losses of the given indices under the model, float [k] (the same loss
            the training loop reports, on the samples' given labels), finite and >= 0.
        folds: number of parts (>= 2; 2 = halves, the cheapest).
        seed: seeds the split (a private generator; no global RNG is touched).
        store: if given, its reference losses are set (:meth:`GEKOStateStore.set_reference_loss`).

    ``ValueError`` for bad settings or losses of the wrong shape or value (the store is then
    unchanged).
    """
    fold = fold_split(int(num_samples), folds, seed)
    losses = np.full(int(num_samples), np.nan, dtype=np.float32)
    passes = 0
    started = time.perf_counter()
    for k in range(int(folds)):
        model = make_model(k)
        train_idx = np.flatnonzero(fold != k)
        trained = train(model, train_idx)
        passes += len(train_idx) if trained is None else int(trained)
        score_idx = np.flatnonzero(fold == k)
        values = np.asarray(loss(model, score_idx), dtype=np.float32).reshape(-1)
        if values.shape != score_idx.shape:
            raise ValueError(
                f"loss returned {values.shape[0]} values for {len(score_idx)} samples (fold {k})"
            )
        if not (np.isfinite(values) & (values >= 0)).all():
            raise ValueError(f"loss returned values that are not finite and >= 0 (fold {k})")
        losses[score_idx] = values
    seconds = time.perf_counter() - started
    if store is not None:
        store.set_reference_loss(None, losses)
    return ReferenceLosses(losses, fold, seconds, passes, int(num_samples))
