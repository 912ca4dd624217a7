"""`StreamSelector`: per-sample state and a policy, turned into keep probabilities for a stream.

A map-style run plans an epoch as a list of draws; a stream cannot be reordered or revisited, so
each example is kept or skipped as it passes. The selector owns what a sampler owns — the
:class:`~gekodata.store.state_store.GEKOStateStore`, the policy, the report buffer (validation and,
under ``torch.distributed``, the gather at sync points) — and at :meth:`StreamSelector.set_epoch`
turns the policy's weights into a keep probability per sample id:

    p_i = min(1, c * w_i),   c such that sum(p) = S

(:func:`~gekodata.policy.user_weights.capped_probabilities`), ``S`` the budget (the policy's
default, e.g. the number of samples of weight > 0 for ``BucketPolicy``, or ``budget``), capped at
the number of samples of weight > 0: a stream passes each example once, so no sample can be kept
twice. ``rate=`` sets ``p_i = min(1, rate * w_i)`` instead. Example ``i`` is kept in epoch ``e``
when ``uniform(seed, e, i) < p_i`` (:mod:`gekodata.streaming.keys`). Loss weights: ``unbiased=True``
gives a kept example ``1 / p_i`` (the epoch's summed weighted loss estimates the full pass's);
a policy with loss weights (``InfoBatchPolicy``, ``rescale=True`` rate policies) brings its own.

The keep table and loss weights live in shared memory, so DataLoader workers (persistent or not)
see each epoch's values. The selector never reads the stream: it knows only sample ids in
``[0, num_samples)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ..planning.epoch_plan import Budget, classify_epoch, resolve_budget
from ..policy import SelectionPolicy, default_policy
from ..policy.user_weights import capped_probabilities
from ..sampler import collective as gdist
from ..sampler.report_buffer import PendingRows, ReportBuffer, SignalInput
from ..signals import Signals
from ..store.files import read_sampler_file, sampler_file_store_state, write_sampler_file
from ..store.state_store import GEKOStateStore
from .keys import epoch_key
from .stream import SelectedStream

SELECTOR_FORMAT = "gekodata.stream_selector"


class StreamSelector:
    """Per-sample state, a policy and the keep probabilities of the current epoch (module doc).

    Args:
        num_samples: N; sample ids are in ``[0, N)``.
        policy: any :class:`~gekodata.policy.SelectionPolicy` (default ``default_policy()``).
        num_epochs: epochs of the run (the policy's curriculum progress).
        seed: keys every keep decision with the epoch and the sample id; same on every rank.
        budget: kept examples per epoch (expected): None (the policy's default), an int, or a
            float in (0, 1] (that fraction of N). Ignored when ``rate`` is given.
        rate: keep probability ``min(1, rate * w_i)`` instead of a budget.
        unbiased: loss weight ``1 / p_i`` for kept examples (else the policy's, or 1).
        store: an existing store to continue from.

    Example::

        selector = StreamSelector(len_of_stream, num_epochs=3, seed=0)
        loader = DataLoader(selector.wrap(stream, id_key="id"), batch_size=32, num_workers=2)
        for epoch in range(3):
            selector.set_epoch(epoch)
            for batch in loader:
                loss, conf, correct = classification_signals(model(batch["x"]), batch["y"])
                (loss * batch["weight"]).mean().backward(); ...
                selector.report(loss, conf, correct, batch["idx"])
    """

    def __init__(
        self,
        num_samples: int,
        policy: SelectionPolicy | None = None,
        *,
        num_epochs: int,
        seed: int = 0,
        budget: Budget = None,
        rate: float | None = None,
        unbiased: bool = False,
        store: GEKOStateStore | None = None,
    ) -> None:
        self.num_samples = int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if int(num_epochs) < 1 or int(seed) < 0:
            raise ValueError(f"need num_epochs >= 1 and seed >= 0, got {num_epochs}, {seed}")
        resolve_budget(budget, 0, self.num_samples)  # validates it
        if rate is not None and not (np.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be finite and > 0, got {rate}; or pass budget instead")
        self.policy = policy if policy is not None else default_policy()
        if not isinstance(self.policy, SelectionPolicy):
            raise TypeError(f"policy must be a SelectionPolicy, got {type(policy).__name__}")
        if store is not None and len(store) != self.num_samples:
            raise ValueError(f"store has {len(store)} rows but num_samples is {self.num_samples}")
        self.num_epochs, self.seed, self.budget = int(num_epochs), int(seed), budget
        self.rate = None if rate is None else float(rate)
        self.unbiased = bool(unbiased)
        self.store = store if store is not None else GEKOStateStore(self.num_samples)
        self.policy.prepare(self.store)
        self._buffer = ReportBuffer(self.store)
        # shared memory: DataLoader workers read the epoch's table and key in place
        self._keep = torch.zeros(self.num_samples, dtype=torch.float32).share_memory_()
        self._weight = torch.ones(self.num_samples, dtype=torch.float32).share_memory_()
        self._key = torch.zeros(2, dtype=torch.int64).share_memory_()  # (epoch, key as int64)
        self.epoch = -1
        self._classified_epoch = -1
        self.set_epoch(0)

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: fold every report so far (a sync point: a collective under
        ``torch.distributed``), classify, and compute the keep probabilities. The same epoch
        again changes nothing."""
        epoch = int(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch == self.epoch:
            return
        self.flush()
        if epoch > self._classified_epoch:
            classify_epoch(self.store, self.policy, None)
            self._classified_epoch = epoch
        keep, weight = self._table(epoch)
        self._keep.copy_(torch.from_numpy(keep.astype(np.float32)))
        self._weight.copy_(torch.from_numpy(weight))
        self._set_key(epoch)

    def _set_key(self, epoch: int) -> None:
        key = np.array([epoch_key(self.seed, epoch)], dtype=np.uint64).view(np.int64)[0]
        self._key.copy_(torch.tensor([epoch, int(key)], dtype=torch.int64))
        self.epoch = epoch

    def _table(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(keep probability float64 [N], loss weight float32 [N]) for ``epoch``."""
        phase = self.policy.curriculum.phase_for_epoch(epoch, self.num_epochs)
        codes = self.store.bucket
        weights = np.asarray(self.policy.sample_weights(self.store, codes, phase), np.float64)
        positive = int(np.count_nonzero(weights > 0))
        if self.rate is not None:
            keep = np.minimum(weights * self.rate, 1.0)
        elif positive == 0:
            keep = np.zeros(self.num_samples)
        else:
            default = self.policy.default_budget(weights, codes)
            total = min(resolve_budget(self.budget, default, self.num_samples), positive)
            keep = capped_probabilities(weights, total)
        weight = np.ones(self.num_samples, dtype=np.float32)
        kept = keep > 0
        if self.unbiased:
            weight[kept] = 1.0 / keep[kept]
        elif self.policy.provides_loss_weights:
            table = self.policy.loss_weight_table(keep, codes)
            if table is not None:
                weight = np.asarray(table, dtype=np.float32)
        return keep, weight

    @property
    def keep_probability(self) -> np.ndarray:
        """This epoch's keep probability per sample id, float32 [N] (read-only view)."""
        view = self._keep.numpy().view()
        view.flags.writeable = False
        return view

    @property
    def expected_kept(self) -> float:
        """Expected examples kept this epoch: the sum of the keep probabilities."""
        return float(self._keep.double().sum())

    def wrap(self, source: Iterable[Any], id_key: Any = None, **kwargs: Any) -> SelectedStream:
        """``SelectedStream(source, self, id_key=id_key, ...)``: the examples of ``source`` this
        selector keeps (:class:`~gekodata.streaming.SelectedStream`)."""
        return SelectedStream(source, self, id_key=id_key, **kwargs)

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
        """Record per-example signals of one batch (as ``WeightedBucketSampler.report``): float
        [B] loss, conf/correct [B] or None, int [B] sample ids (``batch["idx"]``), optional
        predicted and given labels; or ``report(signals, idx)`` with a
        :class:`~gekodata.signals.Signals`, whose labels travel along. Validated now (CPU) and
        folded at the next :meth:`set_epoch` or :meth:`flush`."""
        self._buffer.add(loss, conf, correct, idx, pred, label)

    def flush(self) -> None:
        """Fold every buffered report (of every rank) into the store; a collective under
        ``torch.distributed``. The keep table changes only at the next new epoch."""
        window = self._buffer.take()
        if window is not None:
            window.fold_into(self.store)

    @property
    def pending_reports(self) -> int:
        """Reported rows on this process not yet folded."""
        return self._buffer.rows

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """The settings and epoch (a few bytes; the per-sample part is in :meth:`save`)."""
        return {"epoch": self.epoch, "seed": self.seed, "num_samples": self.num_samples}

    def save(self, path: str | os.PathLike) -> None:
        """Write store, keep table, loss weights, epoch and unfolded reports, atomically (rank 0
        writes; a collective under ``torch.distributed``: every rank calls it). The file has the
        sampler file's layout (:func:`gekodata.store.files.write_sampler_file`) under its own
        format name."""
        pending = self._buffer.pending()
        if not gdist.is_distributed() or torch.distributed.get_rank() == 0:
            pending_arrays, pending_meta = pending.file_parts()
            meta = {
                "num_samples": self.num_samples,
                "epoch": self.epoch,
                "classified_epoch": self._classified_epoch,
                "seed": self.seed,
                "policy": self.policy.config(),
                "pending": pending_meta,
            }
            arrays = {"keep": self._keep.numpy(), "weight": self._weight.numpy(), **pending_arrays}
            write_sampler_file(path, self.store.state_dict(), arrays, meta, fmt=SELECTOR_FORMAT)
        gdist.barrier()

    def load(self, path: str | os.PathLike) -> None:
        """Restore what :meth:`save` wrote (every rank). ``ValueError``, nothing changed, for
        another file format, another N or another seed."""
        where = os.fspath(path)
        arrays, meta = read_sampler_file(path, fmt=SELECTOR_FORMAT)
        if int(meta.get("seed", -1)) != self.seed:
            raise ValueError(
                f"{where}: saved with seed {meta.get('seed')}, this selector has {self.seed}"
            )
        if int(meta.get("num_samples", -1)) != self.num_samples:
            raise ValueError(
                f"{where}: saved for {meta.get('num_samples')} samples, this selector has "
                f"{self.num_samples}"
            )
        for name in ("keep", "weight"):
            if arrays.get(name) is None or arrays[name].shape != (self.num_samples,):
                raise ValueError(
                    f"{where}: the {name!r} array is missing or not [{self.num_samples}]"
                )
        try:
            state = sampler_file_store_state(arrays, meta)
            epochs = int(meta["epoch"]), int(meta["classified_epoch"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad gekodata selector metadata ({exc})") from None
        pending = PendingRows.from_file_parts(where, arrays, meta.get("pending"))
        self.store.load_state_dict(state)  # validates before it changes anything
        self.policy.prepare(self.store)
        self._keep.copy_(torch.from_numpy(np.array(arrays["keep"], dtype=np.float32)))
        self._weight.copy_(torch.from_numpy(np.array(arrays["weight"], dtype=np.float32)))
        if gdist.is_distributed():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            self._buffer.restore(pending, rank, world)
        else:
            self._buffer.restore(pending, None)
        self._classified_epoch = epochs[1]
        self._set_key(epochs[0])

    def __repr__(self) -> str:
        return (
            f"StreamSelector(num_samples={self.num_samples}, epoch={self.epoch}, "
            f"expected_kept={self.expected_kept:.1f}, policy={type(self.policy).__name__})"
        )
