"""Data maps and summaries of a saved training state, from the online store (no extra passes).

A data map (Swayamdipta et al., "Dataset Cartography", EMNLP 2020) places every sample by its
*confidence* (mean probability of the target across training) against its *variability* (the
spread of that probability). Cartography records the probability at every epoch and takes the
mean and standard deviation; the store keeps moving averages instead, so here:

* confidence = the store's confidence EMA (probability of the target, in [0, 1]);
* variability = ``min(confidence * loss_std, 0.5)``: the store keeps the exponential moving
  standard deviation of the loss, and with ``p = exp(-loss)`` the delta method gives
  ``std(p) ~= p * std(loss)``. 0.5 is the largest standard deviation a quantity in [0, 1] can
  have, so the (first-order) estimate is capped there.

Samples never reported (``visits == 0``) have neither and are left out of the map (their count is
shown). Stores larger than ``max_points`` are drawn from a uniform random subset of the seen
samples, chosen by a private generator with a fixed seed (the same file gives the same picture);
the summary statistics always use every sample.

Files: :func:`load_state` reads a store file (:meth:`GEKOStateStore.save`, format
"gekodata.state") or a sampler file (:meth:`WeightedBucketSampler.save`, format
"gekodata.sampler", which also carries the per-epoch efficiency records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..policy import Bucket, policy_from_config
from ..policy.diagnosis import DataDiagnosis, diagnose
from ..store.files import (
    SAMPLER_FORMAT,
    STATE_FORMAT,
    read_state_file,
    sampler_file_store_state,
    sampler_meta,
    store_state_from_parts,
)
from ..store.state_store import GEKOStateStore
from .efficiency import BUCKET_COLORS, EfficiencyReport, records_from_dicts

DEFAULT_MAX_POINTS = 200_000
"""Most points :func:`plot_data_map` draws; larger stores are subsampled."""
DEFAULT_SEED = 0
"""Seed of the private generator that picks the subsample."""
MAX_VARIABILITY = 0.5
"""Cap of the variability estimate: the largest std of a quantity in [0, 1]."""

_FALLBACK_COLORS = ("#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#1f77b4")
_CHUNK = 1 << 22  # positions per chunk when mapping subsample ranks to sample indices


@dataclass
class LoadedState:
    """What :func:`load_state` read: the store, and for sampler files the run's history.

    Attributes:
        path: the file read.
        kind: ``"store"`` (format "gekodata.state") or ``"sampler"`` ("gekodata.sampler").
        store: a new :class:`GEKOStateStore` holding the saved columns.
        report: the per-epoch :class:`EfficiencyReport` (sampler files only, else None).
        run: sampler files only: ``epoch``, ``num_epochs``, ``seed``, ``budget`` and ``policy``
            as saved; empty for store files.
    """

    path: str
    kind: str
    store: GEKOStateStore
    report: EfficiencyReport | None = None
    run: dict[str, Any] = field(default_factory=dict)


def load_state(path: str | os.PathLike) -> LoadedState:
    """Read a store or sampler file (once), detecting which from its metadata ``format``.

    Raises ``FileNotFoundError``/``OSError`` for unreadable paths and ``ValueError`` for any
    other file (another format, a truncated or corrupt file, an unsupported format version).
    """
    path = os.fspath(path)
    try:
        arrays, metadata = read_state_file(path, expected_format=None)
    except ValueError as exc:
        raise ValueError(f"{path}: not a gekodata state file ({exc})") from None
    fmt = metadata.get("format", "")
    if fmt == STATE_FORMAT:
        return LoadedState(
            path,
            "store",
            GEKOStateStore.from_state_dict(
                store_state_from_parts(path, arrays, metadata), where=path
            ),
        )
    if fmt != SAMPLER_FORMAT:
        raise ValueError(
            f"{path}: not a gekodata state or sampler file (format={fmt or None!r}; "
            f"expected {STATE_FORMAT!r} or {SAMPLER_FORMAT!r})"
        )
    meta = sampler_meta(path, metadata)
    try:
        store_state = sampler_file_store_state(arrays, meta)
        records = records_from_dicts(meta.get("records", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad gekodata sampler metadata ({exc})") from None
    # every "store.<column>" array: the store itself decides which columns it accepts
    store = GEKOStateStore.from_state_dict(store_state, where=path)
    run = {key: meta.get(key) for key in ("epoch", "num_epochs", "seed", "budget", "policy")}
    # reports saved unfolded (a checkpoint carries them) count as trained, as the live sampler
    # counts its buffered reports; the store is as of the run's last sync point
    pending = sum(int(n) for n in (meta.get("pending") or {}).get("rows", []))
    run["pending_reports"] = pending
    passes = 0
    if pending and records:
        passes = policy_from_config(meta.get("policy") or {}).passes(pending)
        records[-1].reported += passes
    report = EfficiencyReport(records, pending=passes, data=diagnose(store))
    return LoadedState(path, "sampler", store, report, run)


# ---------------------------------------------------------------------------- signals
def variability(store: GEKOStateStore) -> np.ndarray:
    """Variability per sample, float32 [N]: ``min(confidence * loss_std, 0.5)``.

    The delta-method estimate of the std of the target probability ``p = exp(-loss)``:
    ``std(p) ~= p * std(loss)``, with ``p`` the confidence EMA and ``std(loss)`` the store's
    exponential moving standard deviation of the loss (:attr:`GEKOStateStore.loss_std`),
    capped at 0.5 (the largest std of a quantity in [0, 1]). 0 for unseen samples.
    """
    return np.minimum(store.confidence * store.loss_std, np.float32(MAX_VARIABILITY))


def subsample_seen(seen: np.ndarray, max_points: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Sorted int64 indices of at most ``max_points`` samples where ``seen`` (bool [N]) is True.

    All of them if there are no more than ``max_points``; otherwise a uniform random subset
    without replacement, drawn by ``np.random.default_rng(seed)`` (deterministic). Memory is
    O(max_points) plus one chunk of positions, so it also serves 100M-sample stores.
    """
    max_points = int(max_points)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    seen = np.asarray(seen, dtype=bool)
    num_seen = int(np.count_nonzero(seen))
    if num_seen <= max_points:
        return np.flatnonzero(seen).astype(np.int64, copy=False)
    rng = np.random.default_rng(seed)
    ranks = np.sort(rng.choice(num_seen, size=max_points, replace=False))
    out = np.empty(max_points, dtype=np.int64)
    first_rank = 0
    for lo in range(0, len(seen), _CHUNK):
        pos = np.flatnonzero(seen[lo : lo + _CHUNK])
        a, b = np.searchsorted(ranks, [first_rank, first_rank + len(pos)])
        out[a:b] = pos[ranks[a:b] - first_rank] + lo
        first_rank += len(pos)
    return out


