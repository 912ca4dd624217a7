"""`WeightedBucketSampler`: the torch Sampler that plans each epoch from per-sample state.

Data flow: the user's loop calls :meth:`WeightedBucketSampler.report` -> a
:class:`~gekodata.sampler.report_buffer.ReportBuffer` validates and holds the rows until the next sync point,
where (gathered across ranks under ``torch.distributed``) they are folded into the
:class:`~gekodata.store.state_store.GEKOStateStore` in one update (the :class:`~gekodata.planning.audit.ForgettingAudit`
checks its rows first) -> at the next epoch boundary the policy classifies the samples and
:func:`~gekodata.planning.epoch_plan.plan_epoch` makes the epoch's index stream -> each rank iterates its shard.
The sampler itself does what a torch ``Sampler`` is for: iteration, sharding and the position in
the stream; checkpoints (:meth:`save`/:meth:`load`) use :mod:`gekodata.store.files`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from ..arguments import check_index, instance_only
from ..dataset import PruningDataset
from ..diagnostics.efficiency import EfficiencyReport
from ..diagnostics.suspects import Suspects, find_suspects, write_suspects_csv
from ..planning.audit import ForgettingAudit
from ..planning.epoch_plan import Budget, EpochPlan, classify_epoch, plan_epoch
from ..planning.record import EpochRecord
from ..policy import Phase, SelectionPolicy, default_policy
from ..policy.diagnosis import DataDiagnosis, diagnose
from ..signals import Signals
from ..store.state_store import GEKOStateStore
from . import collective as gdist
from .accounting import EpochLedger
from .explain import SampleExplanation, explanation
from .loop_checks import warn_extra_pass, warn_unplanned
from .position import StreamPosition, fingerprint
from .report_buffer import PendingRows, ReportBuffer, SignalInput, Window
from .sampler_file import SETTINGS, SamplerSnapshot, check_settings, read_snapshot, write_snapshot
from .sharding import Plan, RankPlan


class WeightedBucketSampler(Sampler[int]):
    """Draws each epoch's sample indices from bucket weights; learns from :meth:`report`.

    Args:
        data_source: the dataset the loader reads, usually a :class:`PruningDataset` (needed for
            pruning and for loss weights); any sized map-style dataset works otherwise.
        policy: a :class:`~gekodata.policy.SelectionPolicy`; default :func:`~gekodata.policy.default_policy`,
            ``BucketPolicy()`` (GEKO's thresholds and mountain curriculum; the module says what it
            was measured against). Others: ``BucketPolicy.uniform()`` (with
            ``budget``: a random subset per epoch), ``InfoBatchPolicy()`` (with loss weights) and
            ``PromptPolicy(group_size=G)`` (RL prompts, reported with
            :func:`gekodata.prompts.report_groups`).
        num_epochs: epochs the run will train; curriculum progress of epoch ``e`` is
            ``(e + 0.5) / num_epochs``.
        seed: seeds the private per-epoch generator ``default_rng([seed, epoch])``; no global RNG
            is read or written. Must be the same on every rank.
        budget: draws per epoch (global, over all ranks), forgetting audits included. None: the
            policy's default (for ``BucketPolicy`` the number of samples with weight > 0, a
            SUSPECT sample counting ``suspect_weight`` of one), so frozen and pruned samples
            shorten the epoch; audits come on top. An int: exactly that many. A float in (0, 1]:
            that fraction of the full dataset (same-budget comparisons).
        unbiased: attach a loss weight ``v_i = sum(w) / (N_live * w_i)`` to every draw, so that
            the epoch mean of ``v * loss`` estimates the mean loss over all live samples; every
            live sample keeps at least ``unbiased_floor`` weight (a floored sample with weight 0
            counts that fraction of a pass in the default budget).
        store: an existing store to continue from; default a fresh ``GEKOStateStore``.
        sync_every: also fold reports every this many :meth:`report` calls (None: at sync points
            only). Under ``torch.distributed`` every rank must then call ``report`` equally often.
        rank, world_size: default from the initialised ``torch.distributed`` process group, else
            0 and 1. Given explicitly with ``world_size > 1``, a process group of that size must be
            initialised (else the ranks would never share reports and their stores would drift
            apart), unless ``standalone=True``.
        standalone: play rank ``rank`` of ``world_size`` without a process group: the plan is
            sharded as for that rank, but only this process's reports reach its store. For
            inspecting a distributed run's checkpoint in one process, and for tests.
        shard: True: every rank iterates its own equal-length, strided slice of the global plan
            (padded cyclically to a multiple of ``world_size``): plain DataLoader per rank under
            torchrun, DDP, FSDP, DeepSpeed. False: every rank iterates the whole global plan, for
            wrappers that shard batches themselves (accelerate, the HF Trainer).
        audit_fraction, audit_margin: the forgetting audit (:mod:`gekodata.planning.audit`): each epoch
            this fraction (rounded up) of the frozen or pruned samples is drawn once; one whose
            loss exceeds its loss EMA by more than ``audit_margin`` (loss units) restarts. 0
            disables it. Audited items carry loss weight 0 where there are loss weights.

    When work happens (the one place this is stated):

    * **Planning** (the policy classifies the store, which advances frozen streaks and pruning,
      then the planner makes the epoch's stream) happens in the constructor, for epoch 0, and in
      :meth:`set_epoch` for a new epoch (also reached through :meth:`load_state_dict` and
      :meth:`load`). Call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``.
      Epoch 0 with an empty store visits every sample once. If planning fails, ``epoch`` is
      unchanged.
    * **Folding** (buffered reports of all ranks into the store, one update per window) happens at
      sync points only: :meth:`set_epoch` of a new epoch, :meth:`flush`, and every
      ``sync_every`` reports when that is set (then :meth:`report` folds, by request). The store
      depends on the multiset of (index, signals) per window, not on batch order, batch size or
      world size. Under ``torch.distributed`` each sync point is a collective.
    * **Everything else reads**: ``len()``, ``iter()``, :meth:`state_dict`, :meth:`report` (without
      ``sync_every``), :attr:`plan`, :meth:`loss_weights`, :meth:`suspects`,
      :attr:`epoch_record` and :meth:`efficiency_report` never plan, fold or communicate.
      :meth:`save` writes the pending reports into the file instead of folding them (gathering
      them is a collective), so a checkpoint never changes the run.

    Bad input: see :mod:`gekodata.sampler.report_buffer` (a refused call records nothing; device
    rows found bad at a sync point are dropped alone, counted in :attr:`dropped_reports`).

    Resume: :meth:`state_dict`/:meth:`load_state_dict` are torchdata's Stateful protocol (epoch
    and position; a few hundred bytes, no per-sample data), exact before the first batch, at
    every batch and on both sides of :meth:`set_epoch`: a new plan starts at position 0, and so
    does every ``iter()`` (unless a restored position is pending). :meth:`save`/:meth:`load`
    persist the rest (store, plan, policy, epoch, seed, history, reports not yet folded),
    atomically.

    Examples:
        >>> import torch
        >>> from gekodata import WeightedBucketSampler, classification_signals
        >>> sampler = WeightedBucketSampler(range(100), num_epochs=4, seed=0)
        >>> for epoch in range(3):
        ...     sampler.set_epoch(epoch)  # folds the last epoch's reports, then plans this one
        ...     idx = torch.tensor(list(sampler))
        ...     logits = torch.nn.functional.one_hot(idx % 2, 2).float() * 5  # always right
        ...     sampler.report(classification_signals(logits, idx % 2), idx)
        >>> sampler.set_epoch(3)
        >>> sampler.pending_reports, int(sampler.store.visits.sum())
        (0, 300)
        >>> len(sampler) < 60  # learned and never forgotten: re-checked at rate 0.4
        True
        >>> sampler.diagnosis().mislabeled, sampler.diagnosis().class_counts
        (0, {0: 50, 1: 50})
    """

    def __init__(
        self,
        data_source: Sized,
        policy: SelectionPolicy | None = None,
        *,
        num_epochs: int,
        seed: int = 0,
        budget: Budget = None,
        unbiased: bool = False,
        unbiased_floor: float = 0.1,
        store: GEKOStateStore | None = None,
        sync_every: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        standalone: bool = False,
        shard: bool = True,
        audit_fraction: float = 0.0,
        audit_margin: float = 0.5,
    ) -> None:
        num_samples = len(
            data_source
        )  # a map-style dataset's index range (PruningDataset: the wrapped one's)
        policy = policy if policy is not None else default_policy()
        check_settings(
            num_samples,
            policy,
            num_epochs=num_epochs,
            seed=seed,
            budget=budget,
            unbiased=unbiased,
            unbiased_floor=unbiased_floor,
            sync_every=sync_every,
            store=store,
        )
        self._audit = ForgettingAudit(audit_fraction, audit_margin, int(seed))
        self.data_source = data_source
        self.num_samples = num_samples
        self.policy = policy
        self.num_epochs = int(num_epochs)
        self.seed = int(seed)
        self.budget = budget
        self.unbiased = bool(unbiased)
        self.unbiased_floor = float(unbiased_floor)
        self.sync_every = None if sync_every is None else int(sync_every)
        self.rank, self.world_size = gdist.resolve_rank_world(
            rank, world_size, standalone=standalone
        )
        self.standalone = bool(standalone)
        self.shard = bool(shard)
        self._store = store if store is not None else GEKOStateStore(num_samples)
        policy.prepare(
            self._store
        )  # allocate the optional columns and signals the policy reads, before any report
        self._buffer = ReportBuffer(self._store)
        self._loss_weights: torch.Tensor | None = None
        if self.unbiased or policy.provides_loss_weights:
            # shared memory: persistent DataLoader workers see each epoch's new weights
            self._loss_weights = torch.ones(num_samples, dtype=torch.float32).share_memory_()
        self.prune_frozen_after: int | None = None
        if isinstance(data_source, PruningDataset):
            # the dataset declares its pruning rule; the sampler hands it the loss weights to carry
            self.prune_frozen_after = data_source.prune_frozen_after
            if self._loss_weights is not None:
                data_source.set_loss_weights(self._loss_weights)
        self.epoch = 0
        self._classified_epoch = -1
        self._ledger = EpochLedger()
        self._position = StreamPosition()
        self._reported_in_plan = False  # report() called since the plan or the last extra pass
        self._unplanned_warned = -1  # the last epoch warned about unplanned reports
        # epoch 0 is planned now, from the store as given (nothing is buffered yet, so nothing is
        # folded or gathered): every later read (len, iter, state_dict, report) finds a plan
        self._held: RankPlan = self._plan(0)

    # ------------------------------------------------------------------ views
    @property
    def store(self) -> GEKOStateStore:
        """The per-sample state as of the last sync point (see :meth:`flush`)."""
        return self._store

    @property
    def pending_reports(self) -> int:
        """Reported rows on this rank not yet folded into the store."""
        return self._buffer.rows

    @property
    def dropped_reports(self) -> int:
        """Rows dropped at sync points because their (device) values were invalid."""
        return self._buffer.dropped_rows

    @property
    def audit_fraction(self) -> float:
        """Share of frozen or pruned samples audited each epoch (settable; from the next plan)."""
        return self._audit.fraction

    @audit_fraction.setter
    def audit_fraction(self, value: float) -> None:
        self._audit = self._audit.with_settings(fraction=value)

    @property
    def audit_margin(self) -> float:
        """Loss rise (loss units) over its EMA at which an audited sample counts as forgotten."""
        return self._audit.margin

    @audit_margin.setter
    def audit_margin(self, value: float) -> None:
        self._audit = self._audit.with_settings(margin=value)

    @property
    def audit_pending(self) -> np.ndarray:
        """Sorted int64 indices drawn for this epoch's forgetting audit and not yet reported."""
        pending = self._audit.pending
        return np.empty(0, dtype=np.int64) if pending is None else pending.copy()

    @property
    def num_live(self) -> int:
        """Samples not pruned, as of the current plan."""
        return self.num_samples - self._store.num_pruned

    @property
    def pruned_indices(self) -> np.ndarray:
        """int64 indices of the pruned samples, sorted."""
        return np.flatnonzero(self._store.pruned)

    def unprune(self, idx: Sequence[int] | np.ndarray | torch.Tensor | None = None) -> int:
        """Bring pruned samples back (all if ``idx`` is None) from the next epoch's plan on.

        Their state is reset to "never seen", so the next plan gives them the UNSEEN weight and
        new reports classify them afresh (otherwise they would still look mastered and get
        weight 0). Indices that are not pruned are ignored. Returns how many were restored.
        """
        store = self._store
        if idx is None:
            target = np.flatnonzero(store.pruned)
        else:
            target = np.asarray(
                idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64
            ).reshape(-1)
            check_index("unprune: indices", target, self.num_samples)
            target = target[store.pruned[target]]
        store.reset(target)
        return int(target.size)

    @property
    def plan(self) -> np.ndarray:
        """This rank's index stream for the current epoch, int [len(self)] (read-only; the
        first read of an epoch's plan materialises it as an array, O(len))."""
        return _read_only(self._held.local_array())

    @property
    def global_plan(self) -> np.ndarray:
        """The whole epoch's index stream before sharding, identical on every rank (read-only;
        the first read of an epoch's plan materialises it as an array, O(S))."""
        return _read_only(self._held.global_array())

    @property
    def phase(self) -> Phase:
        """Curriculum phase of the current epoch."""
        return self.policy.curriculum.phase_for_epoch(self.epoch, self.num_epochs)

    def join_process_group(self) -> None:
        """Take rank and world size from the ``torch.distributed`` group initialised since the
        sampler was built (the HF Trainer initialises it inside ``TrainingArguments``).

        Only for ``shard=False``, where every rank iterates the whole plan and the rank decides
        only which process writes checkpoint files; a sharded plan must know its layout when it is
        built. ``ValueError`` otherwise; validated like the constructor's arguments.
        """
        if self.shard:
            raise ValueError(
                "join_process_group() is for shard=False samplers: a sharded plan is laid out "
                "for the rank and world size given when it was built; build the sampler after "
                "torch.distributed.init_process_group"
            )
        if self.standalone:
            raise ValueError("a standalone sampler plays a fixed rank; it joins no process group")
        self.rank, self.world_size = gdist.resolve_rank_world(None, None)

    # ------------------------------------------------------------------ epochs and iteration
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (0-based): fold in all reports so far and make its plan.

        Classification, frozen streaks and pruning advance once per new epoch; calling it again
        with the same epoch keeps the same plan (and a restored position). ``epoch`` changes only
        once the plan exists.
        """
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch >= self.num_epochs:
            warnings.warn(
                f"set_epoch({epoch}) is past the run's num_epochs={self.num_epochs}: the "
                "curriculum's last phase repeats. Epochs are 0-based (for epoch in "
                f"range({self.num_epochs}): sampler.set_epoch(epoch)); build the sampler with "
                "the real epoch count if the run is longer",
                UserWarning,
                stacklevel=2,
            )
        elif epoch > 0 and self._fresh():
            warnings.warn(
                f"set_epoch({epoch}) before epoch 0 was trained: epochs are 0-based, and "
                "skipping the first epochs skips the curriculum's first phases. Start with "
                "sampler.set_epoch(0) (for epoch in range(num_epochs): ...)",
                UserWarning,
                stacklevel=2,
            )
        if epoch < self._held.epoch:
            raise ValueError(
                f"set_epoch({epoch}) after epoch {self._held.epoch}: epochs only move forward (the "
                "store has already learned from the later epochs). To resume, restore the sampler "
                "with load(path) from the checkpoint; with accelerate call loader.set_epoch(epoch) "
                "or sampler.set_epoch(epoch), not both with different numbers"
            )
        if self._held.epoch != epoch:
            self.flush()
            self._warn_if_nothing_reported()
            self._plan(epoch)
        self.epoch = epoch

    def __len__(self) -> int:
        """Indices this rank iterates in the current epoch (known before iteration)."""
        return len(self._local_plan())

    def __iter__(self) -> Iterator[int]:
        """The current epoch's stream from position 0 (or a restored position). Starting it
        again after a pass ran to its end and was reported counts an extra pass in the epoch's
        record and warns once per epoch: the loop forgot :meth:`set_epoch`
        (:mod:`gekodata.sampler.loop_checks` says why this warns instead of refusing)."""
        local = self._local_plan()
        if self._reported_in_plan and self._position.finished(len(local)):
            self._reported_in_plan = False  # the next extra pass needs reports of its own
            if self._ledger.count_extra_pass() == 1:
                warn_extra_pass(self._held.epoch, len(local), self._buffer.rows, stacklevel=2)
        return self._position.iterate(local)

    def _warn_if_nothing_reported(self) -> None:
        """The epoch being left planned draws that were iterated and none was reported (counts
        are global after the flush): the loop never calls :meth:`report`, so nothing is learned
        and the plan stays uniform."""
        record = self._ledger.records[-1] if self._ledger.records else None
        if (
            record is not None
            and record.planned
            and not record.reported
            and self._position.started
            and self.policy.learns_from_reports
        ):
            warnings.warn(
                f"epoch {record.epoch} planned {record.planned} sample passes and none was "
                "reported: nothing is learned and no epoch gets shorter. Call "
                "sampler.report(loss, conf, correct, idx) after each training step (with the HF "
                "Trainer: a subclass with its own compute_loss must call super().compute_loss, "
                "or pass signals= to GekoTrainer)",
                UserWarning,
                stacklevel=3,
            )

    def _fresh(self) -> bool:
        """Nothing has happened yet: epoch 0's plan, never iterated, nothing reported or loaded."""
        return (
            self._held.epoch == 0
            and not self._position.started
            and self._buffer.rows == 0
            and self._store.total_updates == 0
        )

    def _plan(self, epoch: int) -> RankPlan:
        """Classify (once per new epoch) and plan ``epoch``; hold the plan and return it. The
        caller folds pending reports first (a sync point)."""
        if epoch > self._classified_epoch:
            # a new epoch: classify, advance frozen streaks, prune (once per epoch)
            classify_epoch(self._store, self.policy, self.prune_frozen_after)
            self._classified_epoch = epoch
        self._adopt(
            plan_epoch(
                self._store,
                self.policy,
                epoch=epoch,
                num_epochs=self.num_epochs,
                seed=self.seed,
                budget=self.budget,
                audit=self._audit,
                unbiased_floor=self.unbiased_floor if self.unbiased else None,
            ),
            epoch,
        )
        return self._held

    def _adopt(self, plan: EpochPlan, epoch: int) -> None:
        self._audit.pending = plan.audits if self._audit.enabled else None
        if self._loss_weights is not None and plan.loss_weights is not None:
            self._loss_weights.copy_(torch.from_numpy(plan.loss_weights))
        self._ledger.adopt(plan.record)
        self._set_plan(plan.stream, epoch)

    def _set_plan(self, plan: Plan, epoch: int) -> None:
        self._held = RankPlan(
            plan, epoch, rank=self.rank, world_size=self.world_size, shard=self.shard
        )
        self._position.reset()  # a new plan starts at its beginning
        self._reported_in_plan = False

    def _local_plan(self) -> Plan:
        return self._held.local()

    def loss_weights(self, idx: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Loss weight of each index this epoch (float32, same device as a tensor ``idx``): in
        unbiased mode, or from a policy with loss weights such as ``InfoBatchPolicy``."""
        if self._loss_weights is None:
            raise RuntimeError(
                "loss weights exist only with unbiased=True or a policy that provides them (InfoBatchPolicy)"
            )
        if isinstance(idx, torch.Tensor):
            return self._loss_weights[idx.cpu().long()].to(idx.device)
        return self._loss_weights[torch.from_numpy(np.array(idx, dtype=np.int64))]

    # ------------------------------------------------------------------ reports
    def report(
        self,
        loss: SignalInput | Signals,
        conf: SignalInput = None,
        correct: SignalInput = None,
        idx: SignalInput = None,
        *,
        pred: SignalInput = None,
        label: SignalInput = None,
    ) -> None:
        """Record per-sample signals of one batch: ``report(signals, idx)`` with the
        :class:`~gekodata.signals.Signals` of :func:`~gekodata.signals.classification_signals`
        (its predicted and given labels travel along), or ``report(loss, conf, correct, idx)``.

        Args:
            loss: float [B], per-sample loss (>= 0, finite as float32), e.g. from
                :func:`gekodata.signals.classification_signals`. Detached here. Or a whole
                :class:`~gekodata.signals.Signals`; the next positional argument is then ``idx``.
            conf: float [B] in [0, 1], probability of the target; None derives ``exp(-loss)``.
            correct: bool/float [B] in [0, 1]; None derives ``conf > 0.5``.
            idx: int [B], the samples' positions in the original dataset (``batch["idx"]`` from
                :class:`PruningDataset`). Required.
            pred: optional int [B], the predicted label (e.g. ``logits.argmax(-1)``), -1 for
                unknown; used by the noise guard and listed by :meth:`suspects`.
            label: optional int [B], each sample's given class (the loop's targets), -1 for
                unknown. The store learns it (4 B/sample, allocated by the first labelled
                report; a sample reported with two different labels warns): the noise guard then
                judges a sample against its own class, and :meth:`diagnosis` reports noise and
                imbalance. Leave it out where there are no classes (causal LM, regression).

        Torch tensors on any device, numpy arrays or lists. CPU input is validated now, as
        float32: a bad call raises ``ValueError`` naming the problem and records nothing. CUDA
        input is shape-checked now and stays on the device (no host sync); its values are
        checked at the next sync point, where bad rows are dropped alone with a warning.
        """
        self._buffer.add(loss, conf, correct, idx, pred, label)
        self._reported_in_plan = True
        if self.sync_every is not None and self._buffer.calls >= self.sync_every:
            self.flush()

    def flush(self) -> None:
        """Sync point: fold every buffered report (of every rank) into the store.

        Under ``torch.distributed`` a collective (all ranks must call it): indices gathered as
        int64 and values as float32, in rank order, so every rank applies the same update and the
        stores stay bitwise equal. One host sync per call.
        """
        window = self._buffer.take()
        if window is not None:
            self._fold(window)

    def _fold(self, window: Window) -> None:
        audit = self._audit.check(self._store, window.idx, window.loss)  # reads losses only
        window.fold_into(self._store, restart=audit.forgotten)
        unplanned = self._held.count_unplanned(window.idx, self.num_samples)
        self._ledger.count(
            self.policy.passes(len(window)),
            self.policy.passes(audit.reported),
            len(audit.forgotten),
            self.policy.passes(unplanned),
        )
        if unplanned and self._unplanned_warned != self._held.epoch:
            self._unplanned_warned = self._held.epoch
            warn_unplanned(self._held.epoch, unplanned, len(window), stacklevel=4)

    # ------------------------------------------------------------------ suspects and results
    def explain(self, idx: int | Sequence[int] | np.ndarray | torch.Tensor) -> SampleExplanation:
        """Why each of ``idx`` was drawn or skipped this epoch: its bucket by name, draws in
        this epoch's plan, the policy's draw weight in this phase, visits, last correctness,
        confidence and loss EMAs, label (:class:`~gekodata.sampler.explain.SampleExplanation`;
        ``print()`` it for a table with a reason per sample).

        The store's values are as of the last sync point (call :meth:`flush` first after the
        loop). Reads local state only; O(k) for the store's rows, plus O(N + S) to count the
        draws (one pass over the plan) and, for a policy whose weights vary within a bucket, to
        compute the weights."""
        rows = np.asarray(
            idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64
        ).reshape(-1)
        check_index("explain: indices", rows, self.num_samples)
        store, phase = self._store, self.phase
        state = store.rows_of(rows)
        table = self.policy.bucket_weights(phase)
        if table is not None:
            weight = np.asarray(table, dtype=np.float64)[state["bucket"]]
            weight[state["pruned"]] = 0.0
            if self.policy.max_times_seen is not None:
                weight[state["visits"] >= self.policy.max_times_seen] = 0.0
        else:
            weight = self.policy.sample_weights(store, store.bucket, phase)[rows]
        draws = self._held.draws_of(rows, self.num_samples)
        return explanation(self._held.epoch, phase.name, rows, state, draws, weight)

    def suspects(self) -> Suspects:
        """Samples the noise guard classified SUSPECT at the current epoch's plan (probably
        mislabeled; ``BucketPolicy(noise_guard=True)``), with what the store knows of them.
        Reads local state only."""
        return find_suspects(self._store)

    def export_suspects(self, path: str | os.PathLike, labels: Any | None = None) -> int:
        """Write :meth:`suspects` as CSV (atomically; see :func:`gekodata.diagnostics.suspects.write_suspects_csv`)
        and return how many rows were written."""
        return write_suspects_csv(path, self.suspects(), self.num_samples, labels)

    @property
    def epoch_record(self) -> EpochRecord:
        """The current epoch's record (phase, bucket counts at planning, planned draws, passes
        reported so far on this process), a copy; cheaper than :meth:`efficiency_report`."""
        return self._ledger.current(
            0 if gdist.is_distributed() else self.policy.passes(self._buffer.rows)
        )

    def efficiency_report(self) -> EfficiencyReport:
        """What was planned and trained per epoch, counted from real reports.

        Single process: includes reports not yet folded into the store. Under
        ``torch.distributed`` the counts are global as of the last sync point: call :meth:`flush`
        on every rank first for the final figures.
        """
        report = self._ledger.report(
            0 if gdist.is_distributed() else self.policy.passes(self._buffer.rows)
        )
        report.data = self.diagnosis()
        return report

    def diagnosis(self) -> DataDiagnosis:
        """What the store's signals say about the data now: the share of samples that look
        mislabeled (needs labels in the reports), samples and accuracy per class, the share
        learned at once and never forgotten, the share still being learned
        (:mod:`gekodata.policy.diagnosis`). One O(N) pass over the store; reports not yet folded
        (:meth:`flush`) are not in it. Each epoch's record holds the same as of its plan."""
        return diagnose(self._store)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Position in the current epoch's stream (torchdata Stateful protocol). O(1), no arrays."""
        local = self._local_plan()
        return {
            "epoch": self.epoch,
            "yielded": int(self._position.yielded),
            "length": len(local),
            "fingerprint": fingerprint(local),
            "num_samples": self.num_samples,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "shard": self.shard,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream at ``state``'s position; the next ``iter()`` starts there.

        The sampler must already hold that epoch's plan: restore it with :meth:`load` (or run up
        to the same point) first. Mismatched dataset size, seed, rank layout or plan raise
        ``ValueError``. The position of a *completed* earlier epoch is ignored (the sampler has
        moved on with :meth:`set_epoch`, as when a loader restores its finished iterator after
        the next ``set_epoch``); that of an unfinished earlier epoch raises ``ValueError``.
        """
        for key in ("num_samples", "seed", "world_size", "rank", "shard"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={state[key]!r} but this sampler has {getattr(self, key)!r}"
                )
        epoch = int(state["epoch"])
        if self._held is not None and epoch < self._held.epoch:
            # a stale position: the epoch it belongs to is over (e.g. a loader's finished iterator
            # restored after set_epoch(next)); only a completed epoch may be left behind
            if int(state["yielded"]) != int(state.get("length", -1)):
                raise ValueError(
                    f"sampler state is mid-way through epoch {epoch} but this sampler is already "
                    f"at epoch {self._held.epoch}"
                )
            return
        self.set_epoch(epoch)
        self._position.restore(int(state["yielded"]), self._local_plan(), state)

    def save(self, path: str | os.PathLike) -> None:
        """Write store, plan, run state and the reports not yet folded to ``path`` (a sampler
        file), atomically.

        Saving never changes the run: pending reports are written as they are, not folded, so a
        run that saves (and resumes) at any step folds and plans exactly as one that never saves.
        A collective under ``torch.distributed`` (all ranks must call it: every rank's pending
        rows are gathered); rank 0 writes once, and every rank returns after the file exists.
        """
        pending = self._buffer.pending()
        if self.rank == 0:
            write_snapshot(
                path,
                SamplerSnapshot(
                    settings=self._settings(),
                    store=self._store.state_dict(),
                    plan=self._held.global_array(),
                    epoch=self.epoch,
                    planned_epoch=self._held.epoch,
                    classified_epoch=self._classified_epoch,
                    records=self._ledger.records,
                    loss_weights=None if self._loss_weights is None else self._loss_weights.numpy(),
                    audit_pending=self._audit.pending,
                    pending=pending,
                    policy_arrays=self.policy.state_arrays(),
                ),
            )
        gdist.barrier()

    @instance_only(
        "build the sampler as for the run that saved the file (same dataset, policy and "
        "settings), then call sampler.load(path)"
    )
    def load(self, path: str | os.PathLike, *, strict: bool = True) -> None:
        """Restore what :meth:`save` wrote. Every rank calls it. Reports buffered here are
        replaced by the file's pending reports: each rank takes back its own rows when the file was
        written by as many ranks, else rank 0 holds them all; a single process (standalone
        included) holds them all. The next sync point folds the same rows either way.

        Raises ``ValueError`` and changes nothing for a file of another format or format version,
        another dataset size, a truncated or corrupt file, or (with ``strict``) another seed,
        num_epochs, budget, unbiased setting, audit setting or policy configuration.
        """
        snap = read_snapshot(
            path,
            self._settings(),
            strict=strict,
            loss_weights=self._loss_weights is not None,
            policy=self.policy,
        )
        if snap.policy_arrays:
            self.policy.load_state_arrays(snap.policy_arrays)  # checked on a copy: cannot fail
        self._store.load_state_dict(
            snap.store
        )  # validates before it changes anything; nothing after fails
        self.policy.prepare(
            self._store
        )  # a file saved without the policy's columns or signals (strict=False)
        self._audit.pending = snap.audit_pending if self._audit.enabled else None
        if self._loss_weights is not None:
            self._loss_weights.copy_(torch.from_numpy(snap.loss_weights))
        self._ledger = EpochLedger(snap.records)
        self._buffer.restore(
            snap.pending if snap.pending is not None else PendingRows.empty(),
            self.rank if gdist.is_distributed() else None,
            self.world_size,
        )
        self._classified_epoch, self.epoch = snap.classified_epoch, snap.epoch
        self._set_plan(snap.plan, snap.planned_epoch)

    def _settings(self) -> dict[str, Any]:
        settings = {key: getattr(self, key) for key in SETTINGS}
        settings["policy"] = self.policy.config()
        return settings

    def __repr__(self) -> str:
        return (
            f"WeightedBucketSampler(num_samples={self.num_samples}, "
            f"policy={type(self.policy).__name__}, epoch={self.epoch} ({self.phase.name}), "
            f"num_epochs={self.num_epochs}, planned={len(self._held.local())}, "
            f"pending_reports={self.pending_reports}, "
            f"buckets={_nonzero(self._ledger.records[-1].buckets) if self._ledger.records else {}}, "
            f"budget={self.budget!r}, "
            f"unbiased={self.unbiased}, rank={self.rank}, world_size={self.world_size}, "
            f"shard={self.shard})"
        )


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n}


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view
