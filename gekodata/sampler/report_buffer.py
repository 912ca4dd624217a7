"""`ReportBuffer`: validates per-sample reports, holds them until a sync point, gathers them.

One sync window's reports (from every rank under ``torch.distributed``) become one
:class:`Window`, which the sampler folds into the store in a single update. Validation happens
once, in the dtype the rows are buffered in (float32 values, int64 indices):

* host input (numpy, lists, CPU tensors) is checked at the :meth:`ReportBuffer.add` call; a bad
  call raises ``ValueError`` naming the problem and buffers nothing;
* device input (CUDA tensors) is only shape-checked at the call, so ``report`` never forces a
  host sync; its values are checked when the window is gathered, where bad rows are dropped
  one by one (counted in :attr:`ReportBuffer.dropped_rows`, with a warning naming how many),
  never the rest of the window.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from ..signals import Signals
from ..store.codec import LOSS_MAX
from ..store.state_store import GEKOStateStore
from ..store.validation import as_float32, check_report_shapes
from . import collective as gdist

SignalInput = Union[torch.Tensor, np.ndarray, "list[float]", None]
INT_FIELDS = 3  # a buffered row's integers: idx, pred, label


@dataclass
class Window:
    """One sync window's reports, rows in rank order then call order.

    ``idx`` int64 [n]; ``loss``, ``conf``, ``correct`` float32 [n]; ``pred`` int64 [n] or None
    when no row carried a predicted label; ``label`` int64 [n] or None when no row carried the
    sample's given label (the loop's target class); -1 = unknown in both."""

    idx: np.ndarray
    loss: np.ndarray
    conf: np.ndarray
    correct: np.ndarray
    pred: np.ndarray | None
    label: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.idx)

    def fold_into(self, store: GEKOStateStore, restart: np.ndarray | None = None) -> None:
        """Fold these validated rows into ``store``: the labels they carry first
        (:meth:`~gekodata.store.state_store.GEKOStateStore.learn_labels`), then one update
        (``restart``: as :meth:`~gekodata.store.state_store.GEKOStateStore.update`'s)."""
        if self.label is not None:
            store.learn_labels(self.idx, self.label)
        store.update(
            self.idx,
            self.loss,
            self.conf,
            self.correct,
            self.pred,
            validated=True,
            restart=restart,
        )


@dataclass
class PendingRows:
    """Every rank's buffered, unfolded rows, as a checkpoint holds them: ``ints`` int64 [n, 3]
    (idx, pred or -1, label or -1) and ``values`` float32 [n, 3] (loss, conf, correct), in rank order then
    call order; per rank, in rank order: ``rows`` (how many of the n) and ``calls``
    (:meth:`ReportBuffer.add` calls since the last sync point)."""

    ints: np.ndarray
    values: np.ndarray
    rows: list[int]
    calls: list[int]

    def file_parts(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able metadata) as a checkpoint file stores them."""
        arrays = (
            {"pending_ints": self.ints, "pending_values": self.values} if len(self.ints) else {}
        )
        return arrays, {"rows": self.rows, "calls": self.calls}

    @classmethod
    def from_file_parts(
        cls, where: str, arrays: Mapping[str, np.ndarray], saved: Mapping[str, Any] | None
    ) -> PendingRows:
        """What :meth:`file_parts` wrote (none for a file written before checkpoints carried
        pending reports); ``ValueError`` naming ``where`` for parts that do not fit."""
        if saved is None:
            return cls.empty()
        try:
            rows, calls = [int(n) for n in saved["rows"]], [int(c) for c in saved["calls"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad pending-report metadata ({exc})") from None
        ints = arrays.get("pending_ints", cls.empty().ints)
        values = arrays.get("pending_values", cls.empty().values)
        if ints.ndim == 2 and ints.shape[1] == 2:  # written before reports carried labels
            ints = np.concatenate([ints, np.full((len(ints), 1), -1, dtype=ints.dtype)], axis=1)
        if (
            len(rows) != len(calls)
            or ints.dtype != np.int64
            or values.dtype != np.float32
            or ints.shape != (sum(rows), INT_FIELDS)
            or values.shape != (sum(rows), 3)
        ):
            raise ValueError(f"{where}: the saved pending reports do not match their metadata")
        return cls(np.array(ints), np.array(values), rows, calls)

    @classmethod
    def empty(cls, world_size: int = 1) -> PendingRows:
        return cls(
            np.empty((0, INT_FIELDS), dtype=np.int64),
            np.empty((0, 3), dtype=np.float32),
            [0] * world_size,
            [0] * world_size,
        )


def unpack_report(
    loss: SignalInput | Signals,
    conf: SignalInput,
    correct: SignalInput,
    idx: SignalInput,
    pred: SignalInput,
    label: SignalInput,
) -> tuple[SignalInput, SignalInput, SignalInput, SignalInput, SignalInput, SignalInput]:
    """A report's (loss, conf, correct, idx, pred, label): as given, or from a
    :class:`~gekodata.signals.Signals` passed as ``loss`` (``report(signals, idx)``: the next
    positional argument is then the indices; its ``pred`` and ``label`` fill what was not given).
    ``TypeError`` for a Signals given together with conf or correct."""
    if not isinstance(loss, Signals):
        return loss, conf, correct, idx, pred, label
    if correct is not None or (conf is not None and idx is not None):
        raise TypeError(
            "report(signals, idx): a Signals object already holds loss, conf and correct; "
            "pass only the indices after it (report(signals, batch['idx']))"
        )
    return (
        loss.loss,
        loss.conf,
        loss.correct,
        conf if idx is None else idx,
        loss.pred if pred is None else pred,
        loss.label if label is None else label,
    )


class ReportBuffer:
    """Buffered reports of one process for ``store`` (used for validation only).

    A host report waits as (ints int64 [n, 3] = (idx, pred or -1, label or -1), values float32 [n, 3] = (loss,
    conf, correct)), validated. A device report waits as the detached tensors it came in, on
    their device: converting and stacking them costs kernels, so that happens once per window, in
    :meth:`take`, not in the training step. :meth:`take` gathers every rank's rows (a collective
    under ``torch.distributed``) and empties the buffer only once that succeeded.
    """

    def __init__(self, store: GEKOStateStore) -> None:
        self._store = store
        self._chunks: list[
            tuple[Any, Any, bool]
        ] = []  # (ints, values, checked) or (tensors, None, False)
        self.rows = 0
        self.calls = 0
        self.dropped_rows = 0

    def add(
        self,
        loss: SignalInput | Signals,
        conf: SignalInput,
        correct: SignalInput,
        idx: SignalInput,
        pred: SignalInput = None,
        label: SignalInput = None,
        *,
        defer_checks: bool | None = None,
    ) -> int:
        """Validate (host) or shape-check (device) one report and buffer it; returns its rows.
        ``loss`` may be a whole :class:`~gekodata.signals.Signals` (:func:`unpack_report`).

        ``defer_checks``: None (default) defers the value checks to :meth:`take` exactly when a
        tensor is on a device other than the CPU; True defers them for any torch tensors (the
        device path, also on CPU)."""
        loss, conf, correct, idx, pred, label = unpack_report(loss, conf, correct, idx, pred, label)
        if idx is None:
            raise ValueError(
                "report() needs idx: the samples' indices (batch['idx'] from PruningDataset)"
            )
        given = (idx, loss, conf, correct, pred, label)
        if defer_checks is None:
            defer_checks = False
            for x in given:
                if isinstance(x, torch.Tensor) and x.device.type != "cpu":
                    defer_checks = True
                    break
        if defer_checks:
            chunk: tuple[Any, Any, bool] = (_device_tensors(*given), None, False)
            rows = int(chunk[0][0].shape[0])
        else:
            ints, values = _host_chunk(self._store, *given)
            chunk, rows = (ints, values, True), int(ints.shape[0])
        self._chunks.append(chunk)
        self.rows += rows
        self.calls += 1
        return rows

    def clear(self) -> None:
        """Forget every buffered report (e.g. when a checkpoint replaces the state)."""
        self._chunks, self.rows, self.calls = [], 0, 0

    def _host_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's buffered rows as host arrays (device rows converted, not yet checked)."""
        chunks = [c if c[1] is not None else (*_device_rows(*c[0]), False) for c in self._chunks]
        if not chunks:
            return PendingRows.empty().ints, PendingRows.empty().values
        ints = np.concatenate([_as_numpy(c[0]) for c in chunks])
        values = np.concatenate([_as_numpy(c[1]) for c in chunks])
        return ints, values

    def pending(self) -> PendingRows:
        """Every rank's buffered rows for a checkpoint; the buffer keeps them (nothing is folded,
        so saving never changes what a later sync point folds). A collective under
        ``torch.distributed``: all ranks must call it."""
        ints, values = self._host_rows()
        if not gdist.is_distributed():
            return PendingRows(ints, values, [len(ints)], [self.calls])
        device = gdist.collective_device()
        header = torch.tensor([[len(ints), self.calls]], dtype=torch.int64)
        headers = gdist.all_gather_rows(header.to(device)).cpu().numpy()
        return PendingRows(
            gdist.all_gather_rows(torch.from_numpy(ints).to(device)).cpu().numpy(),
            gdist.all_gather_rows(torch.from_numpy(values).to(device)).cpu().numpy(),
            [int(n) for n in headers[:, 0]],
            [int(c) for c in headers[:, 1]],
        )

    def restore(self, pending: PendingRows, rank: int | None, world_size: int = 1) -> None:
        """Replace the buffer with this process's part of ``pending``. Inside a process group
        (``rank`` given): its own rows when the checkpoint was written by as many ranks, else
        rank 0 holds every row. Outside one (``rank`` None: one process, or a standalone one
        inspecting a distributed run): every row. The next sync point then folds the same rows
        in the same order as the saving run's gather. The rows are checked again at that sync
        point, as rows from a device are."""
        self.clear()
        if rank is None:
            lo, hi = 0, len(pending.ints)
            calls = max(pending.calls, default=0)
        elif len(pending.rows) == world_size:
            lo = sum(pending.rows[:rank])
            hi = lo + pending.rows[rank]
            calls = pending.calls[rank]
        else:
            lo, hi = 0, (len(pending.ints) if rank == 0 else 0)
            calls = max(pending.calls, default=0)
        if hi > lo:
            self._chunks.append((pending.ints[lo:hi].copy(), pending.values[lo:hi].copy(), False))
            self.rows = hi - lo
        self.calls = calls

    def take(self) -> Window | None:
        """Every rank's buffered rows as one validated :class:`Window` (None if there are none
        anywhere), and an empty buffer. A collective under ``torch.distributed``: all ranks must
        call it. Rows that fail validation here (device input) are dropped with a warning."""
        chunks = [c if c[1] is not None else (*_device_rows(*c[0]), False) for c in self._chunks]
        if gdist.is_distributed():
            ints, values, checked = _gather_chunks(chunks)  # validated below
        elif chunks:
            ints = np.concatenate([_as_numpy(c[0]) for c in chunks])
            values = np.concatenate([_as_numpy(c[1]) for c in chunks])
            checked = all(c[2] for c in chunks)
        else:
            return None
        self.clear()
        if len(ints) == 0:
            return None
        idx, pred, label = ints[:, 0], ints[:, 1], ints[:, 2]
        loss, conf, correct = values[:, 0], values[:, 1], values[:, 2]
        if not checked:
            bad = self._store.invalid_rows(idx, loss, conf, correct, pred)
            bad |= (label < -1) | (label > _INT32_MAX)
            num_bad = int(np.count_nonzero(bad))
            if num_bad:
                keep = ~bad
                idx, pred, label, loss, conf, correct = (
                    a[keep] for a in (idx, pred, label, loss, conf, correct)
                )
                self.dropped_rows += num_bad
                warnings.warn(
                    f"gekodata: dropped {num_bad} reported row(s) with invalid values at this sync point "
                    f"(non-finite or negative loss, conf/correct outside [0, 1], idx, pred or label "
                    f"out of range); the window's other {len(idx)} row(s) were kept",
                    RuntimeWarning,
                    stacklevel=3,
                )
                if len(idx) == 0:
                    return None
        return Window(
            idx=idx,
            loss=loss,
            conf=conf,
            correct=correct,
            pred=pred if (pred != -1).any() else None,
            label=label if (label != -1).any() else None,
        )


