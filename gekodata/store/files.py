"""File formats and atomic I/O: store files, sampler files and the readers the CLI uses.

Both formats are safetensors files (arrays) whose string metadata says what they are:

* store file (:meth:`GEKOStateStore.save`): ``format = "gekodata.state"``, ``format_version``,
  ``num_samples``, a JSON ``config``, ``loss_scale``, ``total_updates``; one array per column,
  plus (format version 2) the loss-scale histogram arrays :data:`STORE_ARRAYS`.
* sampler file (:meth:`WeightedBucketSampler.save`): ``format = "gekodata.sampler"``,
  ``format_version``, ``num_samples`` and a JSON ``sampler`` entry (run settings, epoch, policy,
  records and the store's scalars); arrays ``store.<column>``, ``store.<name>`` for the
  histogram arrays :data:`STORE_ARRAYS`, ``plan`` and optionally
  ``loss_weights`` and ``audit_pending``.

Writes are atomic (temp file in the same folder, fsync, rename, fsync of the folder): a reader
sees the old file or the new one, never a torn one, even if the writer is killed mid-write.
This module knows formats, not the classes that fill them: it imports nothing of gekodata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

STATE_FORMAT = "gekodata.state"
SAMPLER_FORMAT = "gekodata.sampler"
SAMPLER_FORMAT_VERSION = 1
STORE_ARRAYS = ("loss_hist_counts", "loss_hist_max")
"""Store-level arrays that are not per-sample columns: top-level keys of a state dict."""


def atomic_write(path: PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temp file in the same folder, fsync and rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_safetensors(
    path: PathLike, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]
) -> None:
    """Atomically write ``arrays`` with string ``metadata`` as one safetensors file."""
    from safetensors.numpy import save

    atomic_write(path, save(dict(arrays), metadata={str(k): str(v) for k, v in metadata.items()}))


def read_state_file(
    path: PathLike, expected_format: str | None = STATE_FORMAT
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a gekodata safetensors file once: (arrays, metadata).

    ``ValueError`` if it is not a readable safetensors file whose metadata ``format`` is
    ``expected_format`` (:data:`STATE_FORMAT` or :data:`SAMPLER_FORMAT`; None accepts any format
    and leaves the check to the caller).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = os.fspath(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        arrays = load(raw)
        metadata = _read_metadata(raw)
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}"
        ) from None
    if expected_format is not None and metadata.get("format") != expected_format:
        raise ValueError(
            f"{path}: not a {expected_format} file (format={metadata.get('format')!r})"
        )
    return arrays, metadata


def _read_metadata(raw: bytes) -> dict[str, str]:
    if len(raw) < 8:
        raise ValueError("file shorter than a safetensors header")
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    return dict(header.get("__metadata__", {}))


# ------------------------------------------------------------------------ store files
def write_store_file(
    path: PathLike, state: Mapping[str, Any], extra_metadata: Mapping[str, str] | None = None
) -> None:
    """Write a :meth:`GEKOStateStore.state_dict` as a store file; ``extra_metadata`` adds
    string entries."""
    metadata = {
        "format": STATE_FORMAT,
        "format_version": str(state["format_version"]),
        "num_samples": str(state["num_samples"]),
        "config": json.dumps(state["config"]),
        "loss_scale": repr(float(state["loss_scale"])),
        "total_updates": str(state["total_updates"]),
    }
    metadata.update({str(k): str(v) for k, v in (extra_metadata or {}).items()})
    arrays = dict(state["columns"])
    arrays.update({name: state[name] for name in STORE_ARRAYS if state.get(name) is not None})
    write_safetensors(path, arrays, metadata)


def read_store_file(path: PathLike) -> dict[str, Any]:
    """A :meth:`GEKOStateStore.state_dict`-shaped dict read from a store file."""
    return store_state_from_parts(os.fspath(path), *read_state_file(path, STATE_FORMAT))


def store_state_from_parts(
    where: str, columns: dict[str, np.ndarray], metadata: Mapping[str, str]
) -> dict[str, Any]:
    """A :meth:`GEKOStateStore.state_dict`-shaped dict from a store file's (arrays, metadata)
    as :func:`read_state_file` returns them; ``where`` names the file in errors."""
    columns = dict(columns)
    extra = {name: columns.pop(name) for name in STORE_ARRAYS if name in columns}
    try:
        return {
            **extra,
            "format_version": int(metadata["format_version"]),
            "num_samples": int(metadata["num_samples"]),
            "config": dict(json.loads(metadata.get("config", "{}"))),
            "loss_scale": float(metadata.get("loss_scale", 0.0)),
            "total_updates": int(metadata.get("total_updates", 0)),
            "columns": columns,
        }
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: bad gekodata metadata ({exc})") from None


# ---------------------------------------------------------------------- sampler files
def write_sampler_file(
    path: PathLike,
    store_state: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
    fmt: str = SAMPLER_FORMAT,
) -> None:
    """Write a sampler file: the store (a :meth:`GEKOStateStore.state_dict`) as ``store.<column>``
    arrays plus its scalars under ``meta["store"]``, the sampler's own ``arrays`` and JSON ``meta``.
    ``fmt`` names the file's kind: the same layout serves every runner that owns a store (the
    sampler; the stream selector with its own format name)."""
    everything: dict[str, np.ndarray] = {f"store.{k}": v for k, v in store_state["columns"].items()}
    everything.update(
        {f"store.{k}": store_state[k] for k in STORE_ARRAYS if store_state.get(k) is not None}
    )
    everything.update(arrays)
    meta = dict(meta)
    meta["store"] = {
        key: store_state[key] for key in ("config", "loss_scale", "total_updates", "format_version")
    }
    write_safetensors(
        path,
        everything,
        {
            "format": fmt,
            "format_version": str(SAMPLER_FORMAT_VERSION),
            "num_samples": str(meta["num_samples"]),
            "sampler": json.dumps(meta),
        },
    )


def read_sampler_file(
    path: PathLike, fmt: str = SAMPLER_FORMAT
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a sampler file (of kind ``fmt``), ``meta`` the parsed JSON ``sampler``
    entry. ``ValueError`` for another format, an unsupported format version or bad metadata (the
    store part's format version is checked when the store loads it)."""
    arrays, metadata = read_state_file(path, fmt)
    return arrays, sampler_meta(os.fspath(path), metadata)


