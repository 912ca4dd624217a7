"""A store's saved state: the format version, the settings check, and the round trip through
``state_dict`` and store files.

:class:`StoreState` is the part of :class:`~gekodata.store.state_store.GEKOStateStore` that turns the store
into a state dict or file and back: validating everything before changing anything, and reading
format version 1 (:func:`~gekodata.store.layout.upgrade_state_v1`). File formats are :mod:`gekodata.store.files`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..arguments import check_unit_interval, instance_only
from .codec import check_hist
from .files import read_store_file, write_store_file
from .layout import check_columns

FORMAT_VERSION = 2
"""Store format version: 2 = log-coded loss EMA and loss std plus the loss-scale histogram (the
only released format; version 1 was never released and is refused)."""


def checked_config(
    ema_alpha: float,
    q_rate: float,
    loss_scale_quantile: float,
    min_loss_scale: float,
    slow_alpha: float = 0.25,
) -> dict[str, float]:
    """The store's settings as floats; ``ValueError`` naming the first out of range."""
    config = {
        "ema_alpha": float(ema_alpha),
        "q_rate": float(q_rate),
        "loss_scale_quantile": float(loss_scale_quantile),
        "min_loss_scale": float(min_loss_scale),
        "slow_alpha": float(slow_alpha),
    }
    for name, value in config.items():
        if name == "min_loss_scale" and not (np.isfinite(value) and value > 0):
            raise ValueError(f"min_loss_scale must be finite and > 0, got {value}")
        if name != "min_loss_scale":
            check_unit_interval(name, value, exclude_zero=True)
    return config


class StoreState:
    """Saving and restoring a store (module docstring). Needs the store's ``num_samples``,
    ``columns``, settings, loss-scale histogram, its constructor and ``_scale_from_hist``."""

    num_samples: int
    columns: dict[str, np.ndarray]
    ema_alpha: float
    q_rate: float
    loss_scale_quantile: float
    min_loss_scale: float
    slow_alpha: float
    loss_scale: float
    total_updates: int
    loss_hist_counts: np.ndarray
    loss_hist_max: np.ndarray

    def __init__(self, num_samples: int, **config: float) -> None:
        raise NotImplementedError  # the store's: a store of num_samples rows with these settings

    def _scale_from_hist(self) -> float:
        raise NotImplementedError  # the store's: loss_scale from the histogram

    def config(self) -> dict[str, float]:
        return {
            "ema_alpha": self.ema_alpha,
            "q_rate": self.q_rate,
            "loss_scale_quantile": self.loss_scale_quantile,
            "min_loss_scale": self.min_loss_scale,
            "slow_alpha": self.slow_alpha,
        }

    def state_dict(self) -> dict[str, object]:
        """Columns and loss-scale histogram (copies) plus scalars; round-trips bitwise through
        :meth:`load_state_dict`."""
        return {
            "format_version": FORMAT_VERSION,
            "num_samples": self.num_samples,
            "config": self.config(),
            "loss_scale": self.loss_scale,
            "total_updates": self.total_updates,
            "columns": {name: col.copy() for name, col in self.columns.items()},
            "loss_hist_counts": self.loss_hist_counts.copy(),
            "loss_hist_max": self.loss_hist_max.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`. Validates everything before changing anything.

        A ``loss_scale`` of None is recomputed from the histogram."""
        version = state.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"state format version {version!r} is not supported (expected {FORMAT_VERSION})"
            )
        if int(state.get("num_samples", -1)) != self.num_samples:
            raise ValueError(
                f"state is for {state.get('num_samples')} samples but this store has {self.num_samples}"
            )
        columns = check_columns(state.get("columns"), self.num_samples)
        config = dict(state.get("config", {}))
        new_config = checked_config(**{k: config.get(k, getattr(self, k)) for k in self.config()})
        hist_counts, hist_max = check_hist(
            state.get("loss_hist_counts"), state.get("loss_hist_max")
        )
        try:
            saved_scale = state.get("loss_scale", new_config["min_loss_scale"])
            loss_scale = None if saved_scale is None else float(saved_scale)
            total_updates = int(state.get("total_updates", 0))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad loss_scale or total_updates in state: {exc}") from None
        for key, value in new_config.items():
            setattr(self, key, value)
        self.loss_hist_counts, self.loss_hist_max = hist_counts, hist_max
        self.loss_scale = self._scale_from_hist() if loss_scale is None else loss_scale
        self.total_updates = total_updates
        self.columns = columns

    def save(
        self, path: str | os.PathLike, extra_metadata: Mapping[str, str] | None = None
    ) -> None:
        """Write the store to ``path`` as a store file (:mod:`gekodata.store.files`), atomically.

        The safetensors metadata holds ``format`` ("gekodata.state"), ``format_version``,
        ``num_samples`` and a JSON ``config``; ``extra_metadata`` adds string entries.
        """
        write_store_file(path, self.state_dict(), extra_metadata)

    @instance_only("use GEKOStateStore.from_file(path) to build a new store from a file")
    def load(self, path: str | os.PathLike) -> None:
        """Restore this store (``store.load(path)``) from a file written by :meth:`save`; for a
        new store from a file use :meth:`from_file` (``GEKOStateStore.load(path)`` on the class
        raises ``TypeError`` saying so).

        Raises ``ValueError`` (store unchanged) for another format, format version, dataset
        size, or a truncated/corrupt file.
        """
        self.load_state_dict(read_store_file(path))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Any:
        """A new store sized and configured from a file written by :meth:`save` (read once):
        ``store = GEKOStateStore.from_file("state.safetensors")``. To restore an existing store
        in place, call :meth:`load` on it. ``ValueError`` for a file that is not a store file
        (another format or version, truncated or corrupt), its message prefixed with the path."""
        return cls.from_state_dict(read_store_file(path), where=os.fspath(path))

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], where: str | None = None) -> Any:
        """A new store sized and configured from a :meth:`state_dict`-shaped mapping.

        ``ValueError`` for bad contents, its message prefixed with ``where`` (e.g. a file name)."""
        prefix = f"{where}: " if where else ""
        try:
            store = cls(state["num_samples"], **state["config"])
        except TypeError as exc:
            raise ValueError(f"{prefix}bad gekodata metadata ({exc})") from None
        try:
            store.load_state_dict(state)
        except ValueError as exc:
            raise ValueError(f"{prefix}{exc}") from None
        return store