def _as_numpy(x: Any) -> np.ndarray:
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


def _to_host_array(x: SignalInput) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _check_index_dtype(is_integer: bool, is_float: bool, dtype: Any) -> None:
    if is_integer:
        return
    if is_float:
        raise ValueError(
            f"idx must be an integer array, got {dtype}; indices must never travel as floats "
            "(float32 loses integers above 2^24)"
        )
    raise ValueError(f"idx must be an integer array, got dtype {dtype}")


def _as_float32(name: str, x: np.ndarray) -> np.ndarray:
    """``x`` as float32, the dtype it is buffered in (:func:`gekodata.store.validation.as_float32`);
    ``ValueError`` for non-numeric input (anything but bool, int, uint and float)."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return as_float32(x)


_INT32_MAX = int(np.iinfo(np.int32).max)


def _host_chunk(
    store: GEKOStateStore,
    idx: SignalInput,
    loss: SignalInput,
    conf: SignalInput,
    correct: SignalInput,
    pred: SignalInput = None,
    label: SignalInput = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a CPU report as it will be stored (float32 values, int64 indices):
    (ints int64 [n, 3] = (idx, pred or -1, label or -1), values float32 [n, 3]).

    Valid rows (the common case) cost four reductions over the stacked rows; only a report that
    fails one goes through :meth:`GEKOStateStore.validate` for the message naming the entry."""
    idx_a, loss_a, conf_a, correct_a, pred_a, label_a = (
        _to_host_array(x) for x in (idx, loss, conf, correct, pred, label)
    )
    check_report_shapes(idx_a, loss_a, conf_a, correct_a, pred_a)
    assert idx_a is not None and loss_a is not None  # check_report_shapes refuses None
    _check_index_dtype(idx_a.dtype.kind in "iu", idx_a.dtype.kind == "f", idx_a.dtype)
    if pred_a is not None and pred_a.dtype.kind not in "iu":
        raise ValueError(f"pred must hold integer labels, got dtype {pred_a.dtype}")
    label_a = _checked_labels(label_a, len(idx_a))
    loss32 = _as_float32("loss", loss_a)
    conf32 = None if conf_a is None else _as_float32("conf", conf_a)
    correct32 = None if correct_a is None else _as_float32("correct", correct_a)
    values = np.empty((len(idx_a), 3), dtype=np.float32)
    values[:, 0] = loss32
    if conf32 is None:
        np.exp(-loss32, out=values[:, 1])
    else:
        values[:, 1] = conf32
    values[:, 2] = (values[:, 1] > 0.5) if correct32 is None else correct32
    ints = np.empty((len(idx_a), INT_FIELDS), dtype=np.int64)
    ints[:, 0] = idx_a
    ints[:, 1] = -1 if pred_a is None else pred_a
    ints[:, 2] = -1 if label_a is None else label_a
    if len(idx_a) and not _rows_valid(store.num_samples, idx_a, pred_a, values):
        # NaN or a value out of range somewhere (overflow to inf in float32 included): name it
        store.validate(idx_a, loss32, conf32, correct32, pred_a)
    return ints, values


