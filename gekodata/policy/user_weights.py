"""`WeightPolicy`: the user's own per-sample weights, planned by gekodata's exact planner.

The distributed weighted sampler torch lacks (pytorch/pytorch#77154): one global plan on every
rank, exact draw counts (each within 1 of its expectation, summing to the budget), a keyed
permutation by ``(seed, epoch)``, any N (no ``torch.multinomial`` 2^24 cap), resumable, and
weights that change between epochs (trl#2801) through :meth:`WeightPolicy.set_weights`.

Semantics, per epoch, with weights ``w`` (float [N], >= 0, finite, not all 0) and budget ``S``:

* ``replacement=True``: sample ``i`` gets ``floor(S w_i / sum(w))`` draws plus at most one extra
  (exactly ``S`` in all; the planner's low-variance rounding). Default ``S = N``.
* ``replacement=False``: each sample is drawn at most once; its inclusion probability is
  ``p_i = min(1, c w_i)`` with ``c`` chosen so that ``sum(p) = S`` (weights "capped at 1 with the
  budget"; exactly ``S`` samples are drawn). Default ``S = round(sum(min(1, w)))``: weights in
  [0, 1] are then inclusion probabilities as given, and weights >= 1 mean "always". ``S`` may
  not exceed the number of samples with ``w > 0``. Give this budget to the policy (``budget=``),
  not the sampler: a sampler ``budget`` rescales the capped probabilities and may draw a sample
  twice (the planner does not pass its budget to the policy).

The policy reads no per-sample state: reports are accepted and folded as usual (the efficiency
report counts them) but never change the plan. Every sample is classified UNSEEN, so nothing
freezes and nothing is pruned by it. The sampler file carries the weights (the policy's
:meth:`~WeightPolicy.state_arrays`; its config carries their digest), so ``sampler.load`` puts
them back; :meth:`WeightPolicy.save`/:meth:`WeightPolicy.load` keep them alone, for a policy
used without a sampler file (docs/weighted_sampler.md).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Union

import numpy as np

from ..store.files import write_safetensors
from ..store.state_store import GEKOStateStore
from .base import SelectionPolicy
from .buckets import Bucket
from .curriculum import Curriculum, Phase

Budget = Union[None, int, float]
WEIGHTS_FORMAT = "gekodata.weights"


def check_weights(weights: Any, num_samples: int | None = None) -> np.ndarray:
    """``weights`` as a new float64 [N] array; ``TypeError``/``ValueError`` naming the problem.

    Accepts a numpy array, a torch tensor (any device) or a sequence. Must be 1-D, of length
    ``num_samples`` when given, finite, >= 0 and not all 0.
    """
    if hasattr(weights, "detach"):  # a torch tensor
        weights = weights.detach().cpu().double().numpy()
    try:
        array = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"weights must be a float array or tensor [N], got {type(weights).__name__} ({exc})"
        ) from None
    if array.ndim != 1:
        raise ValueError(
            f"weights must be 1-D [N], got shape {tuple(array.shape)}; pass one weight per sample "
            "(e.g. w.reshape(-1))"
        )
    if num_samples is not None and len(array) != num_samples:
        raise ValueError(
            f"weights has {len(array)} entries but the policy has {num_samples} samples; "
            "pass one weight per sample of the dataset"
        )
    if len(array) == 0:
        raise ValueError("weights is empty; pass one weight per sample of the dataset")
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise ValueError(
            f"weights[{bad[0]}] = {array[bad[0]]} ({len(bad)} non-finite in all); weights must be "
            "finite: replace NaN/inf (e.g. np.nan_to_num(w, nan=0.0))"
        )
    if array.min() < 0:
        first = int(np.argmax(array < 0))
        raise ValueError(
            f"weights[{first}] = {array[first]} is negative; weights are relative draw rates and "
            "must be >= 0 (0: never drawn)"
        )
    if not array.any():
        raise ValueError(
            "every weight is 0, so an epoch could draw nothing; give at least one sample a weight > 0"
        )
    return array


def weights_digest(weights: np.ndarray) -> str:
    """Hex BLAKE2b-128 digest of float64 ``weights``' bytes (the sampler file's fingerprint)."""
    return hashlib.blake2b(np.ascontiguousarray(weights).tobytes(), digest_size=16).hexdigest()


def capped_probabilities(weights: np.ndarray, total: int) -> np.ndarray:
    """Inclusion probabilities ``p = min(1, c w)`` with ``sum(p) = total``: float64 [N].

    ``total`` must not exceed the number of positive weights. Samples at the cap get exactly 1.0;
    the others are nudged up by float ulps until ``p[p > 0].sum() >= total``, so the planner's
    expected counts ``total * p / sum(p)`` never exceed 1 (at most one draw each). O(N) per
    iteration; each iteration caps more samples (few in practice; a sort past 64).
    """
    positive = weights > 0
    num_positive = int(np.count_nonzero(positive))
    if total > num_positive:
        raise ValueError(
            f"a budget of {total} draws without replacement needs {total} samples of weight > 0, "
            f"there are {num_positive}; lower the budget or use replacement=True"
        )
    capped = np.zeros(len(weights), dtype=bool)
    scale = 0.0
    for _ in range(64):
        rest = float(weights[~capped].sum())
        scale = (total - int(np.count_nonzero(capped))) / rest if rest > 0 else 0.0
        newly = ~capped & (weights * scale >= 1.0)
        if not newly.any():
            break
        capped |= newly
    else:  # many weight levels: the exact threshold from a sort
        capped = _capped_by_sort(weights, total)
        rest = float(weights[~capped].sum())
        scale = (total - int(np.count_nonzero(capped))) / rest if rest > 0 else 0.0
    probs = np.minimum(weights * scale, 1.0)
    probs[capped] = 1.0
    free = positive & ~capped
    for _ in range(8):
        if probs[positive].sum() >= total or not free.any():
            break
        probs[free] = np.minimum(np.nextafter(probs[free], 2.0), 1.0)
    return probs


def _capped_by_sort(weights: np.ndarray, total: int) -> np.ndarray:
    """The samples at the cap: the largest k weights, for the smallest k that fits."""
    order = np.argsort(-weights, kind="stable")
    sorted_w = weights[order]
    tail = np.cumsum(sorted_w[::-1])[::-1]  # tail[k] = sum of sorted_w[k:]
    k = np.arange(len(weights))
    with np.errstate(divide="ignore", invalid="ignore"):
        fits = sorted_w * (total - k) <= tail  # uncapped from k on: c w_k <= 1
    first = int(np.argmax(fits)) if fits.any() else len(weights)
    capped = np.zeros(len(weights), dtype=bool)
    capped[order[:first]] = True
    return capped


class WeightPolicy(SelectionPolicy):
    """Draw samples in proportion to weights the user gives (module docstring for semantics).

    Args:
        weights: float [N] (numpy array, torch tensor or sequence), >= 0, finite, not all 0.
            None: set them later with :meth:`set_weights` or :meth:`load` (a policy rebuilt from
            a sampler file's config is such a placeholder); planning refuses until then.
        replacement: True: draws proportional to weight (a sample may repeat). False: each sample
            at most once, inclusion ``min(1, c w)``.
        budget: draws per epoch when the sampler has no ``budget``: None (N with replacement,
            ``round(sum(min(1, w)))`` without), an int, or a float in (0, 1] (that fraction of N).
        num_samples: N, needed only when ``weights`` is None (checked by :meth:`set_weights`).

    Example::

        policy = WeightPolicy(w)                       # w: float [N]
        sampler = WeightedBucketSampler(ds, policy, num_epochs=3, seed=0)
        for epoch in range(3):
            policy.set_weights(new_w)                  # optional; used from this set_epoch on
            sampler.set_epoch(epoch)
            ...

    .. note:: Every rank must hold the same weights (the plan is global); compute them from
       state every rank shares, or broadcast them, before :meth:`set_weights`.
    """

    KIND = "weights"
    max_times_seen = None

    def __init__(
        self,
        weights: Any = None,
        *,
        replacement: bool = True,
        budget: Budget = None,
        num_samples: int | None = None,
    ) -> None:
        self.replacement = bool(replacement)
        self.budget = _check_budget(budget)
        self.curriculum = Curriculum([Phase("WEIGHTS", 0.0, 1.0, hard=1, focus=1, light=1)])
        self._weights: np.ndarray | None = None
        self._digest: str | None = None
        self.num_samples = None if num_samples is None else int(num_samples)
        if weights is not None:
            self.set_weights(weights)

    # ------------------------------------------------------------ the weights
    @property
    def weights(self) -> np.ndarray:
        """The current weights, float64 [N] (read-only view)."""
        view = self._require().view()
        view.flags.writeable = False
        return view

    def set_weights(self, weights: Any) -> None:
        """Replace the weights (float [N], checked as in :func:`check_weights`). They take effect
        at the next plan: the sampler's next :meth:`set_epoch` of a new epoch; the current epoch's
        plan is kept. A refused call changes nothing."""
        array = check_weights(weights, self.num_samples)
        self._weights = array
        self.num_samples = len(array)
        self._digest = weights_digest(array)

    def _require(self) -> np.ndarray:
        if self._weights is None:
            raise RuntimeError(
                "this WeightPolicy has no weights yet: call policy.set_weights(w) or "
                "policy.load(path) before the sampler plans (a policy rebuilt from a sampler "
                "file's config carries only the weights' digest)"
            )
        return self._weights

    # ------------------------------------------------------------ the policy
    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """Every sample UNSEEN, uint8 [N]: the policy reads no state (nothing freezes)."""
        return np.full(len(store), np.uint8(Bucket.UNSEEN))

    def sample_weights(self, store: GEKOStateStore, codes: np.ndarray, phase: Phase) -> np.ndarray:
        """float64 [N]: the weights (with replacement) or the capped inclusion probabilities
        (without); 0 for samples the store has pruned (``sampler.unprune`` brings them back)."""
        weights = self._require()
        if len(weights) != len(store):
            raise ValueError(
                f"the policy has {len(weights)} weights but the sampler has {len(store)} samples; "
                "pass one weight per sample of the dataset"
            )
        if store.num_pruned:
            weights = weights.copy()
            weights[store.pruned] = 0.0
        if self.replacement:
            return weights.copy() if weights is self._weights else weights
        return capped_probabilities(weights, self._total(weights))

    def _total(self, weights: np.ndarray) -> int:
        """Draws per epoch by this policy's budget (module docstring)."""
        n = len(weights)
        if self.budget is None:
            return n if self.replacement else round(float(np.minimum(weights, 1.0).sum()))
        if isinstance(self.budget, int):
            return self.budget
        return round(self.budget * n)

    def default_budget(
        self, weights: np.ndarray, codes: np.ndarray, counts: np.ndarray | None = None
    ) -> float:
        """This policy's budget (``weights``: :meth:`sample_weights`' output, per sample; the
        planner plans this policy per sample, so ``counts`` is always None)."""
        if self.replacement:
            return float(self._total(weights))
        return float(round(float(weights.sum())))  # capped probabilities sum to the budget

    @property
    def learns_from_reports(self) -> bool:
        """False: the user's weights alone decide the plan."""
        return False

    def config(self) -> dict[str, Any]:
        """Settings and the weights' N and digest (the weights: :meth:`state_arrays`)."""
        return {
            "kind": self.KIND,
            "replacement": self.replacement,
            "budget": self.budget,
            "num_samples": self.num_samples,
            "weights_digest": self._digest,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WeightPolicy:
        """A placeholder with the config's settings and digest; weights come from :meth:`load`."""
        policy = cls(
            replacement=config.get("replacement", True),
            budget=config.get("budget"),
            num_samples=config.get("num_samples"),
        )
        policy._digest = config.get("weights_digest")
        return policy

    # ------------------------------------------------------------ files
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The arrays a checkpoint needs: ``{"weights": float64 [N]}``."""
        return {"weights": self._require()}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_arrays` (checked like :meth:`set_weights`)."""
        self.set_weights(arrays["weights"])

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and settings as a safetensors file, atomically. Write it beside the
        sampler file whenever you save the sampler (rank 0 is enough)."""
        meta = {"format": WEIGHTS_FORMAT, "version": "1", "digest": str(self._digest)}
        meta.update(replacement=str(self.replacement), budget=repr(self.budget))
        write_safetensors(path, self.state_arrays(), meta)

    def load(self, path: str | os.PathLike) -> None:
        """Restore the weights :meth:`save` wrote (every rank, before ``sampler.load``).
        ``ValueError`` (nothing changed) for another file format, a corrupt file or another N."""
        from safetensors import SafetensorError, safe_open

        where = os.fspath(path)
        try:
            with safe_open(where, framework="numpy") as fh:
                meta = fh.metadata() or {}
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise ValueError(f"{where}: not a readable weights file ({exc})") from None
        if meta.get("format") != WEIGHTS_FORMAT or "weights" not in arrays:
            raise ValueError(f"{where}: not a gekodata weights file (WeightPolicy.save writes one)")
        if weights_digest(np.asarray(arrays["weights"], dtype=np.float64)) != meta.get("digest"):
            raise ValueError(f"{where}: the weights do not match their digest (corrupt file)")
        self.load_state_arrays(arrays)

    def __repr__(self) -> str:
        return (
            f"WeightPolicy(num_samples={self.num_samples}, replacement={self.replacement}, "
            f"budget={self.budget!r})"
        )


def _check_budget(budget: Budget) -> Budget:
    if budget is None:
        return None
    if isinstance(budget, (bool, np.bool_)):
        raise ValueError(f"budget must be None, an int or a fraction in (0, 1], got {budget!r}")
    if isinstance(budget, (int, np.integer)):
        if budget < 0:
            raise ValueError(f"budget must be >= 0 draws, got {budget}")
        return int(budget)
    if isinstance(budget, (float, np.floating)):
        if not 0.0 < float(budget) <= 1.0:
            raise ValueError(f"a fractional budget must be in (0, 1], got {budget}")
        return float(budget)
    raise ValueError(f"budget must be None, an int or a fraction in (0, 1], got {budget!r}")