def bucket_name(code: int) -> str:
    """The :class:`Bucket` member's name for ``code``, or ``"code<k>"`` for codes it lacks."""
    try:
        return Bucket(int(code)).name
    except ValueError:
        return f"code{int(code)}"


def bucket_counts(store: GEKOStateStore) -> dict[str, int]:
    """Samples per bucket code, every :class:`Bucket` member by name (in code order, zeros
    included) plus ``"code<k>"`` for stored codes that are not members."""
    counts = np.bincount(store.bucket, minlength=max(8, max(m.value for m in Bucket) + 1))
    out = {member.name: int(counts[member.value]) for member in Bucket}
    known = {member.value for member in Bucket}
    out.update(
        {
            f"code{code}": int(counts[code])
            for code in np.flatnonzero(counts)
            if int(code) not in known
        }
    )
    return out


@dataclass
class DataMapPoints:
    """The points of a data map (all arrays [K], K <= max_points).

    Attributes:
        index: int64 sample indices (sorted).
        confidence: float32 confidence EMA of those samples.
        variability: float32 variability (see :func:`variability`).
        bucket: uint8 bucket codes.
        num_samples: N, rows in the store.
        num_seen: samples with at least one report (the population subsampled).
        subsampled: whether ``index`` is a subset of the seen samples.
        counts: seen samples per bucket name, over *all* seen samples.
    """

    index: np.ndarray
    confidence: np.ndarray
    variability: np.ndarray
    bucket: np.ndarray
    num_samples: int
    num_seen: int
    subsampled: bool
    counts: dict[str, int]

    @property
    def num_unseen(self) -> int:
        return self.num_samples - self.num_seen


def data_map_points(
    store: GEKOStateStore, *, max_points: int = DEFAULT_MAX_POINTS, seed: int = DEFAULT_SEED
) -> DataMapPoints:
    """Confidence, variability and bucket of the seen samples (subsampled above ``max_points``,
    see :func:`subsample_seen`)."""
    seen = store.seen
    index = subsample_seen(seen, max_points, seed)
    num_seen = int(np.count_nonzero(seen))
    seen_codes = np.bincount(store.bucket[seen], minlength=8)
    counts = {bucket_name(int(code)): int(seen_codes[code]) for code in np.flatnonzero(seen_codes)}
    return DataMapPoints(
        index=index,
        confidence=store.confidence[index],
        variability=variability(store)[index],
        bucket=store.bucket[index],
        num_samples=len(store),
        num_seen=num_seen,
        subsampled=len(index) < num_seen,
        counts=counts,
    )