def _rows_valid(
    num_samples: int, idx: np.ndarray, pred: np.ndarray | None, values: np.ndarray
) -> bool:
    """Whether every row of a non-empty report passes the store's checks
    (:func:`gekodata.store.validation.row_checks`): idx in [0, num_samples), pred in [-1, 2^31), loss in
    [0, LOSS_MAX], conf and correct in [0, 1] (``values`` float32 [n, 3]). Five or seven
    reductions; NaN fails (it propagates through min and max)."""
    if not (values.min() >= 0 and values[:, 1:].max() <= 1 and values[:, 0].max() <= _LOSS_MAX32):
        return False
    if not (idx.min() >= 0 and idx.max() < num_samples):
        return False
    return pred is None or bool(pred.min() >= -1 and pred.max() <= _INT32_MAX)


_LOSS_MAX32 = np.float32(LOSS_MAX)


def _checked_labels(label: np.ndarray | None, rows: int) -> np.ndarray | None:
    """A host report's given labels, checked: int [rows] in [-1, 2^31) (-1 = unknown), or None.
    ``ValueError`` naming the problem (one-hot or float targets get the fix)."""
    if label is None:
        return None
    if label.ndim != 1 or len(label) != rows:
        raise ValueError(
            f"label must be [B] = [{rows}] class indices, got shape {label.shape}"
            + (" (one-hot targets: pass targets.argmax(-1))" if label.ndim == 2 else "")
        )
    if label.dtype.kind not in "iu":
        raise ValueError(
            f"label must hold integer class indices, got dtype {label.dtype}; labels exist for "
            "classification (a regression target is not a label: leave label out)"
        )
    if len(label) and not (label.min() >= -1 and label.max() <= _INT32_MAX):
        raise ValueError("label must be in [-1, 2^31) (-1 = unknown)")
    return label


