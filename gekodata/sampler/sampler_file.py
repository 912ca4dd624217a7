"""`SamplerSnapshot`: everything a sampler file holds, and its validated reading and writing.

The sampler takes a snapshot of its run state (:meth:`WeightedBucketSampler.save`) and restores
one (:meth:`WeightedBucketSampler.load`); this module turns snapshots into sampler files
(:mod:`gekodata.store.files`) and back, and checks a file against the sampler that loads it before that
sampler changes anything: the settings a file must share with it, and (:func:`check_settings`)
the checks of a new sampler's settings.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..arguments import in_range
from ..planning.epoch_plan import resolve_budget
from ..planning.record import EpochRecord, records_from_dicts
from ..policy import SelectionPolicy, policy_from_config
from ..policy.registry import not_a_policy
from ..store.files import read_sampler_file, sampler_file_store_state, write_sampler_file
from ..store.layout import COLUMNS, OPTIONAL_COLUMNS
from .report_buffer import PendingRows

SETTINGS = (
    "num_samples",
    "world_size",
    "seed",
    "num_epochs",
    "budget",
    "unbiased",
    "unbiased_floor",
    "audit_fraction",
    "audit_margin",
)
"""Run settings saved in a sampler file's metadata (``policy`` is saved beside them)."""
STRICT_SETTINGS = (
    "seed",
    "num_epochs",
    "budget",
    "unbiased",
    "unbiased_floor",
    "policy",
    "audit_fraction",
    "audit_margin",
)
"""Settings that must match for a strict load (``num_epochs`` shapes the curriculum's phases)."""


@dataclass
class SamplerSnapshot:
    """A sampler's run state. ``plan``: the global index stream of ``planned_epoch``, int [S];
    ``loss_weights``: float32 [N] or None; ``audit_pending``: sorted int64 or None; ``settings``:
    :data:`SETTINGS` plus ``policy`` (its config); ``pending``: the reports not yet folded (every
    rank's), which a checkpoint carries instead of folding them."""

    settings: dict[str, Any]
    store: dict[str, Any]
    plan: np.ndarray
    epoch: int
    planned_epoch: int
    classified_epoch: int
    records: list[EpochRecord]
    loss_weights: np.ndarray | None = None
    audit_pending: np.ndarray | None = None
    pending: PendingRows | None = None
    policy_arrays: dict[str, np.ndarray] = field(default_factory=dict)


def write_snapshot(path: str | os.PathLike, snap: SamplerSnapshot) -> None:
    """Write ``snap`` as a sampler file, atomically."""
    arrays: dict[str, np.ndarray] = {"plan": snap.plan}
    if snap.audit_pending is not None:
        arrays["audit_pending"] = snap.audit_pending
    if snap.loss_weights is not None:
        arrays["loss_weights"] = snap.loss_weights
    arrays.update({f"policy.{k}": v for k, v in snap.policy_arrays.items()})
    meta = dict(snap.settings)
    if snap.pending is not None:
        pending_arrays, meta["pending"] = snap.pending.file_parts()
        arrays.update(pending_arrays)
    meta.update(
        epoch=snap.epoch,
        planned_epoch=snap.planned_epoch,
        classified_epoch=snap.classified_epoch,
        records=[asdict(r) for r in snap.records],
    )
    write_sampler_file(path, snap.store, arrays, meta)