def _bucket_style(name: str, fallback: int) -> tuple[str, str, float]:
    """(colour, marker, size) of a bucket; SUSPECT stands out, unknown names get a fallback."""
    color = BUCKET_COLORS.get(name, _FALLBACK_COLORS[fallback % len(_FALLBACK_COLORS)])
    if name == "SUSPECT":
        return color, "x", 14.0
    return color, "o", 5.0


def plot_data_map(
    store: GEKOStateStore,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    seed: int = DEFAULT_SEED,
) -> DataMapPoints:
    """Write a PNG data map of ``store`` to ``path``: confidence vs variability per seen sample,
    coloured by bucket (SUSPECT drawn on top with crosses). Returns the points drawn.

    Variability is ``min(confidence * loss_std, 0.5)`` (delta method, see the module
    docstring). Unseen samples are left out and counted in the title; above ``max_points`` seen
    samples a deterministic uniform subset (``seed``) is drawn, legend counts still cover all.
    Needs matplotlib (``pip install 'gekodata[plot]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plot_data_map needs matplotlib: pip install 'gekodata[plot]'") from exc
    points = data_map_points(store, max_points=max_points, seed=seed)
    fig, ax = plt.subplots(figsize=(7, 6))
    known = {member.value for member in Bucket}
    extra_codes = [int(c) for c in np.unique(points.bucket) if int(c) not in known]
    codes = [member.value for member in Bucket if member.name != "SUSPECT"] + extra_codes
    codes += [member.value for member in Bucket if member.name == "SUSPECT"]  # drawn last, on top
    for k, code in enumerate(codes):
        name = bucket_name(code)
        count = points.counts.get(name, 0)
        if count == 0:
            continue
        mask = points.bucket == code
        color, marker, size = _bucket_style(name, k)
        ax.scatter(
            points.variability[mask],
            points.confidence[mask],
            s=size,
            c=color,
            marker=marker,
            alpha=0.6 if marker == "o" else 0.9,
            linewidths=0.8 if marker == "x" else 0,
            label=f"{name.lower()} ({count:,})",
        )
    ax.set_xlabel("variability  ~ confidence x std(loss)  (delta method for std of p)")
    ax.set_ylabel("confidence  (EMA of the target probability)")
    ax.set_xlim(-0.01, max(0.05, float(points.variability.max(initial=0.0)) * 1.05))
    ax.set_ylim(-0.02, 1.02)
    if points.num_seen:
        ax.legend(
            fontsize=8,
            loc="lower right",
            markerscale=2,
            title="bucket (seen samples)",
            title_fontsize=8,
        )
    parts = [f"{points.num_seen:,} of {points.num_samples:,} samples seen"]
    if points.num_unseen:
        parts.append(f"{points.num_unseen:,} unseen not shown")
    if store.num_pruned:
        parts.append(f"{store.num_pruned:,} pruned (shown)")
    if points.subsampled:
        parts.append(f"{len(points.index):,} drawn (uniform subsample)")
    subtitle = "; ".join(parts)
    ax.set_title(f"{title}\n{subtitle}" if title else f"data map: {subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
    return points


# ---------------------------------------------------------------------------- summary
def _visits_median(visits: np.ndarray) -> float:
    """Median of integer visit counts via a histogram (no sort of N values)."""
    if len(visits) == 0:
        return 0.0
    hist = np.bincount(visits)
    cum = np.cumsum(hist)
    n = int(cum[-1])
    lo = int(np.searchsorted(cum, (n - 1) // 2, side="right"))
    hi = int(np.searchsorted(cum, n // 2, side="right"))
    return (lo + hi) / 2.0


def summarize(loaded: LoadedState | GEKOStateStore) -> dict[str, Any]:
    """JSON-serialisable summary of a store (all samples, vectorized).

    Keys: ``num_samples``, ``seen``, ``unseen``, ``pruned``, ``visits`` (total, mean/median over
    seen samples, max), ``buckets`` (every :class:`Bucket` member by name: count and share of all
    samples), ``mean_confidence``/``mean_correctness``/``mean_loss``/``mean_variability`` over
    seen samples (None if none), ``total_updates``, ``loss_scale``, ``data`` (what the store says
    about the data, :meth:`DataDiagnosis.to_dict
    <gekodata.policy.diagnosis.DataDiagnosis.to_dict>`); for sampler files also
    ``kind``, ``run`` and ``efficiency`` (:meth:`EfficiencyReport.to_dict`, with
    ``fraction_saved``).
    """
    if isinstance(loaded, GEKOStateStore):
        loaded = LoadedState("", "store", loaded)
    store = loaded.store
    n = len(store)
    visits = store.visits
    seen = visits > 0
    num_seen = int(np.count_nonzero(seen))
    seen_visits = visits[seen]

    def seen_mean(values: np.ndarray) -> float | None:
        return float(values[seen].mean(dtype=np.float64)) if num_seen else None

    counts = bucket_counts(store)
    out: dict[str, Any] = {
        "path": loaded.path,
        "kind": loaded.kind,
        "num_samples": n,
        "seen": num_seen,
        "unseen": n - num_seen,
        "pruned": store.num_pruned,
        "visits": {
            "total": int(visits.sum(dtype=np.int64)),
            "mean_seen": float(seen_visits.mean(dtype=np.float64)) if num_seen else 0.0,
            "median_seen": _visits_median(seen_visits),
            "max": int(visits.max(initial=0)),
        },
        "buckets": {name: {"count": c, "share": c / n if n else 0.0} for name, c in counts.items()},
        "mean_confidence": seen_mean(store.confidence),
        "mean_correctness": seen_mean(store.correctness),
        "mean_loss": seen_mean(store.loss),
        "mean_variability": seen_mean(variability(store)),
        "total_updates": int(store.total_updates),
        "loss_scale": float(store.loss_scale),
        "data": diagnose(store).to_dict(),
    }
    if loaded.kind == "sampler":
        out["run"] = dict(loaded.run)
    if loaded.report is not None:
        out["efficiency"] = loaded.report.to_dict()
    return out


def format_summary(summary: dict[str, Any], report: EfficiencyReport | None = None) -> str:
    """Human-readable text of :func:`summarize`'s dict (plus ``str(report)`` when given)."""
    n = summary["num_samples"]

    def pct(count: int) -> str:
        return f"{count / n:.1%}" if n else "-"

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    v = summary["visits"]
    head = (
        f"{summary['path']} ({summary['kind']} file)"
        if summary.get("path")
        else f"({summary['kind']})"
    )
    lines = [head]
    run = summary.get("run")
    if run:
        policy = dict(run.get("policy") or {})
        phases = [p.get("name", "?") for p in policy.pop("curriculum", []) if isinstance(p, dict)]
        settings = ", ".join(f"{k}={v}" for k, v in policy.items())
        lines.append(
            f"run: epoch {run.get('epoch')} of {run.get('num_epochs')}, seed {run.get('seed')}, "
            f"budget {run.get('budget')}"
        )
        lines.append(f"policy: {settings}" + (f"; curriculum {'/'.join(phases)}" if phases else ""))
    lines += [
        (
            f"samples: {n:,}  seen: {summary['seen']:,} ({pct(summary['seen'])})  "
            f"unseen: {summary['unseen']:,}  pruned: {summary['pruned']:,} ({pct(summary['pruned'])})"
        ),
        (
            f"visits: total {v['total']:,}  mean {v['mean_seen']:.2f} / median {v['median_seen']:g} per seen "
            f"sample  max {v['max']:,}"
        ),
        (
            f"seen samples: mean confidence {num(summary['mean_confidence'])}  "
            f"mean correctness {num(summary['mean_correctness'])}  mean loss {num(summary['mean_loss'])}  "
            f"mean variability {num(summary['mean_variability'])}"
        ),
        "buckets:",
    ]
    width = max(len(name) for name in summary["buckets"])
    count_width = max(len(f"{b['count']:,}") for b in summary["buckets"].values())
    for name, b in summary["buckets"].items():
        lines.append(f"  {name.lower():<{width}}  {b['count']:>{count_width},}  {b['share']:>6.1%}")
    if report is not None:  # its text ends with what the store says about the data
        lines += ["efficiency per epoch:", str(report)]
        lines.append(f"saved fraction: {report.fraction_saved:.1%} of full-data sample passes")
    elif summary.get("data"):
        lines += DataDiagnosis.from_dict(summary["data"]).lines()
    return "\n".join(lines)


__all__: list[str] = [
    "DEFAULT_MAX_POINTS",
    "DataMapPoints",
    "LoadedState",
    "bucket_counts",
    "data_map_points",
    "format_summary",
    "load_state",
    "plot_data_map",
    "subsample_seen",
    "summarize",
    "variability",
]