def _device_tensors(
    idx: SignalInput,
    loss: SignalInput,
    conf: SignalInput,
    correct: SignalInput,
    pred: SignalInput = None,
    label: SignalInput = None,
) -> tuple[torch.Tensor | None, ...]:
    """Shape- and dtype-check a device report and keep it as detached tensors on its device: no
    kernel launch and no host sync."""
    given = (idx, loss, conf, correct, pred, label)
    device = next(
        (x.device for x in given if isinstance(x, torch.Tensor) and x.device.type != "cpu"),
        torch.device("cpu"),
    )
    tensors = tuple(
        None if x is None else torch.as_tensor(x).detach().to(device, non_blocking=True)
        for x in given
    )
    idx_t, loss_t, conf_t, correct_t, pred_t, label_t = tensors
    check_report_shapes(idx_t, loss_t, conf_t, correct_t, pred_t)
    assert idx_t is not None and loss_t is not None  # check_report_shapes refuses None
    _check_index_dtype(
        not idx_t.is_floating_point() and not idx_t.is_complex() and idx_t.dtype != torch.bool,
        idx_t.is_floating_point(),
        idx_t.dtype,
    )
    if pred_t is not None and (
        pred_t.is_floating_point() or pred_t.is_complex() or pred_t.dtype == torch.bool
    ):
        raise ValueError(f"pred must hold integer labels, got {pred_t.dtype}")
    if label_t is not None:
        if label_t.dim() != 1 or label_t.shape[0] != idx_t.shape[0]:
            raise ValueError(
                f"label must be [B] = [{idx_t.shape[0]}] class indices, got shape {tuple(label_t.shape)}"
            )
        if label_t.is_floating_point() or label_t.is_complex() or label_t.dtype == torch.bool:
            raise ValueError(f"label must hold integer class indices, got {label_t.dtype}")
    return tensors