def sampler_meta(where: str, metadata: Mapping[str, str]) -> dict[str, Any]:
    """The parsed ``sampler`` metadata of a sampler file, its format version checked."""
    try:
        version = int(metadata["format_version"])
        meta = json.loads(metadata["sampler"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where}: bad gekodata sampler metadata ({exc})") from None
    if version != SAMPLER_FORMAT_VERSION:
        raise ValueError(
            f"{where}: sampler format version {version} is not supported "
            f"(expected {SAMPLER_FORMAT_VERSION})"
        )
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: bad gekodata sampler metadata (not a JSON object)")
    return meta


def sampler_file_store_state(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """The store part of a sampler file, shaped like :meth:`GEKOStateStore.state_dict`:
    ``meta["store"]``, every ``"store.<column>"`` array and the histogram arrays.

    ``KeyError`` if ``meta`` has no ``num_samples``; the columns are checked by the store when
    loaded.
    """
    store_meta = dict(meta.get("store", {}))
    extra = {name: arrays[f"store.{name}"] for name in STORE_ARRAYS if f"store.{name}" in arrays}
    return {
        **extra,
        "format_version": store_meta.get("format_version"),
        "num_samples": int(meta["num_samples"]),
        "config": store_meta.get("config", {}),
        "loss_scale": store_meta.get("loss_scale"),
        "total_updates": store_meta.get("total_updates", 0),
        "columns": {
            name[len("store.") :]: arr
            for name, arr in arrays.items()
            if name.startswith("store.") and name[len("store.") :] not in STORE_ARRAYS
        },
    }
