"""`WeightedBucketSampler`: the torch Sampler that plans each epoch from per-sample state.

Data flow: the user's loop calls :meth:`WeightedBucketSampler.report` with per-sample signals →
reports wait in a buffer until the next sync point, where (gathered across ranks under
``torch.distributed``) they are folded into the :class:`~gekodata.state.GEKOStateStore` in one
update → at the next epoch boundary the :class:`~gekodata.policy.BucketPolicy` classifies samples
and weighs them for the curriculum phase → :mod:`gekodata.plan` turns weights into draw counts
and a shuffled global index stream → each rank reads its shard through its DataLoader.
"""
from __future__ import annotations

import csv
import json
import io
import math
import operator
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, List, Optional, Sized, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Sampler

from . import distributed as gdist
from .dataset import PruningDataset
from .plan import Budget, draw_counts, epoch_generator, resolve_budget, shuffled_plan
from .policy import Bucket, BucketPolicy, Phase, SelectionPolicy, policy_from_config
from .report import EfficiencyReport, EpochRecord, records_from_dicts
from .io import atomic_write, read_sampler_file, sampler_file_store_state, write_sampler_file
from .state import COLUMNS, OPTIONAL_COLUMNS, GEKOStateStore, check_report_shapes

SignalInput = Union[torch.Tensor, np.ndarray, "list[float]", None]

_ITER_CHUNK = 1 << 16
_FINGERPRINT_LEN = 32
_AUDIT_STREAM = 1  # third seed word of the audit generator: independent of the plan's draws