def _device_rows(
    idx: torch.Tensor,
    loss: torch.Tensor,
    conf: torch.Tensor | None,
    correct: torch.Tensor | None,
    pred: torch.Tensor | None,
    label: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deferred report's (ints int64 [n, 3], values float32 [n, 3]) on its device, unchecked."""
    loss_f = loss.float()
    conf_f = torch.exp(-loss_f) if conf is None else conf.float()
    correct_f = (conf_f > 0.5).float() if correct is None else correct.float()
    unknown = torch.full_like(idx, -1, dtype=torch.int64)
    pred_l = unknown if pred is None else pred.long()
    label_l = unknown if label is None else label.long()
    return torch.stack([idx.long(), pred_l, label_l], dim=1), torch.stack(
        [loss_f, conf_f, correct_f], dim=1
    )


def _gather_chunks(chunks: list[tuple[Any, Any, bool]]) -> tuple[np.ndarray, np.ndarray, bool]:
    """All ranks' buffered rows, concatenated in rank order, as host arrays, and whether every
    rank's rows were validated at their call (then nothing needs checking here)."""
    device = gdist.collective_device()
    if chunks:
        ints = torch.cat([torch.as_tensor(c[0]).to(device) for c in chunks])
        values = torch.cat([torch.as_tensor(c[1]).to(device) for c in chunks])
    else:
        ints = torch.empty((0, INT_FIELDS), dtype=torch.int64, device=device)
        values = torch.empty((0, 3), dtype=torch.float32, device=device)
    all_ints = gdist.all_gather_rows(ints)
    all_values = gdist.all_gather_rows(values)
    # every rank then checks the same rows the same way, so stores stay bitwise equal
    return all_ints.cpu().numpy(), all_values.cpu().numpy(), False
