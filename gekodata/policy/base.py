"""The interface every selection policy offers the sampler."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..store.state_store import GEKOStateStore
from .buckets import Bucket
from .curriculum import Curriculum, Phase


class SelectionPolicy:
    """What :class:`~gekodata.sampler.weighted_bucket.WeightedBucketSampler` asks of a policy once per epoch.

    Data flows one way: the sampler hands the store to :meth:`classify` (bucket code per sample),
    then to :meth:`sample_weights` for the epoch's phase (relative draw rates), asks
    :meth:`default_budget` how many draws an epoch has when the user set no budget, and, when
    :attr:`provides_loss_weights` is set, :meth:`loss_weight_table` for the per-sample loss
    weights the dataset attaches to each item. Subclasses set ``curriculum`` and
    ``max_times_seen`` and implement :meth:`classify` and :meth:`config`.

    A policy that reads an optional store column names it in :attr:`store_columns` (the sampler
    allocates it before the first report). :attr:`rows_per_pass` is how many reported rows make
    one planned draw: 1 for per-sample reports; an RL prompt policy's group size, where every
    completion of a prompt's group is one row (:class:`~gekodata.policy.PromptPolicy`).

    .. note::
        The planner has two paths (:mod:`gekodata.planning.epoch_plan`): per sample (any
        policy) and per class (a few passes over the store's bytes: much faster for large N).
        A policy opts in to the per-class path by setting :attr:`per_class_plan` to True; user
        policies default to the per-sample path. The declaration belongs to the class that makes
        it: a subclass that overrides :meth:`sample_weights`, :meth:`default_budget` or
        :meth:`loss_weight_table` is planned per sample unless it sets :attr:`per_class_plan`
        again in its own body.
    """

    curriculum: Curriculum
    max_times_seen: int | None
    provides_loss_weights: ClassVar[bool] = False
    store_columns: ClassVar[tuple[str, ...]] = ()
    rechecks_skipped: ClassVar[bool] = False
    """Whether the samples this policy skips (bucket FREEZE) are still drawn at a reduced rate to
    re-check them (the rate policies: :class:`~gekodata.policy.RatePolicy`,
    :class:`~gekodata.policy.ForgettingPolicy`, :class:`~gekodata.policy.ReducibleLossPolicy`).
    Pruning (``PruningDataset(prune_frozen_after=k)``) removes such samples after ``k`` frozen
    epochs, so they are never re-checked: the sampler warns when it is built with both."""
    per_class_plan: ClassVar[bool] = False
    """Whether the planner may plan this policy per class (bucket code, live or dead) instead of
    per sample. Setting it True promises: every live sample's weight is its bucket's
    (:meth:`bucket_weights` returns a table, or None to fall back), and :meth:`default_budget`
    and :meth:`loss_weight_table` accept one entry per class (``counts[g]`` samples stand behind
    entry ``g``). The two paths draw the same counts in expectation but not the same samples, so
    switching a policy's path changes its plans."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "per_class_plan" not in cls.__dict__ and any(
            name in cls.__dict__ for name in _PER_CLASS_HOOKS
        ):
            cls.per_class_plan = False  # an override the declaration did not cover

    @property
    def rows_per_pass(self) -> int:
        """Reported rows per planned draw; the efficiency report counts passes in draws."""
        return 1

    def passes(self, rows: int) -> int:
        """Reported rows as sample passes: a policy whose draws are reported as several rows (an
        RL prompt's group of completions) counts :attr:`rows_per_pass` rows as one, rounded."""
        per_pass = self.rows_per_pass
        return rows if per_pass == 1 else round(rows / per_pass)

    def advance(self, store: GEKOStateStore) -> None:
        """The policy's own once-per-epoch step, called by the sampler right before
        :meth:`classify` when a new epoch is planned (after the last epoch's reports were
        folded; never again for the same epoch, nor when a file is loaded). For policies with
        run state (:class:`~gekodata.policy.PromptPolicy`'s adaptive keep rates), which then
        travels in :meth:`state_arrays`. Default: nothing."""

    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """Bucket code per sample, uint8 [N]."""
        raise NotImplementedError

    @property
    def learns_from_reports(self) -> bool:
        """Whether reports change the plans. False for a policy whose weights never depend on
        the store (equal weights in every phase, or the user's own weights): the sampler then
        expects no reports and does not warn when an epoch gets none."""
        return not all(
            np.unique(self.weight_table(phase)[: Bucket.SUSPECT]).size == 1
            for phase in self.curriculum.phases
        )

    def weight_table(self, phase: Phase) -> np.ndarray:
        """float64 [NUM_BUCKETS]: draw weight per bucket code in ``phase``."""
        return phase.weight_table()

    def sample_weights(self, store: GEKOStateStore, codes: np.ndarray, phase: Phase) -> np.ndarray:
        """float64 [N] draw weights: the bucket's weight (:meth:`weight_table`), 0 if pruned or
        over ``max_times_seen``."""
        weights = self.weight_table(phase)[codes]
        weights[store.pruned] = 0.0
        if self.max_times_seen is not None:
            weights[store.visits >= self.max_times_seen] = 0.0
        return weights

    def bucket_weights(self, phase: Phase) -> np.ndarray | None:
        """float64 [NUM_BUCKETS]: the draw weight of every live sample of each bucket code in
        ``phase`` (pruned samples and those at ``max_times_seen`` weigh 0), or None when weights
        vary within a bucket. With a table the planner works per bucket (counts per bucket, a
        uniform choice of each bucket's extra draws: a few passes over bytes); with None it calls
        :meth:`sample_weights`. Default: :meth:`weight_table`, or None where a subclass overrides
        :meth:`sample_weights`."""
        if type(self).sample_weights is not SelectionPolicy.sample_weights:
            return None
        return self.weight_table(phase)

    def default_budget(
        self, weights: np.ndarray, codes: np.ndarray, counts: np.ndarray | None = None
    ) -> float:
        """Draws per epoch without an explicit budget: one per sample of weight > 0, so frozen
        and pruned samples shorten the epoch. ``codes``: the bucket codes the weights came from.
        ``counts``: when given, entry ``g`` of ``weights`` and ``codes`` stands for ``counts[g]``
        samples (the per-bucket planner passes one entry per class); an override must take it."""
        positive = weights > 0
        return float(np.count_nonzero(positive) if counts is None else counts[positive].sum())

    def loss_weight_table(
        self, weights: np.ndarray, codes: np.ndarray | None = None
    ) -> np.ndarray | None:
        """float32 [N] loss weight per sample for this epoch, or None (no loss weights).
        ``codes``: the bucket codes the weights came from."""
        return None

    def required_signals(self) -> tuple[str, ...]:
        """Optional store signals (:meth:`GEKOStateStore.track` names) this policy reads."""
        return ()

    def prepare(self, store: GEKOStateStore) -> None:
        """Make ``store`` keep what this policy reads: the sampler calls it when it is built and
        after it loads a file, before any report is folded: the optional columns it names in
        :attr:`store_columns` and the signals of :meth:`required_signals`."""
        for name in self.store_columns:
            store.ensure_column(name)
        store.track(*self.required_signals())

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Arrays the policy's state holds beyond its :meth:`config` (e.g. user weights [N]);
        the sampler file carries them (``policy.<name>``). None by default."""
        return {}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_arrays` (validated; ``ValueError`` changes nothing)."""
        if arrays:
            raise ValueError(
                f"{type(self).__name__} keeps no arrays, but the file has {sorted(arrays)}"
            )


_PER_CLASS_HOOKS = ("sample_weights", "default_budget", "loss_weight_table")
"""The methods :attr:`SelectionPolicy.per_class_plan` makes promises about."""