class WeightedBucketSampler(Sampler[int]):
    """Draws each epoch's sample indices from bucket weights; learns from :meth:`report`.

    Args:
        data_source: the dataset the loader reads, usually a :class:`PruningDataset` (needed for
            pruning and for unbiased loss weights); any sized dataset works otherwise.
        policy: a :class:`~gekodata.policy.SelectionPolicy`: bucket rules and curriculum; default
            ``BucketPolicy()`` (GEKO's thresholds and mountain curriculum). Others:
            ``BucketPolicy.uniform()`` (with ``budget``: a random subset per epoch) and
            ``InfoBatchPolicy()`` (brings its own loss weights).
        num_epochs: epochs the run will train; curriculum progress of epoch ``e`` is
            ``(e + 0.5) / num_epochs`` (see :mod:`gekodata.policy`).
        seed: seeds the private per-epoch generator ``default_rng([seed, epoch])``; no global RNG
            is read or written. Must be the same on every rank.
        budget: draws per epoch (global, over all ranks), forgetting audits included. None
            (default): the policy's default, for ``BucketPolicy`` the number of samples with
            weight > 0 (a SUSPECT sample counts ``suspect_weight`` of one), so frozen and pruned
            samples shorten the epoch; audits come on top of it. An int: exactly that many. A
            float in (0, 1]: that fraction of the full dataset (same-budget comparisons).
        unbiased: attach a loss weight ``v_i = sum(w) / (N_live * w_i)`` to every draw, so that
            the epoch mean of ``v * loss`` estimates the mean loss over all live samples. Every
            live sample then keeps at least ``unbiased_floor`` weight.
        unbiased_floor: weight given in unbiased mode to live samples whose bucket weight is lower
            (e.g. FREEZE); each such sample counts this fraction of a pass in the default budget.
        store: an existing store to continue from; default a fresh ``GEKOStateStore``.
        sync_every: fold reports into the store every this many :meth:`report` calls as well as
            at each epoch boundary (None: epoch boundaries only). Under ``torch.distributed``
            every rank must then call ``report`` equally often. Bounds the report buffer.
        rank, world_size: this process's rank and the number of ranks; default from the
            initialised ``torch.distributed`` process group, else 0 and 1.
        shard: True (default): every rank iterates its own equal-length, strided slice of the
            global plan (plain DataLoader per rank under torchrun, DDP, FSDP, DeepSpeed); the plan
            is padded cyclically to a multiple of ``world_size``. False: every rank iterates the
            whole global plan, for wrappers that shard batches themselves (accelerate's
            ``BatchSamplerShard``, the HF Trainer).
        audit_fraction: forgetting audit: each epoch this fraction (rounded up) of the samples
            that are frozen (FREEZE) or pruned and not otherwise planned is drawn once, chosen at
            random by a private generator seeded by (seed, epoch). Their draws are counted as
            ``audit_planned`` / ``audit_reported`` in the efficiency report. 0 (default) disables
            it. The loop needs no change: audited items come through the loader like any other.
            With loss weights (unbiased mode, ``InfoBatchPolicy``) an audited item carries weight
            0: it is checked, not trained, and the weighted loss stays unbiased.
        audit_margin: an audited sample whose reported loss exceeds its loss EMA by more than
            this (loss units; nats for cross-entropy) counts as forgotten: its state restarts from
            that report (not pruned, streaks and EMAs reset, visits kept), so it leaves FREEZE and
            is classified afresh at the next epoch.

    Epochs: call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``. It folds in
    every report so far and makes that epoch's plan (epoch 0 is planned on first use if
    ``set_epoch(0)`` is never called). Epoch 0 (nothing reported yet) visits every sample once.

    Sync points: reports are buffered (on their device for CUDA tensors, so ``report`` never
    forces a host sync) and folded into the store at :meth:`set_epoch` (and at the first use of
    the sampler, which plans epoch 0), :meth:`flush`, :meth:`save`, and every ``sync_every``
    reports. All reports of one sync window form one store
    update: the store depends on the multiset of reported (index, signals) per window, not on
    batch order, batch size or world size. :attr:`store` shows the state as of the last sync
    point. Under ``torch.distributed`` every sync point is a collective: all ranks must reach it.

    Resume: :meth:`state_dict`/:meth:`load_state_dict` implement torchdata's Stateful protocol
    (epoch and position in the stream; a few dozen bytes, no per-sample data), so a
    ``StatefulDataLoader`` resumes mid-epoch exactly. :meth:`save`/:meth:`load` persist the
    rest: store, plan, policy, epoch, seed and the per-epoch history.
    """

    def __init__(
        self,
        data_source: Sized,
        policy: Optional[SelectionPolicy] = None,
        *,
        num_epochs: int,
        seed: int = 0,
        budget: Budget = None,
        unbiased: bool = False,
        unbiased_floor: float = 0.1,
        store: Optional[GEKOStateStore] = None,
        sync_every: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        shard: bool = True,
        audit_fraction: float = 0.0,
        audit_margin: float = 0.5,
    ) -> None:
        num_samples = data_source.num_samples if isinstance(data_source, PruningDataset) else len(data_source)
        if int(num_epochs) < 1:
            raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        resolve_budget(budget, 0, num_samples)  # validates the budget's type and range
        policy = policy if policy is not None else BucketPolicy()
        if not isinstance(policy, SelectionPolicy):
            raise ValueError(f"policy must be a SelectionPolicy (BucketPolicy, InfoBatchPolicy), got {type(policy).__name__}")
        if unbiased and policy.provides_loss_weights:
            raise ValueError(f"{type(policy).__name__} brings its own loss weights; unbiased=True would replace them")
        if unbiased and not (0.0 < float(unbiased_floor) and math.isfinite(unbiased_floor)):
            raise ValueError(f"unbiased_floor must be finite and > 0, got {unbiased_floor}")
        if sync_every is not None and int(sync_every) < 1:
            raise ValueError(f"sync_every must be >= 1 or None, got {sync_every}")
        if not 0.0 <= float(audit_fraction) <= 1.0:
            raise ValueError(f"audit_fraction must be in [0, 1], got {audit_fraction}")
        if not (math.isfinite(float(audit_margin)) and float(audit_margin) >= 0):
            raise ValueError(f"audit_margin must be finite and >= 0, got {audit_margin}")
        if store is not None and len(store) != num_samples:
            raise ValueError(f"store has {len(store)} rows but the dataset has {num_samples} samples")
        self.data_source = data_source
        self.num_samples = num_samples
        self.policy = policy
        self.num_epochs = int(num_epochs)
        self.seed = int(seed)
        self.budget = budget
        self.unbiased = bool(unbiased)
        self.unbiased_floor = float(unbiased_floor)
        self.sync_every = None if sync_every is None else int(sync_every)
        self.rank, self.world_size = gdist.resolve_rank_world(rank, world_size)
        self.shard = bool(shard)
        self.audit_fraction = float(audit_fraction)
        self.audit_margin = float(audit_margin)
        self._audit_pending: Optional[np.ndarray] = None  # sorted int64: audits not yet reported
        self._store = store if store is not None else GEKOStateStore(num_samples)
        self._loss_weights: Optional[torch.Tensor] = None
        if self.unbiased or policy.provides_loss_weights:
            self._loss_weights = torch.ones(num_samples, dtype=torch.float32)
            if isinstance(data_source, PruningDataset):
                # shared memory: persistent DataLoader workers see each epoch's new weights
                self._loss_weights.share_memory_()
        if isinstance(data_source, PruningDataset):
            data_source._attach(self._store, self._loss_weights)
        self.epoch = 0
        self._plan: Optional[np.ndarray] = None
        self._local: Optional[np.ndarray] = None
        self._planned_epoch: Optional[int] = None
        self._classified_epoch = -1
        self._records: List[EpochRecord] = []
        self._pending: List[Tuple[Any, Any]] = []  # (idx and pred int64 [n, 2], values float32 [n, 3])
        self._pending_rows = 0
        self._reports_since_sync = 0
        self._resume_at: Optional[int] = None
        self._chunk_start = 0
        self._chunk_len = 0
        self._chunk_iter: Iterator[int] = iter(())

    # ------------------------------------------------------------------ store
    @property
    def store(self) -> GEKOStateStore:
        """The per-sample state as of the last sync point (see :meth:`flush`)."""
        return self._store

    @property
    def pending_reports(self) -> int:
        """Reported rows on this rank not yet folded into the store."""
        return self._pending_rows

    @property
    def prune_frozen_after(self) -> Optional[int]:
        if isinstance(self.data_source, PruningDataset):
            return self.data_source.prune_frozen_after
        return None

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (0-based): fold in all reports so far and make its plan.

        Classification, frozen streaks and pruning advance once per new epoch; calling it
        again with the same epoch keeps the same plan (and a resumed position).
        """
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch
        self._ensure_plan()

    def __len__(self) -> int:
        """Indices this rank iterates in the current epoch (known before iteration)."""
        return len(self._local_plan())

    def __iter__(self) -> Iterator[int]:
        local = self._local_plan()
        start = self._resume_at or 0
        self._resume_at = None
        self._chunk_start, self._chunk_len, self._chunk_iter = start, 0, iter(())
        for begin in range(start, len(local), _ITER_CHUNK):
            chunk = local[begin : begin + _ITER_CHUNK].tolist()
            self._chunk_start, self._chunk_len = begin, len(chunk)
            self._chunk_iter = iter(chunk)
            yield from self._chunk_iter

    @property
    def plan(self) -> np.ndarray:
        """This rank's index stream for the current epoch, int [len(self)] (read-only)."""
        return _read_only(self._local_plan())

    @property
    def global_plan(self) -> np.ndarray:
        """The whole epoch's index stream before sharding, identical on every rank (read-only)."""
        return _read_only(self._ensure_plan())

    @property
    def phase(self) -> Phase:
        """Curriculum phase of the current epoch."""
        return self.policy.curriculum.phase_for_epoch(self.epoch, self.num_epochs)

    def _ensure_plan(self) -> np.ndarray:
        if self._plan is None or self._planned_epoch != self.epoch:
            self._set_plan(self._make_plan(self.epoch), self.epoch)
        return self._plan

    def _set_plan(self, plan: np.ndarray, epoch: int) -> None:
        self._plan, self._planned_epoch, self._local = plan, epoch, None
        self._resume_at = None

    def _local_plan(self) -> np.ndarray:
        plan = self._ensure_plan()
        if self._local is None:
            if not self.shard or self.world_size == 1:
                self._local = plan
            else:
                per_rank = -(-len(plan) // self.world_size)
                padded = np.resize(plan, per_rank * self.world_size) if len(plan) else plan
                self._local = padded[self.rank :: self.world_size]
        return self._local

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
        default_budget = self.policy.default_budget(weights, codes)
        if self.unbiased:
            live = ~store.pruned
            if self.policy.max_times_seen is not None:
                live &= store.visits < self.policy.max_times_seen
            to_floor = live & (weights < self.unbiased_floor)
            # each floored sample that had weight 0 adds unbiased_floor of a pass to the budget
            default_budget += self.unbiased_floor * int(np.count_nonzero(to_floor & (weights == 0)))
            weights[to_floor] = self.unbiased_floor
        total = resolve_budget(self.budget, default_budget, self.num_samples)
        audits = self._plan_audits(store, codes, weights, epoch)
        if self.budget is not None:  # an explicit budget includes the audits
            total = max(total - len(audits), 0)
        rng = epoch_generator(self.seed, epoch)
        counts = draw_counts(weights, total, rng)
        counts[audits] += 1
        plan = shuffled_plan(counts, rng)
        if self.unbiased:
            self._set_loss_weights(weights)
        elif self._loss_weights is not None:
            self._loss_weights.copy_(torch.from_numpy(self.policy.loss_weight_table(weights)))
        if self._loss_weights is not None and len(audits):
            self._loss_weights[torch.from_numpy(audits)] = 0.0  # audits check, they do not train
        record = EpochRecord(
            epoch=epoch,
            phase=phase.name,
            num_samples=self.num_samples,
            planned=len(plan),
            unique_planned=int(np.count_nonzero(counts)),
            pruned=store.num_pruned,
            buckets={b.name: int(n) for b, n in zip(Bucket, np.bincount(codes, minlength=len(Bucket)))},
            plan_seconds=time.perf_counter() - started,
            audit_planned=len(audits),
        )
        self._records = [r for r in self._records if r.epoch != epoch] + [record]
        return plan

    def _plan_audits(self, store: GEKOStateStore, codes: np.ndarray, weights: np.ndarray, epoch: int) -> np.ndarray:
        """This epoch's forgetting audits: sorted int64 indices, one draw each.

        Candidates: seen samples that are frozen or pruned, have weight 0 (so the plan would not
        draw them; in unbiased mode frozen samples keep a floor weight and are revisited anyway)
        and are under ``max_times_seen``. The choice uses its own generator, so switching audits
        on leaves the rest of the plan's randomness as it was.
        """
        if self.audit_fraction == 0:
            self._audit_pending = None
            return np.empty(0, dtype=np.int64)
        eligible = ((codes == Bucket.FREEZE) | store.pruned) & (weights == 0) & store.seen
        if self.policy.max_times_seen is not None:
            eligible &= store.visits < self.policy.max_times_seen
        candidates = np.flatnonzero(eligible)
        num = min(len(candidates), math.ceil(self.audit_fraction * len(candidates) - 1e-9))
        rng = np.random.default_rng([self.seed, epoch, _AUDIT_STREAM])
        chosen = np.sort(candidates[rng.choice(len(candidates), num, replace=False)]) if num else candidates[:0]
        self._audit_pending = chosen.astype(np.int64)
        return self._audit_pending

    def _set_loss_weights(self, weights: np.ndarray) -> None:
        positive = weights > 0
        num_live = int(np.count_nonzero(positive))
        values = np.zeros(len(weights), dtype=np.float32)
        if num_live:
            values[positive] = weights.sum() / (num_live * weights[positive])
        self._loss_weights.copy_(torch.from_numpy(values))

    def loss_weights(self, idx: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
        """Loss weight of each index this epoch (float32, same device as a tensor ``idx``): in
        unbiased mode, or from a policy with loss weights such as ``InfoBatchPolicy``."""
        if self._loss_weights is None:
            raise RuntimeError("loss weights exist only with unbiased=True or a policy that provides them (InfoBatchPolicy)")
        self._ensure_plan()
        if isinstance(idx, torch.Tensor):
            return self._loss_weights[idx.cpu().long()].to(idx.device)
        return self._loss_weights[torch.from_numpy(np.array(idx, dtype=np.int64))]

    # ------------------------------------------------------------------ reports
    def report(
        self,
        loss: SignalInput,
        conf: SignalInput = None,
        correct: SignalInput = None,
        idx: SignalInput = None,
        *,
        pred: SignalInput = None,
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
            pred: optional int [B], the predicted label (e.g. ``logits.argmax(-1)``), -1 for
                unknown. Listed by :meth:`suspects`; with it the noise guard's wrong streak
                counts only wrong answers that agree (see :mod:`gekodata.policy`).

        Torch tensors on any device, numpy arrays or lists. CPU inputs are validated now: a bad
        call raises ``ValueError`` naming the problem and records nothing. CUDA inputs are
        shape-checked now and stay on the device (no host sync); their values are checked at the
        next sync point, where a bad window raises ``ValueError`` on every rank and is dropped,
        leaving the store unchanged.
        """
        if idx is None:
            raise ValueError("report() needs idx: the samples' indices (batch['idx'] from PruningDataset)")
        self._ensure_plan()  # the current epoch's plan predates its reports
        if any(isinstance(x, torch.Tensor) and x.device.type != "cpu" for x in (loss, conf, correct, idx, pred)):
            chunk = _device_chunk(idx, loss, conf, correct, pred)
        else:
            chunk = _host_chunk(self._store, idx, loss, conf, correct, pred)
        self._pending.append(chunk)
        self._pending_rows += int(chunk[0].shape[0])
        self._reports_since_sync += 1
        if self.sync_every is not None and self._reports_since_sync >= self.sync_every:
            self.flush()

    def flush(self) -> None:
        """Sync point: fold every buffered report (of every rank) into the store.

        Under ``torch.distributed`` this is a collective (all ranks must call it): indices are
        gathered as int64 and values as float32, in rank order, so every rank applies the same
        update and the stores stay bitwise equal. One host sync per call.
        """
        pending, self._pending = self._pending, []
        self._pending_rows = 0
        self._reports_since_sync = 0
        if gdist.is_distributed():
            idx, values = _gather_chunks(pending)
        elif pending:
            idx = np.concatenate([_as_numpy(c[0]) for c in pending])
            values = np.concatenate([_as_numpy(c[1]) for c in pending])
        else:
            return
        if len(idx) == 0:
            return
        ints, idx = idx, idx[:, 0]
        pred = ints[:, 1] if (ints[:, 1] != -1).any() else None
        loss, conf, correct = values[:, 0], values[:, 1], values[:, 2]
        try:
            self._store.validate(idx, loss, conf, correct, pred)
        except ValueError as exc:
            raise ValueError(f"reports folded at this sync point were rejected and dropped: {exc}") from None
        audited, unfrozen = self._check_audits(idx, loss)
        self._store.update(idx, loss, conf, correct, pred)
        if unfrozen is not None:
            self._store.columns["visits"][unfrozen[0]] = np.minimum(
                unfrozen[1] + self._store.columns["visits"][unfrozen[0]], np.iinfo(np.uint16).max)
        if self._records:
            record = self._records[-1]
            record.reported += len(idx)
            record.audit_reported += audited
            record.audit_unfrozen += 0 if unfrozen is None else len(unfrozen[0])

    def _check_audits(self, idx: np.ndarray, loss: np.ndarray) -> Tuple[int, Optional[Tuple[np.ndarray, np.ndarray]]]:
        """Forgetting audit for the rows of a sync window that re-check frozen or pruned samples.

        An audited sample whose reported loss exceeds its loss EMA by more than ``audit_margin``
        was forgotten: its state restarts from this report (EMAs, streaks, pruned flag and bucket
        reset, so it is classified afresh next epoch; visits kept). Returns the number of
        audit rows and, for restarted samples, (indices, their visits before the reset).
        """
        if self._audit_pending is None or len(self._audit_pending) == 0:
            return 0, None
        rows = np.isin(idx, self._audit_pending)
        if not rows.any():
            return 0, None
        audit_idx, audit_loss = idx[rows], loss[rows]
        # audit_idx may repeat a sample (reported twice in the window): no assume_unique here
        self._audit_pending = self._audit_pending[~np.isin(self._audit_pending, audit_idx)]
        before = self._store.columns["loss_ema"][audit_idx].astype(np.float32)
        forgotten = np.unique(audit_idx[audit_loss > before + np.float32(self.audit_margin)])
        if len(forgotten) == 0:
            return int(rows.sum()), None
        visits = self._store.columns["visits"][forgotten].astype(np.int64)
        self._store.reset(forgotten)
        return int(rows.sum()), (forgotten, visits)

    # ------------------------------------------------------------------ suspects
    def suspects(self) -> "Suspects":
        """Samples the noise guard classified SUSPECT at the current epoch's plan (probably
        mislabeled; ``BucketPolicy(noise_guard=True)``), with what the store knows of them.

        Plans the current epoch if needed, which under ``torch.distributed`` is a collective:
        call it on every rank, or after ``set_epoch`` (then it reads local state only)."""
        self._ensure_plan()
        store = self._store
        idx = np.flatnonzero(store.bucket == Bucket.SUSPECT)
        return Suspects(
            idx=idx.astype(np.int64),
            predicted=store.predicted[idx].astype(np.int64),
            confidence=store.confidence[idx],
            loss=store.loss[idx],
            wrong_streak=store.wrong_streak[idx],
            visits=store.visits[idx].astype(np.int64),
        )

    def export_suspects(self, path: Union[str, os.PathLike], labels: Optional[Any] = None) -> int:
        """Write :meth:`suspects` as CSV (atomically) and return how many rows were written.

        Columns: ``idx, predicted, confidence, loss, wrong_streak, visits`` and, when ``labels``
        (the given label of every sample, indexable by ``idx``: array, tensor or list) is
        passed, ``label`` after ``idx``. ``predicted`` is -1 where the loop reported no ``pred``.
        """
        found = self.suspects()
        header = ["idx", "predicted", "confidence", "loss", "wrong_streak", "visits"]
        columns = [found.idx.tolist(), found.predicted.tolist(), [f"{x:.4f}" for x in found.confidence.tolist()],
                   [f"{x:.4f}" for x in found.loss.tolist()], found.wrong_streak.tolist(), found.visits.tolist()]
        if labels is not None:
            given = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
            if len(given) != self.num_samples:
                raise ValueError(f"labels has {len(given)} entries but the dataset has {self.num_samples} samples")
            header.insert(1, "label")
            columns.insert(1, given[found.idx].tolist())
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")  # quotes labels that hold commas or quotes
        writer.writerow(header)
        writer.writerows(zip(*columns))
        atomic_write(os.fspath(path), text.getvalue().encode())
        return len(found.idx)

    # ------------------------------------------------------------------ results
    @property
    def epoch_record(self) -> EpochRecord:
        """The current epoch's record (phase, bucket counts at planning, planned draws, passes
        reported so far on this process), a copy; cheaper than :meth:`efficiency_report`."""
        self._ensure_plan()
        record = self._records[-1].copy()
        if not gdist.is_distributed():
            record.reported += self._pending_rows
        return record

    def efficiency_report(self) -> EfficiencyReport:
        """What was planned and trained per epoch, counted from real reports.

        Single process: includes reports not yet folded into the store. Under
        ``torch.distributed`` the counts are global as of the last sync point: call
        :meth:`flush` on every rank first for the final figures.
        """
        current = self.epoch_record
        return EfficiencyReport([r.copy() for r in self._records[:-1]] + [current])

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> Dict[str, Any]:
        """Position in the current epoch's stream (torchdata Stateful protocol). O(1), no arrays."""
        local = self._local_plan()
        if self._resume_at is not None:
            yielded = self._resume_at
        else:
            yielded = self._chunk_start + self._chunk_len - operator.length_hint(self._chunk_iter)
        return {
            "epoch": self.epoch,
            "yielded": int(yielded),
            "length": len(local),
            "fingerprint": _fingerprint(local),
            "num_samples": self.num_samples,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "shard": self.shard,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue the stream at ``state``'s position; the next ``iter()`` starts there.

        The sampler must already hold that epoch's plan: restore it with :meth:`load` (or run
        up to the same point) first. Mismatched dataset size, seed, rank layout or plan raise
        ``ValueError``.
        """
        for key in ("num_samples", "seed", "world_size", "rank", "shard"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"sampler state has {key}={state[key]!r} but this sampler has {getattr(self, key)!r}")
        epoch = int(state["epoch"])
        if epoch != self._planned_epoch:
            self.set_epoch(epoch)
        self.epoch = epoch
        local = self._local_plan()
        if state.get("length", len(local)) != len(local) or (
            "fingerprint" in state and state["fingerprint"] != _fingerprint(local)
        ):
            raise ValueError(
                f"sampler state belongs to another plan for epoch {epoch}: restore the sampler with "
                "load(path) from the checkpoint taken with this state first"
            )
        yielded = int(state["yielded"])
        if not 0 <= yielded <= len(local):
            raise ValueError(f"yielded={yielded} is outside this epoch's {len(local)} indices")
        self._resume_at = yielded

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write store, plan and run state to ``path`` (safetensors), atomically.

        A sync point (all ranks must call it under ``torch.distributed``): pending reports are
        folded in first, rank 0 writes once, and every rank returns after the file exists.
        """
        self._ensure_plan()
        self.flush()
        if self.rank == 0:
            arrays: Dict[str, np.ndarray] = {"plan": self._plan}
            if self._audit_pending is not None:
                arrays["audit_pending"] = self._audit_pending
            if self._loss_weights is not None:
                arrays["loss_weights"] = self._loss_weights.numpy()
            meta = {
                "num_samples": self.num_samples,
                "world_size": self.world_size,
                "seed": self.seed,
                "num_epochs": self.num_epochs,
                "budget": self.budget,
                "unbiased": self.unbiased,
                "unbiased_floor": self.unbiased_floor,
                "audit_fraction": self.audit_fraction,
                "audit_margin": self.audit_margin,
                "epoch": self.epoch,
                "planned_epoch": self._planned_epoch,
                "classified_epoch": self._classified_epoch,
                "policy": self.policy.config(),
                "records": [asdict(r) for r in self._records],
            }
            write_sampler_file(path, self._store.state_dict(), arrays, meta)
        gdist.barrier()

    def load(self, path: Union[str, os.PathLike], *, strict: bool = True) -> None:
        """Restore what :meth:`save` wrote. Every rank calls it.

        Raises ``ValueError`` and changes nothing for a file of another format or format version,
        another dataset size, a truncated or corrupt file, or (with ``strict``) another seed,
        budget, unbiased setting or policy configuration.
        """
        arrays, meta = read_sampler_file(path)
        where = os.fspath(path)
        if int(meta.get("num_samples", -1)) != self.num_samples:
            raise ValueError(f"{where}: saved for {meta.get('num_samples')} samples, "
                             f"this dataset has {self.num_samples}")
        if strict:
            mine = {"seed": self.seed, "budget": self.budget, "unbiased": self.unbiased,
                    "unbiased_floor": self.unbiased_floor, "policy": self.policy.config(),
                    "audit_fraction": self.audit_fraction, "audit_margin": self.audit_margin}
            saved = dict(meta)
            saved.setdefault("audit_fraction", 0.0)  # files from before the audit existed
            if not saved["audit_fraction"] and not self.audit_fraction:
                saved["audit_margin"] = self.audit_margin  # the margin is unused without audits
            try:  # through the policy class, so settings added since the file was written take defaults
                saved["policy"] = policy_from_config(meta.get("policy", {})).config()
            except (TypeError, ValueError, KeyError):
                pass
            for key, value in mine.items():
                if json.loads(json.dumps(value)) != saved.get(key):
                    raise ValueError(f"{where}: saved {key} differs from this sampler's "
                                     f"(pass strict=False to load anyway)")
        expected = {f"store.{k}" for k in COLUMNS} | {"plan"} | ({"loss_weights"} if self._loss_weights is not None else set())
        columns = [k for k in (*COLUMNS, *OPTIONAL_COLUMNS) if f"store.{k}" in arrays]
        missing = expected - set(arrays)
        if missing:
            raise ValueError(f"{where}: missing arrays {sorted(missing)}")
        plan = arrays["plan"]
        if plan.ndim != 1 or not np.issubdtype(plan.dtype, np.integer) or (
            len(plan) and (plan.min() < 0 or plan.max() >= self.num_samples)
        ):
            raise ValueError(f"{where}: the saved plan is not a valid index stream for {self.num_samples} samples")
        if self._loss_weights is not None and arrays["loss_weights"].shape != (self.num_samples,):
            raise ValueError(f"{where}: loss_weights has the wrong shape")
        try:
            records = records_from_dicts(meta.get("records", []))
            classified_epoch, epoch = int(meta["classified_epoch"]), int(meta["epoch"])
            planned_epoch = int(meta["planned_epoch"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad gekodata sampler metadata ({exc})") from None
        # the store validates before it changes anything; nothing after it can fail
        store_state = sampler_file_store_state(arrays, meta)
        store_state["columns"] = {k: store_state["columns"][k] for k in columns}  # known columns only
        self._store.load_state_dict(store_state)
        audit = arrays.get("audit_pending")
        self._audit_pending = None if audit is None or not self.audit_fraction else np.array(audit, dtype=np.int64)
        if self._loss_weights is not None:
            self._loss_weights.copy_(torch.from_numpy(np.array(arrays["loss_weights"], dtype=np.float32)))
        self._records = records
        self._pending, self._pending_rows, self._reports_since_sync = [], 0, 0
        self._classified_epoch, self.epoch = classified_epoch, epoch
        self._set_plan(np.array(plan), planned_epoch)

    def __repr__(self) -> str:
        return (f"WeightedBucketSampler(num_samples={self.num_samples}, epoch={self.epoch}, "
                f"num_epochs={self.num_epochs}, budget={self.budget!r}, unbiased={self.unbiased}, "
                f"rank={self.rank}, world_size={self.world_size}, shard={self.shard})")


@dataclass(frozen=True)
class Suspects:
    """Samples classified SUSPECT, as parallel arrays [K] (see :meth:`WeightedBucketSampler.suspects`)."""

    idx: np.ndarray  # int64: positions in the original dataset
    predicted: np.ndarray  # int64: last predicted label, -1 if the loop reported no pred
    confidence: np.ndarray  # float32: EMA of the probability of the given label
    loss: np.ndarray  # float32: loss EMA
    wrong_streak: np.ndarray  # uint8: consecutive wrong sync windows (saturates at 7)
    visits: np.ndarray  # int64: reported passes

    def __len__(self) -> int:
        return len(self.idx)


# ---------------------------------------------------------------------- helpers
def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _fingerprint(local: np.ndarray) -> List[int]:
    """A few indices from both ends of a stream: cheap evidence that two plans are the same."""
    return local[:_FINGERPRINT_LEN].tolist() + local[-_FINGERPRINT_LEN:].tolist()


def _as_numpy(x: Any) -> np.ndarray:
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else x


def _to_host_array(x: SignalInput) -> Optional[np.ndarray]:
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


def _host_chunk(store: GEKOStateStore, idx: SignalInput, loss: SignalInput, conf: SignalInput,
                correct: SignalInput, pred: SignalInput = None) -> Tuple[np.ndarray, np.ndarray]:
    """Validate a CPU report now; (ints int64 [n, 2] = (idx, pred or -1), values float32 [n, 3])."""
    idx_a, loss_a, conf_a, correct_a, pred_a = (_to_host_array(x) for x in (idx, loss, conf, correct, pred))
    check_report_shapes(idx_a, loss_a, conf_a, correct_a, pred_a)
    _check_index_dtype(np.issubdtype(idx_a.dtype, np.integer) and idx_a.dtype != np.bool_,
                       np.issubdtype(idx_a.dtype, np.floating), idx_a.dtype)
    loss64 = loss_a.astype(np.float64)
    correct64 = None if correct_a is None else correct_a.astype(np.float64)
    store.validate(idx_a, loss64, conf_a, correct64, pred_a)
    conf64 = np.exp(-loss64) if conf_a is None else conf_a.astype(np.float64)
    if correct64 is None:
        correct64 = (conf64 > 0.5).astype(np.float64)
    values = np.stack([loss64, conf64, correct64], axis=1).astype(np.float32)
    ints = np.full((len(idx_a), 2), -1, dtype=np.int64)
    ints[:, 0] = idx_a
    if pred_a is not None:
        ints[:, 1] = pred_a
    return ints, values


def _device_chunk(idx: SignalInput, loss: SignalInput, conf: SignalInput,
                  correct: SignalInput, pred: SignalInput = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Shape-check a device report and keep it on the device; no host sync."""
    given = (idx, loss, conf, correct, pred)
    device = next(x.device for x in given if isinstance(x, torch.Tensor) and x.device.type != "cpu")
    tensors = [None if x is None else torch.as_tensor(x).detach().to(device, non_blocking=True) for x in given]
    idx_t, loss_t, conf_t, correct_t, pred_t = tensors
    check_report_shapes(idx_t, loss_t, conf_t, correct_t, pred_t)
    _check_index_dtype(not idx_t.is_floating_point() and not idx_t.is_complex() and idx_t.dtype != torch.bool,
                       idx_t.is_floating_point(), idx_t.dtype)
    if pred_t is not None and (pred_t.is_floating_point() or pred_t.is_complex() or pred_t.dtype == torch.bool):
        raise ValueError(f"pred must hold integer labels, got {pred_t.dtype}")
    loss_f = loss_t.float()
    conf_f = torch.exp(-loss_f) if conf_t is None else conf_t.float()
    correct_f = (conf_f > 0.5).float() if correct_t is None else correct_t.float()
    pred_l = torch.full_like(idx_t, -1, dtype=torch.int64) if pred_t is None else pred_t.long()
    return torch.stack([idx_t.long(), pred_l], dim=1), torch.stack([loss_f, conf_f, correct_f], dim=1)


def _gather_chunks(pending: List[Tuple[Any, Any]]) -> Tuple[np.ndarray, np.ndarray]:
    """All ranks' pending reports, concatenated in rank order, as host arrays."""
    device = gdist.collective_device()
    if pending:
        idx = torch.cat([torch.as_tensor(c[0]).to(device) for c in pending])
        values = torch.cat([torch.as_tensor(c[1]).to(device) for c in pending])
    else:
        idx = torch.empty((0, 2), dtype=torch.int64, device=device)
        values = torch.empty((0, 3), dtype=torch.float32, device=device)
    all_idx = gdist.all_gather_rows(idx)
    all_values = gdist.all_gather_rows(values)
    return all_idx.cpu().numpy(), all_values.cpu().numpy()
