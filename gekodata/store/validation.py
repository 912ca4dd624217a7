"""Checks of report arrays, shared by the store (validation at the call and of late rows).

Values are checked as the store keeps them (cast to float32 first), and shapes without reading
values, so checking a device tensor's shape never syncs the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import numpy as np

from ..arguments import outside_range
from .codec import LOSS_MAX


def check_report_shapes(
    idx: Any, loss: Any, conf: Any = None, correct: Any = None, pred: Any = None
) -> None:
    """``ValueError`` unless every given array (numpy or torch, on any device) is 1-D and as long
    as ``idx``. Reads shapes only, so it never syncs a device."""
    named = (("idx", idx), ("loss", loss), ("conf", conf), ("correct", correct), ("pred", pred))
    for name, arr in named:
        if arr is not None and len(arr.shape) != 1:
            raise ValueError(
                f"{name} must be 1-D (one value per sample), got shape {tuple(arr.shape)}"
                + _shape_hint(name, tuple(arr.shape))
            )
    for name, arr in named[1:]:
        if arr is not None and arr.shape[0] != idx.shape[0]:
            raise ValueError(
                f"{name} has {arr.shape[0]} entries but idx has {idx.shape[0]}; "
                "all report arrays must have the same length"
            )


def _shape_hint(name: str, shape: tuple[int, ...]) -> str:
    """How to get a 1-D ``name`` from an array of ``shape``: a trailing axis of 1 (a model's
    [B, 1] output) squeezes; a 0-D loss is a reduced mean."""
    if len(shape) >= 2 and shape[-1] == 1:
        return f"; use {name}.squeeze(-1) to drop the trailing axis of 1"
    if name == "loss" and len(shape) == 0:
        return (
            "; the loss was reduced to one number: compute it per sample, e.g. "
            'F.cross_entropy(logits, y, reduction="none")'
        )
    if name == "loss":
        return (
            '; compute the loss per sample (reduction="none") and average any other axes '
            "(e.g. per token) to one value per sample"
        )
    return ""


def as_float32(x: Any) -> np.ndarray:
    """``x`` as float32 [B], as the store computes with it (float64 beyond float32 becomes inf,
    silently: validation refuses it)."""
    x = np.asarray(x)
    if x.dtype == np.float32:
        return x
    if x.dtype.kind != "f" or x.dtype.itemsize <= 4:  # ints, bools, float16: never overflow float32
        return x.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(np.float32)


def row_checks(
    num_samples: int,
    idx: np.ndarray,
    loss: np.ndarray,
    conf: np.ndarray | None,
    correct: np.ndarray | None,
    pred: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, Callable[[int], str]]]:
    """The per-row checks of a report for a store of ``num_samples`` rows, in order:
    (bool [B] mask of refused rows, message of
    an entry). Values are checked as the store keeps them: cast to float32 first. Raises
    ``ValueError`` for whole-array problems (shapes, non-integer dtypes). The one source of
    truth of :meth:`GEKOStateStore.validate` and :meth:`GEKOStateStore.invalid_rows`; lazy, so
    validation stops at the first failing check."""
    idx, loss = np.asarray(idx), np.asarray(loss)
    conf, correct, pred = (None if x is None else np.asarray(x) for x in (conf, correct, pred))
    check_report_shapes(idx, loss, conf, correct, pred)
    if len(idx) == 0:
        return
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"idx must hold integers, got dtype {idx.dtype}")
    if pred is not None and not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"pred must hold integer labels, got dtype {pred.dtype}")

    def entry(arr: np.ndarray) -> Callable[[int], str]:
        return lambda where: f"entry {where} is {arr[where]} (idx {idx[where]})"

    yield (
        outside_range(idx, num_samples),
        lambda where: (
            f"idx {idx[where]} (entry {where}) out of range for a dataset of {num_samples} samples "
            "(report the sample's position in the original dataset, batch['idx']). If you already "
            "do, the sampler was given a smaller dataset than the one the indices refer to: "
            "Subset(PruningDataset(d), ...) keeps d's positions but has the Subset's length; "
            "wrap the other way round, PruningDataset(Subset(d, ...))"
        ),
    )
    loss32 = as_float32(loss)
    yield (
        ~np.isfinite(loss32),
        lambda where: (
            f"loss must be finite (as float32, the dtype the store computes in); {entry(loss)(where)}"
        ),
    )
    yield loss32 < 0, lambda where: f"loss must be >= 0; {entry(loss)(where)}"
    yield (
        loss32 > np.float32(LOSS_MAX),
        lambda where: (
            f"loss must be <= {LOSS_MAX:.4g}, the largest loss the store can hold "
            f"(gekodata.store.codec.LOSS_MAX); {entry(loss)(where)}"
        ),
    )
    for name, arr in (("conf", conf), ("correct", correct)):
        if arr is not None:
            arr32 = as_float32(arr)
            # NaN fails both comparisons

            def outside_unit(where: int, name: str = name, arr: np.ndarray = arr) -> str:
                return f"{name} must be in [0, 1]; {entry(arr)(where)}"

            yield ~((arr32 >= 0) & (arr32 <= 1)), outside_unit
    if pred is not None:
        yield (
            (pred < -1) | (pred > np.iinfo(np.int32).max),
            lambda where: f"pred must be labels in [0, 2^31) or -1 (unknown); {entry(pred)(where)}",
        )
