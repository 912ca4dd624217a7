"""The store's column layout: current (format version 2) and version 1, and the upgrade.

Dtypes and the reasons for them are tabled in :mod:`gekodata.state`; the loss codec is
:mod:`gekodata.codec`.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

from .codec import LOSS_HIST_BINS, LOSS_MAX, encode_loss, loss_hist_bins

COLUMNS: Dict[str, np.dtype] = {
    "loss_ema_code": np.dtype(np.uint16),
    "loss_std_code": np.dtype(np.uint16),
    "q_value": np.dtype(np.float16),
    "conf_ema": np.dtype(np.uint8),
    "correct_ema": np.dtype(np.uint8),
    "visits": np.dtype(np.uint16),
    "frozen_streak": np.dtype(np.uint8),
    "flags": np.dtype(np.uint8),
}
OPTIONAL_COLUMNS: Dict[str, np.dtype] = {
    "pred_label": np.dtype(np.int32),
}

V1_COLUMNS: Dict[str, np.dtype] = {
    "loss_ema": np.dtype(np.float16),
    "loss_var": np.dtype(np.float16),
    **{name: dtype for name, dtype in COLUMNS.items() if name not in ("loss_ema_code", "loss_std_code")},
}
"""Columns of store format version 1 (loss EMA and variance as fp16)."""


def upgrade_state_v1(state: Mapping[str, Any]) -> Dict[str, Any]:
    """A format-version-2 state dict from a version-1 one (files written before the loss codec).

    The fp16 loss EMA is re-encoded with the loss codec and the fp16 variance becomes the std
    ``sqrt(loss_var)`` (both exact to within the codec's bound). The loss-scale histogram, which
    version 1 lacked, is rebuilt from the loss EMAs of the seen samples (one count per sample),
    and ``loss_scale`` is set to None so that :meth:`GEKOStateStore.load_state_dict` recomputes
    it from that histogram (the saved running maximum is dropped). Other columns are unchanged.
    ``ValueError`` for a malformed version-1 state.
    """
    num_samples = int(state.get("num_samples", -1))
    columns = state.get("columns")
    if not isinstance(columns, Mapping) or not set(V1_COLUMNS) <= set(columns) <= set(V1_COLUMNS) | set(OPTIONAL_COLUMNS):
        raise ValueError(f"version 1 state must hold the columns {sorted(V1_COLUMNS)} "
                         f"and optionally {sorted(OPTIONAL_COLUMNS)}")
    for name in ("loss_ema", "loss_var", "visits"):
        col = np.asarray(columns[name])
        if col.dtype != V1_COLUMNS[name] or col.shape != (num_samples,):
            raise ValueError(f"column {name!r} has dtype {col.dtype} and shape {col.shape}, "
                             f"expected {V1_COLUMNS[name]} and ({num_samples},)")
    ema = np.asarray(columns["loss_ema"]).astype(np.float32)
    var = np.asarray(columns["loss_var"]).astype(np.float32)
    for name, values in (("loss_ema", ema), ("loss_var", var)):
        if not ((values >= 0) & (values <= np.float32(LOSS_MAX))).all():  # NaN fails too
            raise ValueError(f"version 1 column {name!r} holds values that are not finite and >= 0")
    upgraded = {name: columns[name] for name in (*COLUMNS, *OPTIONAL_COLUMNS) if name in columns}
    upgraded["loss_ema_code"] = encode_loss(ema)
    upgraded["loss_std_code"] = encode_loss(np.sqrt(var))
    seen_loss = ema[np.asarray(columns["visits"]) > 0]
    bins = loss_hist_bins(seen_loss)
    hist_max = np.zeros(LOSS_HIST_BINS, dtype=np.float32)
    np.maximum.at(hist_max, bins, seen_loss)
    return {
        **state,
        "format_version": 2,
        "columns": {name: upgraded[name] for name in (*COLUMNS, *OPTIONAL_COLUMNS) if name in upgraded},
        "loss_hist_counts": np.bincount(bins, minlength=LOSS_HIST_BINS).astype(np.int64),
        "loss_hist_max": hist_max,
        "loss_scale": None,
    }