def read_snapshot(
    path: str | os.PathLike,
    expected: Mapping[str, Any],
    *,
    strict: bool,
    loss_weights: bool,
    policy: SelectionPolicy,
) -> SamplerSnapshot:
    """Read and check a sampler file for a sampler whose settings are ``expected`` and whose
    policy is ``policy`` (its state arrays, e.g. user weights, are compared as the file's
    arrays would make them; ``policy`` itself is not changed).

    ``ValueError`` for another format or version, another dataset size, a truncated or corrupt
    file, a plan that is not an index stream, missing arrays (``loss_weights``: the loading sampler
    has loss weights), policy arrays the policy refuses or, with ``strict``, different
    :data:`STRICT_SETTINGS`.
    """
    arrays, meta = read_sampler_file(path)
    where = os.fspath(path)
    policy_arrays = {k[7:]: np.array(v) for k, v in arrays.items() if k.startswith("policy.")}
    if policy_arrays:
        candidate = copy.deepcopy(policy)
        try:
            candidate.load_state_arrays(policy_arrays)
        except ValueError as exc:
            raise ValueError(f"{where}: the saved policy arrays do not fit ({exc})") from None
        expected = {**expected, "policy": candidate.config()}
    num_samples = int(expected["num_samples"])
    if int(meta.get("num_samples", -1)) != num_samples:
        raise ValueError(
            f"{where}: saved for {meta.get('num_samples')} samples, this dataset has {num_samples}"
        )
    if strict:
        _check_same_settings(where, meta, expected)
    required = (
        {f"store.{k}" for k in COLUMNS} | {"plan"} | ({"loss_weights"} if loss_weights else set())
    )
    missing = required - set(arrays)
    if missing:
        raise ValueError(f"{where}: missing arrays {sorted(missing)}")
    plan = arrays["plan"]
    if (
        plan.ndim != 1
        or not np.issubdtype(plan.dtype, np.integer)
        or not in_range(plan, num_samples)
    ):
        raise ValueError(
            f"{where}: the saved plan is not a valid index stream for {num_samples} samples"
        )
    if loss_weights and arrays["loss_weights"].shape != (num_samples,):
        raise ValueError(f"{where}: loss_weights has the wrong shape")
    try:
        records = records_from_dicts(meta.get("records", []))
        epochs = (int(meta["epoch"]), int(meta["planned_epoch"]), int(meta["classified_epoch"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: bad gekodata sampler metadata ({exc})") from None
    store = sampler_file_store_state(arrays, meta)
    known = set(COLUMNS) | set(OPTIONAL_COLUMNS)
    store["columns"] = {k: v for k, v in store["columns"].items() if k in known}
    audit = arrays.get("audit_pending")
    pending = PendingRows.from_file_parts(where, arrays, meta.get("pending"))
    return SamplerSnapshot(
        settings={k: meta.get(k) for k in (*SETTINGS, "policy")},
        store=store,
        plan=np.array(plan),
        epoch=epochs[0],
        planned_epoch=epochs[1],
        classified_epoch=epochs[2],
        records=records,
        loss_weights=np.array(arrays["loss_weights"], dtype=np.float32) if loss_weights else None,
        audit_pending=None if audit is None else np.array(audit, dtype=np.int64),
        pending=pending,
        policy_arrays=policy_arrays,
    )


def _check_same_settings(where: str, meta: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    saved = dict(meta)
    saved.setdefault("audit_fraction", 0.0)  # files from before the audit existed
    if not saved["audit_fraction"] and not expected["audit_fraction"]:
        saved["audit_margin"] = expected["audit_margin"]  # the margin is unused without audits
    # through the policy class, so settings added since the file was written take defaults
    with contextlib.suppress(TypeError, ValueError, KeyError):
        saved["policy"] = policy_from_config(meta.get("policy", {})).config()
    for key in STRICT_SETTINGS:
        current = json.loads(json.dumps(expected[key]))
        if current != saved.get(key):
            raise ValueError(
                f"{where}: saved {key} differs from this sampler's: "
                f"{_difference(saved.get(key), current)} (pass strict=False to load anyway)"
            )


def _difference(saved: Any, current: Any) -> str:
    """``saved X, this sampler's Y``; for two configs (dicts), only the entries that differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
        saved = {k: saved.get(k) for k in keys}
        current = {k: current.get(k) for k in keys}
    return f"saved {saved!r}, this sampler's {current!r}"


def check_settings(
    num_samples: int,
    policy: Any,
    *,
    num_epochs: int,
    seed: int,
    budget: Any,
    unbiased: bool,
    unbiased_floor: float,
    sync_every: int | None,
    store: Any,
) -> None:
    """``ValueError`` naming the first of a new sampler's settings that is out of range or
    inconsistent (the constructor's arguments of :class:`~gekodata.WeightedBucketSampler`);
    ``TypeError`` for a ``policy`` that is not a :class:`SelectionPolicy` (a preset's name such
    as ``AGGRESSIVE`` included: :func:`~gekodata.policy.registry.not_a_policy`)."""
    if int(num_epochs) < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    resolve_budget(budget, 0, num_samples)  # validates the budget's type and range
    if not isinstance(policy, SelectionPolicy):
        raise not_a_policy(policy)
    if unbiased and policy.provides_loss_weights:
        raise ValueError(
            f"{type(policy).__name__} brings its own loss weights; unbiased=True would replace them"
        )
    if unbiased and not (float(unbiased_floor) > 0.0 and np.isfinite(unbiased_floor)):
        raise ValueError(f"unbiased_floor must be finite and > 0, got {unbiased_floor}")
    if sync_every is not None and int(sync_every) < 1:
        raise ValueError(f"sync_every must be >= 1 or None, got {sync_every}")
    if store is not None and len(store) != num_samples:
        raise ValueError(f"store has {len(store)} rows but the dataset has {num_samples} samples")
