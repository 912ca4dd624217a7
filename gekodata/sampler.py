"""`WeightedBucketSampler`: the torch Sampler that plans each epoch from per-sample state.

Data flow: the user's loop calls :meth:`WeightedBucketSampler.report` with per-sample signals →
the :class:`~gekodata.state.GEKOStateStore` folds them in → at the next epoch boundary the
:class:`~gekodata.policy.BucketPolicy` classifies samples and weighs them for the curriculum
phase → :mod:`gekodata.plan` turns weights into draw counts and a shuffled index stream → the
DataLoader reads it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sized, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Sampler

from .dataset import PruningDataset
from .plan import Budget, draw_counts, epoch_generator, resolve_budget, shuffled_plan
from .policy import Bucket, BucketPolicy, Phase
from .report import EfficiencyReport, EpochRecord
from .state import GEKOStateStore

SignalInput = Union[torch.Tensor, np.ndarray, "list[float]", None]

_ITER_CHUNK = 1 << 16


@dataclass
class _PendingReport:
    """A report from a CUDA device, kept on the device until the next flush (no host sync)."""

    number: int
    idx: torch.Tensor
    loss: torch.Tensor
    conf: Optional[torch.Tensor]
    correct: Optional[torch.Tensor]


class WeightedBucketSampler(Sampler[int]):
    """Draws each epoch's sample indices from bucket weights; learns from :meth:`report`.

    Args:
        data_source: the dataset the loader reads, usually a :class:`PruningDataset` (needed for
            pruning and for unbiased loss weights); any sized dataset works otherwise.
        policy: bucket rules and curriculum; default ``BucketPolicy()`` (GEKO's thresholds and
            mountain curriculum).
        num_epochs: epochs the run will train; curriculum progress of epoch ``e`` is
            ``(e + 0.5) / num_epochs`` (see :mod:`gekodata.policy`).
        seed: seeds the private per-epoch generator ``default_rng([seed, epoch])``; no global RNG
            is read or written.
        budget: draws per epoch. None (default): the number of samples with weight > 0, so frozen
            and pruned samples shorten the epoch. An int: exactly that many. A float in (0, 1]:
            that fraction of the full dataset (for same-budget comparisons).
        unbiased: attach a loss weight ``v_i = sum(w) / (N_live * w_i)`` to every draw, so that
            the epoch mean of ``v * loss`` estimates the mean loss over all live samples. Every
            live sample then keeps at least ``unbiased_floor`` weight.
        unbiased_floor: weight given in unbiased mode to live samples whose bucket weight is 0
            (e.g. FREEZE); each such sample adds this fraction of a pass to the default budget.
        store: an existing store to continue from; default a fresh ``GEKOStateStore``.
        flush_every: reports from CUDA tensors stay on the device and are folded into the store
            at epoch boundaries, on :meth:`flush`, and after this many reports (one host sync
            each). CPU tensors and numpy arrays are validated and applied at once.

    Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``: it makes that
    epoch's plan from the reports received so far (epoch 0 is planned on first use if
    ``set_epoch(0)`` is never called). Epoch 0 (nothing reported yet) visits every sample
    exactly once.
    """

    def __init__(
        self,
        data_source: Sized,
        policy: Optional[BucketPolicy] = None,
        *,
        num_epochs: int,
        seed: int = 0,
        budget: Budget = None,
        unbiased: bool = False,
        unbiased_floor: float = 0.1,
        store: Optional[GEKOStateStore] = None,
        flush_every: int = 256,
    ) -> None:
        num_samples = data_source.num_samples if isinstance(data_source, PruningDataset) else len(data_source)
        if int(num_epochs) < 1:
            raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        resolve_budget(budget, 0, num_samples)  # validates the budget's type and range
        if unbiased and not (0.0 < float(unbiased_floor) and math.isfinite(unbiased_floor)):
            raise ValueError(f"unbiased_floor must be finite and > 0, got {unbiased_floor}")
        if int(flush_every) < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        if store is not None and len(store) != num_samples:
            raise ValueError(f"store has {len(store)} rows but the dataset has {num_samples} samples")
        self.data_source = data_source
        self.num_samples = num_samples
        self.policy = policy if policy is not None else BucketPolicy()
        self.num_epochs = int(num_epochs)
        self.seed = int(seed)
        self.budget = budget
        self.unbiased = bool(unbiased)
        self.unbiased_floor = float(unbiased_floor)
        self.flush_every = int(flush_every)
        self._store = store if store is not None else GEKOStateStore(num_samples)
        self._loss_weights: Optional[torch.Tensor] = None
        if self.unbiased:
            self._loss_weights = torch.ones(num_samples, dtype=torch.float32)
            if isinstance(data_source, PruningDataset):
                # shared memory: persistent DataLoader workers see each epoch's new weights
                self._loss_weights.share_memory_()
        if isinstance(data_source, PruningDataset):
            data_source._attach(self._store, self._loss_weights)
        self.epoch = 0
        self._plan: Optional[np.ndarray] = None
        self._planned_epoch: Optional[int] = None
        self._classified_epoch = -1
        self._records: List[EpochRecord] = []
        self._pending: List[_PendingReport] = []
        self._num_reports = 0

    # ------------------------------------------------------------------ store
    @property
    def store(self) -> GEKOStateStore:
        """The per-sample state, with every pending report applied."""
        self.flush()
        return self._store

    @property
    def prune_frozen_after(self) -> Optional[int]:
        if isinstance(self.data_source, PruningDataset):
            return self.data_source.prune_frozen_after
        return None

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (0-based): fold in all reports so far and make its plan.

        Classification, frozen streaks and pruning advance once per new epoch; calling it
        again with the same epoch keeps the same plan.
        """
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch
        self._ensure_plan()

    def __len__(self) -> int:
        return len(self._ensure_plan())

    def __iter__(self) -> Iterator[int]:
        plan = self._ensure_plan()
        for start in range(0, len(plan), _ITER_CHUNK):
            yield from plan[start : start + _ITER_CHUNK].tolist()

    @property
    def plan(self) -> np.ndarray:
        """The current epoch's index stream, int [len(self)] (read-only view)."""
        view = self._ensure_plan().view()
        view.flags.writeable = False
        return view

    @property
    def phase(self) -> Phase:
        """Curriculum phase of the current epoch."""
        return self.policy.curriculum.phase_for_epoch(self.epoch, self.num_epochs)

    def _ensure_plan(self) -> np.ndarray:
        if self._plan is None or self._planned_epoch != self.epoch:
            self._plan = self._make_plan(self.epoch)
            self._planned_epoch = self.epoch
        return self._plan

    def _make_plan(self, epoch: int) -> np.ndarray:
        started = time.perf_counter()
        self.flush()
        store = self._store
        if epoch > self._classified_epoch:
            # a new epoch: classify, advance frozen streaks, prune (once per epoch)
            codes = self.policy.classify(store)
            store.set_buckets(codes, codes == Bucket.FREEZE)
            limit = self.prune_frozen_after
            if limit:
                store.set_pruned(store.frozen_streak >= limit)
            self._classified_epoch = epoch
        codes = store.bucket
        phase = self.policy.curriculum.phase_for_epoch(epoch, self.num_epochs)
        weights = self.policy.sample_weights(store, codes, phase)
        num_positive = int(np.count_nonzero(weights))
        floored = 0
        if self.unbiased:
            live = ~store.pruned
            if self.policy.max_times_seen is not None:
                live &= store.visits < self.policy.max_times_seen
            to_floor = live & (weights < self.unbiased_floor)
            floored = int(np.count_nonzero(to_floor & (weights == 0)))
            weights[to_floor] = self.unbiased_floor
        total = resolve_budget(self.budget, num_positive, self.num_samples, extra=floored * self.unbiased_floor)
        rng = epoch_generator(self.seed, epoch)
        counts = draw_counts(weights, total, rng)
        plan = shuffled_plan(counts, rng)
        if self._loss_weights is not None:
            self._set_loss_weights(weights)
        if isinstance(self.data_source, PruningDataset):
            self.data_source._num_live = self.num_samples - store.num_pruned
        record = EpochRecord(
            epoch=epoch,
            phase=phase.name,
            num_samples=self.num_samples,
            planned=len(plan),
            unique_planned=int(np.count_nonzero(counts)),
            pruned=store.num_pruned,
            buckets={b.name: int(n) for b, n in zip(Bucket, np.bincount(codes, minlength=len(Bucket)))},
            plan_seconds=time.perf_counter() - started,
        )
        self._records = [r for r in self._records if r.epoch != epoch] + [record]
        return plan

    def _set_loss_weights(self, weights: np.ndarray) -> None:
        positive = weights > 0
        num_live = int(np.count_nonzero(positive))
        values = np.zeros(len(weights), dtype=np.float32)
        if num_live:
            values[positive] = weights.sum() / (num_live * weights[positive])
        self._loss_weights.copy_(torch.from_numpy(values))

    def loss_weights(self, idx: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
        """Unbiased-mode loss weight of each index (float32, same device as a tensor ``idx``)."""
        if self._loss_weights is None:
            raise RuntimeError("loss weights exist only with unbiased=True")
        self._ensure_plan()
        index = idx.cpu().long() if isinstance(idx, torch.Tensor) else torch.from_numpy(np.array(idx, dtype=np.int64))
        out = self._loss_weights[index]
        return out.to(idx.device) if isinstance(idx, torch.Tensor) else out

    # ------------------------------------------------------------------ reports
    def report(
        self,
        loss: SignalInput,
        conf: SignalInput = None,
        correct: SignalInput = None,
        idx: SignalInput = None,
    ) -> None:
        """Record per-sample signals of one batch.

        Args:
            loss: float [B], per-sample loss (>= 0, finite), e.g. from
                :func:`gekodata.signals.classification_signals`. Detached here.
            conf: float [B] in [0, 1], probability of the target; None derives ``exp(-loss)``
                (exact for cross-entropy losses).
            correct: bool/float [B] in [0, 1]; None derives ``conf > 0.5`` (which implies a
                correct argmax for cross-entropy).
            idx: int [B], the samples' positions in the original dataset (``batch["idx"]`` from
                :class:`PruningDataset`). Required.

        Torch tensors on any device or numpy arrays. CPU inputs are validated now: a bad call
        raises ``ValueError`` naming the problem and leaves the store unchanged. CUDA inputs are
        shape-checked now and stay on the device; their values are checked when they are
        folded in (see ``flush_every``), where a bad report raises and all pending ones are
        dropped.
        """
        if idx is None:
            raise ValueError("report() needs idx: the samples' indices (batch['idx'] from PruningDataset)")
        self._ensure_plan()  # the current epoch's plan predates its reports
        self._num_reports += 1
        if any(isinstance(x, torch.Tensor) and x.device.type != "cpu" for x in (loss, conf, correct, idx)):
            pending = _PendingReport(
                self._num_reports,
                *(_detach_device(x) for x in (idx, loss, conf, correct)),
            )
            arrays = [pending.idx, pending.loss, pending.conf, pending.correct]
            _check_shapes(*arrays)
            self._pending.append(pending)
            self._count_reported(len(pending.idx))
            if len(self._pending) >= self.flush_every:
                self.flush()
            return
        idx_np, loss_np, conf_np, correct_np = (_to_numpy(x) for x in (idx, loss, conf, correct))
        self._apply(idx_np, loss_np, conf_np, correct_np)
        self._count_reported(len(idx_np))

    def _count_reported(self, n: int) -> None:
        self._records[-1].reported += n

    def _apply(self, idx: np.ndarray, loss: np.ndarray, conf: Optional[np.ndarray],
               correct: Optional[np.ndarray]) -> None:
        _check_shapes(idx, loss, conf, correct)
        if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
            if idx.size and np.issubdtype(idx.dtype, np.floating) and np.all(np.mod(idx, 1) == 0):
                raise ValueError(
                    f"idx must be an integer array, got {idx.dtype}; indices must never travel as floats "
                    "(float32 loses integers above 2^24)"
                )
            raise ValueError(f"idx must be an integer array, got dtype {idx.dtype}")
        loss = loss.astype(np.float64, copy=False)
        self._store.validate(idx, loss, conf, correct.astype(np.float64) if correct is not None else None)
        if conf is None:
            conf = np.exp(-loss)
        if correct is None:
            correct = conf > 0.5
        self._store.update(idx, loss, conf, correct.astype(np.float64))

    def flush(self) -> None:
        """Fold reports still held on a device into the store (one host sync)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        moved = []
        for p in pending:
            moved.append((p.number,) + tuple(None if t is None else t.cpu().numpy() for t in (p.idx, p.loss, p.conf, p.correct)))
        for number, idx, loss, conf, correct in moved:
            try:
                self._store.validate(idx, loss.astype(np.float64), conf,
                                     None if correct is None else correct.astype(np.float64))
            except ValueError as exc:
                raise ValueError(f"report #{number} (deferred, on device): {exc}; "
                                 f"{len(moved)} pending reports were dropped") from None
        for _, idx, loss, conf, correct in moved:
            self._apply(idx, loss, conf, correct)

    # ------------------------------------------------------------------ results
    def efficiency_report(self) -> EfficiencyReport:
        """What was planned and trained per epoch, counted from real reports."""
        self._ensure_plan()
        self.flush()
        return EfficiencyReport([r.copy() for r in self._records])

    def __repr__(self) -> str:
        return (f"WeightedBucketSampler(num_samples={self.num_samples}, epoch={self.epoch}, "
                f"num_epochs={self.num_epochs}, budget={self.budget!r}, unbiased={self.unbiased})")


def _detach_device(x: SignalInput) -> Optional[torch.Tensor]:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.as_tensor(np.asarray(x))


def _to_numpy(x: SignalInput) -> Optional[np.ndarray]:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _check_shapes(idx: Any, loss: Any, conf: Any, correct: Any) -> None:
    named: Tuple[Tuple[str, Any], ...] = (("idx", idx), ("loss", loss), ("conf", conf), ("correct", correct))
    for name, arr in named:
        if arr is not None and len(arr.shape) != 1:
            raise ValueError(f"{name} must be 1-D (one value per sample), got shape {tuple(arr.shape)}")
    for name, arr in named[1:]:
        if arr is not None and arr.shape[0] != idx.shape[0]:
            raise ValueError(
                f"{name} has {arr.shape[0]} entries but idx has {idx.shape[0]}; "
                "all report arrays must have the same length"
            )
