"""Prompt selection for RL with verifiable rewards (GRPO-style): :class:`PromptPolicy`.

**Why.** GRPO samples a group of G completions per prompt and scores each completion by its
reward minus the group mean (divided by the group's std). A prompt whose whole group is rewarded
alike -- all right (mastered) or all wrong (out of reach) -- has zero advantage for every
completion: its rollouts, the dominant cost of the run, teach nothing. DAPO's dynamic sampling
(Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale") drops such
groups *after* generating them. GRESO (Zheng et al. 2025, "Act Only When It Pays: Efficient
Reinforcement Learning for LLM Reasoning via Selective Rollouts") measured that a prompt
zero-variance in one epoch mostly stays so in the next ones, and skips it *before* rollout with a
probability that grows with its run of zero-variance epochs: up to 2.4x faster rollouts at equal
accuracy on math benchmarks. gekodata already has the shape for that: a per-sample store, a
policy, and a plan made before the epoch.

**State** (per prompt, in the :class:`~gekodata.store.state_store.GEKOStateStore`, reported once per
completion by :func:`gekodata.prompts.report_groups`, one observation per sync window):

* the pass-rate EMA ``p`` (the ``correct_ema`` column: the mean normalised reward of the window's
  completions, EMA over windows with the store's ``ema_alpha``);
* the signed zero-variance run ``z`` (the ``group_streak`` column, :meth:`store_columns`): +k when
  the prompt's completions were all rewarded alike and right in each of its last k windows, -k
  when alike and wrong, 0 after a window with reward variance;
* ``visits``: completions reported (rollouts).

**Buckets** (the store's codes, so plans, reports, audits and pruning work unchanged):

==========  ===============================================  ==========================================
bucket      prompts                                          expected draws per epoch
==========  ===============================================  ==========================================
UNSEEN      never rolled out                                 1
FOCUS       informative: the last group had reward variance  ``(1 - learnability) + learnability *
                                                             l / mean(l)``, ``l = p (1 - p)``, capped at
                                                             ``max_draws`` (mean over FOCUS: 1)
LIGHT       solved streak: ``1 <= z < freeze_after``         ``max(k_easy ** z, q)``
FREEZE      mastered: ``z >= freeze_after``                  0 (re-audited, see below)
HARD        failed streak: ``z <= -1``                       ``max(k_hard ** -z, q, explore, r)``,
                                                             1 if recalled by a tag
==========  ===============================================  ==========================================

where ``q = 1 - p ** G - (1 - p) ** G`` is the probability that a group of ``G = group_size``
completions at pass rate ``p`` has reward variance (``informed=True``, the default; 0 otherwise).

The default epoch is the sum of these expected draws, so skipped prompts shorten it (an explicit
sampler ``budget`` rescales them instead). Reasoning for each rule:

* **GRESO's probabilistic skipping.** A prompt zero-variance in its last ``|z|`` windows is kept
  with probability ``keep ** |z|`` (GRESO's ``1 - p_skip = p ** count``, ``p_easy = p_hard = 0.5``
  at the start of their runs). It is never skipped for sure on one observation: a group of G
  completions is all-alike by chance often (at pass rate 0.1 and G = 8, 43% of groups are all
  wrong), and skipping by probability keeps re-sampling those.
* **Mastered prompts freeze and are re-audited** (like GEKO's FREEZE): after ``freeze_after``
  consecutive all-right windows the prompt gets weight 0 (and is pruned after
  ``PruningDataset(prune_frozen_after=k)``, where the dataset is a PruningDataset). The sampler's
  forgetting audit (``WeightedBucketSampler(audit_fraction=0.1, audit_margin=0.5)``) rolls out a
  fraction of the frozen prompts each epoch; the reported "loss" of a completion is ``1 - reward``,
  so one failed completion (loss 1 against a loss EMA near 0) unfreezes the prompt: a mastered
  prompt that produced a wrong answer has reward variance again, i.e. it teaches. Without an
  audit, frozen prompts stay frozen: pass ``freeze_after=None`` for GRESO's never-final skipping.
* **The pass rate tempers the run** (``informed``). GRESO measured that zero-variance prompts
  mostly stay so on math datasets where a large model's pass rates are near 0 or 1; a prompt at a
  middle pass rate also produces all-alike groups by chance (at ``p = 0.2`` and G = 8, 17% of its
  groups are all wrong) and is then informative again in the next epoch. Its pass-rate EMA
  remembers the earlier successes, so the keep probability is at least the probability ``q`` that
  the next group has reward variance. For a prompt whose whole history is one-sided (``p`` at 0 or
  1) ``q`` is 0 and GRESO's rule alone decides.
* **Hopeless prompts keep a small exploration rate.** All-wrong prompts are the ones the model may
  learn to solve as it improves (GRESO gives them the larger share of its zero-variance budget for
  that reason); ``explore`` (default 0.05) is the floor of their keep probability, so a prompt out
  of reach is rolled out about once in 20 epochs and returns to FOCUS on its first mixed group.
* **Learnability.** Among informative prompts, the expected GRPO signal is largest near pass rate
  0.5: the probability that a group has any reward variance, and the variance of a Bernoulli
  reward, are both driven by ``p (1 - p)`` (Foster & Foerster 2025, "Learning to Reason at the
  Frontier of Learnability", sample prompts by ``p (1 - p)``). ``learnability`` blends uniform
  draws with draws proportional to ``p (1 - p)``, normalised so that the informative prompts keep
  their share of the epoch (they are redistributed, never dropped for it); 0 turns it off.
  ``p`` is the pass-rate EMA, which lags: a prompt that just moved from all-wrong to 1/8 right
  has a small ``p`` and gets fewer draws than one at 0.5, still at least ``1 - learnability``.

**Adaptive keep rates** (``zero_target``; GRESO's idea, a faster controller). ``k_easy`` and
``k_hard`` start at ``easy_keep`` and ``hard_keep``. At each new epoch, among the prompts rolled
out in the last one, the share whose group was all right (all wrong) is compared with its target,
``zero_target * (1 - hard_share)`` (``zero_target * hard_share``), and the rate is multiplied by
``target / observed``, clipped to a factor of 2 per epoch and to [0.05, 1]
(:mod:`gekodata.policy.prompt_state`). GRESO moves its rates by +-0.01 per rollout batch toward a
25% target; a gekodata epoch is one observation, and the zero-variance groups a rate lets
through grow about in proportion to it, so the ratio step reaches the target in a few epochs.
None keeps the rates fixed (the rule before issue 23).

**Prompts that become learnable come back** (``recheck``, ``tags``). A prompt out of reach may
turn learnable as the model improves; skipping it with ``k_hard ** |z|`` leaves it out for
epochs. The run measures that progress where it matters: a prompt is *out of reach* when its last
group was all wrong and no right completion is left in its pass-rate EMA (0 at the store's 1/255
resolution: about five windows since its last success at G = 8); the *thaw rate* ``h`` is an EMA
of the share of the out-of-reach prompts rolled out last epoch whose group was mixed or right. A
prompt with a success in recent memory is not out of reach but hard, and ``q`` already keeps it.
A failing prompt not rolled out for ``gap`` epochs then has probability about
``1 - (1 - h) ** gap`` of having thawed, and is drawn at least
``r = min(1, recheck * (1 - (1 - h) ** gap))``: while nothing thaws (``h = 0``) hopeless prompts
cost only GRESO's rate and the floor; while prompts thaw, the ones left longest come first. With
``tags`` (an int group per prompt: a skill, a source, a topic), a prompt that thaws recalls the
failing prompts of its tag at weight 1 for the next epoch: neighbours usually unlock together.

**How the settings were chosen** (``python -m benchmarks.rl_sim``, a GRPO simulation of 2,000
prompts with too-easy, learnable, out-of-reach and late-unlocking prompts; tuned on seeds
100-102, reported on seeds 0-2 in ``docs/benchmarks/rl_sim.md``). Rule fixed before looking: the
fewest rollouts among settings whose late-unlocking prompts came back within 2 epochs >= 80% of
the time and whose final pass rate was within 0.03 of uniform's. First grid (before the
out-of-reach test looked at the pass-rate EMA): ``recheck`` in {0, 2, 4, 8}, ``explore`` in
{0.02, 0.05, 0.1}, ``zero_target`` in {None, 0.25, 0.4}: ``recheck=8, zero_target=0.25``. There
every failing prompt was re-rolled each epoch once the thaw rate passed 1/8, hopeless ones
included. Second grid, with the out-of-reach test above (one all-wrong window and no success
remembered, against two all-wrong windows before): ``recheck`` in {2, 3, 4},
``zero_target`` in {0.15, 0.25}, ``informed`` on/off, ``learnability`` 0/0.5: ``recheck=4``,
``zero_target=0.25``, ``informed=True`` (0.65x uniform's rollouts, -0.028 pass rate, 94% back
within 2 epochs, against 0.66x, -0.026, 85% before). ``learnability=0`` did as well or better in
the simulation, whose learning step is the same for every informative group whatever its pass
rate, so the simulation cannot judge it: 0.5 kept. ``explore=0.05`` was within noise of 0.1, kept;
``hard_share=0.5`` was not tuned. With the simulation's topics as ``tags`` the same rule picks
``recheck=3`` (0.65x, -0.025, 98%): there tags buy comeback and accuracy, not rollouts. The zero-variance share itself
stays far above the 25% target there (most zero-variance groups come from prompts kept for
re-checks or by chance at low pass rates): the target is a direction, not a promise.
Re-checks cost rollouts wherever failing prompts thaw now and then by chance: on the tiny-LM
benchmark's basic_arithmetic, ``recheck=0`` rolled out 0.44x of uniform's completions against
0.64x, at equal accuracy (``docs/rl.md`` has the trade-off and when to choose which).

With rewards other than pass/fail, "all alike" means every reward of the group exactly equal,
and "right" means that common reward is in the upper half of ``reward_range`` (the store's
correctness >= 0.5).

**Run state** (:meth:`state_arrays`: keep rates, thaw rate, epochs, per prompt the epoch last
rolled out, ``visits`` and ``group_streak`` at the last epoch boundary, the recall mask; 8
bytes per prompt) is advanced once per new epoch by :meth:`advance` and travels in the sampler
file, so a resumed run selects exactly as one never saved. One policy object serves one
sampler (a second run restarts it; two live runs sharing it raise ``ValueError``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..arguments import check_unit_interval
from ..store.layout import MAX_GROUP_STREAK
from ..store.state_store import GEKOStateStore
from .base import SelectionPolicy
from .buckets import Bucket, _check_max_times_seen
from .curriculum import Curriculum, Phase
from .prompt_state import PromptRunState


@dataclass
class PromptPolicy(SelectionPolicy):
    """Plans RL prompts from their groups' outcomes (module docstring: rules, reasons, sources).

    Args:
        group_size: completions per prompt group (GRPO's ``num_generations``). The efficiency
            report counts a group of this many reported completions as one pass.
        easy_keep: initial keep probability per all-right window, ``k ** z`` (GRESO: 0.5).
        hard_keep: initial keep probability per all-wrong window, ``k ** |z|`` (GRESO: 0.5).
        explore: floor of an all-wrong prompt's keep probability, in [0, 1].
        informed: keep a zero-variance prompt at least with the probability that a group at its
            pass-rate EMA has reward variance (module docstring); False: GRESO's run alone.
        freeze_after: all-right windows in a row after which a prompt is FREEZE (weight 0; audited
            when the sampler has ``audit_fraction > 0``); 1 to 127, or None: never freeze.
        learnability: in [0, 1]; 0: every informative prompt is drawn once per epoch; 1: draws
            proportional to ``p (1 - p)``; in between a blend (the informative prompts' total is
            kept).
        max_draws: most expected draws of one prompt per epoch (>= 1).
        max_times_seen: completions (rows) after which a prompt gets weight 0; None = no limit.
        zero_target: target share of zero-variance groups among the prompts rolled out per
            epoch, steering the keep rates (module docstring); None: fixed keep rates.
        hard_share: the all-wrong part of ``zero_target`` (the rest: all right).
        recheck: scale of the re-check weight of failing prompts by the thaw rate and the epochs
            since their last rollout; 0 turns it off.
        tags: optional int [N] >= 0, a group per prompt (topic, skill, source): a prompt that
            thaws recalls its tag's failing prompts. Not saved in the sampler file (its digest
            is): pass the same tags when resuming.
    """

    group_size: int = 1
    easy_keep: float = 0.5
    hard_keep: float = 0.5
    explore: float = 0.05
    informed: bool = True
    freeze_after: int | None = 3
    learnability: float = 0.5
    max_draws: float = 2.0
    max_times_seen: int | None = None
    zero_target: float | None = 0.25
    hard_share: float = 0.5
    recheck: float = 4.0
    tags: Any = field(default=None, compare=False, repr=False)
    store_columns: ClassVar[tuple[str, ...]] = ("group_streak",)

    def __post_init__(self) -> None:
        if (
            isinstance(self.group_size, bool)
            or int(self.group_size) != self.group_size
            or int(self.group_size) < 1
        ):
            raise ValueError(
                f"group_size must be an int >= 1 (completions per prompt), got {self.group_size!r}"
            )
        self.group_size = int(self.group_size)
        self.easy_keep = check_unit_interval("easy_keep", self.easy_keep)
        self.hard_keep = check_unit_interval("hard_keep", self.hard_keep)
        self.explore = check_unit_interval("explore", self.explore)
        if not isinstance(self.informed, (bool, np.bool_)):
            raise ValueError(f"informed must be a bool, got {self.informed!r}")
        self.informed = bool(self.informed)
        self.learnability = check_unit_interval("learnability", self.learnability)
        if self.freeze_after is not None:
            if not 1 <= int(self.freeze_after) <= MAX_GROUP_STREAK:
                raise ValueError(
                    f"freeze_after must be in [1, {MAX_GROUP_STREAK}] (the store's streak saturates "
                    f"there) or None, got {self.freeze_after}"
                )
            self.freeze_after = int(self.freeze_after)
        self.max_draws = float(self.max_draws)
        if not (math.isfinite(self.max_draws) and self.max_draws >= 1.0):
            raise ValueError(f"max_draws must be finite and >= 1, got {self.max_draws}")
        self.max_times_seen = _check_max_times_seen(self.max_times_seen)
        if self.zero_target is not None:
            self.zero_target = check_unit_interval("zero_target", self.zero_target)
        self.hard_share = check_unit_interval("hard_share", self.hard_share)
        self.recheck = float(self.recheck)
        if not (math.isfinite(self.recheck) and self.recheck >= 0.0):
            raise ValueError(f"recheck must be finite and >= 0, got {self.recheck}")
        self._tags_digest: str | None = None
        if self.tags is not None:
            self.tags = _check_tags(self.tags)
            self._tags_digest = tags_digest(self.tags)
        self._state = PromptRunState(self.easy_keep, self.hard_keep)
        # one phase for the whole run (the weights come from each prompt's state, not the table)
        self.curriculum = Curriculum(
            [Phase("PROMPTS", 0.0, 1.0, hard=1, focus=1, light=1, unseen=1)]
        )

    @property
    def rows_per_pass(self) -> int:
        return self.group_size

    def classify(self, store: GEKOStateStore) -> np.ndarray:
        """UNSEEN (no report), FOCUS (last window had reward variance), LIGHT (solved streak),
        FREEZE (solved ``freeze_after`` windows running), HARD (failed streak); uint8 [N]."""
        streak = store.group_streak
        codes = np.full(len(store), np.uint8(Bucket.FOCUS))
        codes[streak > 0] = Bucket.LIGHT
        codes[streak < 0] = Bucket.HARD
        if self.freeze_after is not None:
            codes[streak >= self.freeze_after] = Bucket.FREEZE
        codes[store.visits == 0] = Bucket.UNSEEN
        return codes

    def sample_weights(self, store: GEKOStateStore, codes: np.ndarray, phase: Phase) -> np.ndarray:
        """Expected draws per prompt this epoch, float64 [N] (table in the module docstring); 0 for
        FREEZE, pruned prompts and prompts over ``max_times_seen``."""
        weights = np.zeros(len(store), dtype=np.float64)
        run = store.group_streak.astype(np.float64)
        weights[codes == Bucket.UNSEEN] = 1.0
        light = np.flatnonzero(codes == Bucket.LIGHT)
        hard = np.flatnonzero(codes == Bucket.HARD)
        easy_keep, hard_keep = self.keep_rates
        weights[light] = np.maximum(easy_keep ** run[light], self._informative(store, light))
        weights[hard] = np.maximum(
            np.maximum(hard_keep ** -run[hard], self._informative(store, hard)), self.explore
        )
        weights[hard] = np.maximum(weights[hard], self._comeback(store, hard))
        focus = np.flatnonzero(codes == Bucket.FOCUS)
        if len(focus):
            weights[focus] = self._focus_draws(store.correctness[focus].astype(np.float64))
        weights[store.pruned] = 0.0
        if self.max_times_seen is not None:
            weights[store.visits >= self.max_times_seen] = 0.0
        return weights

    @property
    def keep_rates(self) -> tuple[float, float]:
        """The current (all-right, all-wrong) keep rates per zero-variance window: ``easy_keep``
        and ``hard_keep`` at the start, adapted each epoch when ``zero_target`` is set."""
        return float(self._state.keep[0]), float(self._state.keep[1])

    @property
    def thaw_rate(self) -> float:
        """EMA of the share of out-of-reach prompts (all wrong in their last 2+ windows) rolled
        out last epoch whose group was mixed or right."""
        return self._state.thaw_rate

    def advance(self, store: GEKOStateStore) -> None:
        """The once-per-epoch step (before :meth:`classify`): read what the last epoch's groups
        showed, adapt the keep rates, update the thaw rate, recall the neighbours of prompts that
        thawed, and remember when each prompt was last rolled out. Whole-array numpy."""
        state = self._state
        if self.tags is not None and len(self.tags) != len(store):
            raise ValueError(
                f"tags has {len(self.tags)} entries but the store has {len(store)} prompts"
            )
        state.bind(store, self.easy_keep, self.hard_keep)
        if state.epochs > 0:
            tried, thawed, outcome = state.observe(store)
            state.last = outcome
            if self.zero_target is not None:
                hard = self.zero_target * self.hard_share
                state.adapt(outcome, (self.zero_target - hard, hard))
            state.note_thaws(outcome)
            state.recall = self._recall(store, thawed)
            state.close_epoch(store, tried)
        state.epochs += 1

    def _recall(self, store: GEKOStateStore, thawed: np.ndarray) -> np.ndarray:
        """bool [N]: failing prompts (``group_streak < 0``) sharing a tag with a prompt that
        thawed last epoch (``thawed``, from :meth:`PromptRunState.observe`; none without
        ``tags``)."""
        if self.tags is None:
            return np.zeros(len(store), dtype=bool)
        hot = np.bincount(self.tags[thawed], minlength=int(self.tags.max()) + 1) > 0
        return hot[self.tags] & (store.group_streak < 0)

    def _comeback(self, store: GEKOStateStore, rows: np.ndarray) -> np.ndarray:
        """Lower bound of the draws of failing prompts ``rows``: 1 when recalled by a tag,
        else ``min(1, recheck * (1 - (1 - thaw_rate) ** gap))`` with ``gap`` the epochs since
        the prompt was last rolled out: the chance it thawed meanwhile, scaled by ``recheck``."""
        state = self._state
        out = np.zeros(len(rows))
        if state.last_tried is None or len(state.last_tried) != len(store) or not len(rows):
            return out
        if self.recheck > 0 and state.thaw_rate > 0:
            gap = state.epochs_since_tried(rows)
            out = np.minimum(1.0, self.recheck * (1.0 - (1.0 - state.thaw_rate) ** gap))
        if state.recall is not None:
            out[state.recall[rows]] = 1.0
        return out

    def _informative(self, store: GEKOStateStore, rows: np.ndarray) -> np.ndarray:
        """``1 - p**G - (1-p)**G`` at each row's pass-rate EMA (0 without ``informed``)."""
        if not self.informed or self.group_size < 2:
            return np.zeros(len(rows))
        p = store.correctness[rows].astype(np.float64)
        return np.clip(1.0 - p**self.group_size - (1.0 - p) ** self.group_size, 0.0, 1.0)

    def _focus_draws(self, pass_rate: np.ndarray) -> np.ndarray:
        """Draws of informative prompts: a blend of 1 and ``p (1 - p) / mean``, capped."""
        draws = np.ones(len(pass_rate))
        learn = pass_rate * (1.0 - pass_rate)
        mean = float(learn.mean())
        if self.learnability > 0 and mean > 0:
            draws = (1.0 - self.learnability) + self.learnability * (learn / mean)
        return np.minimum(draws, self.max_draws)

    def default_budget(
        self, weights: np.ndarray, codes: np.ndarray, counts: np.ndarray | None = None
    ) -> float:
        """The expected number of draws: the weights are expected draws per prompt. ``counts``:
        as in :meth:`SelectionPolicy.default_budget` (unused here: this policy is planned per
        sample, its weights vary within a bucket)."""
        return float(weights.sum() if counts is None else np.dot(counts, weights))

    def config(self) -> dict[str, Any]:
        return {
            "kind": "prompt",
            "group_size": self.group_size,
            "easy_keep": self.easy_keep,
            "hard_keep": self.hard_keep,
            "explore": self.explore,
            "informed": self.informed,
            "freeze_after": self.freeze_after,
            "learnability": self.learnability,
            "max_draws": self.max_draws,
            "max_times_seen": self.max_times_seen,
            "zero_target": self.zero_target,
            "hard_share": self.hard_share,
            "recheck": self.recheck,
            "tags_digest": self._tags_digest,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PromptPolicy:
        """The policy of a :meth:`config`; with ``tags_digest``, a placeholder that carries the
        digest (the tags themselves are the user's: pass them again when resuming)."""
        kwargs = {k: v for k, v in config.items() if k not in ("kind", "tags_digest")}
        policy = cls(**kwargs)
        policy._tags_digest = config.get("tags_digest")
        return policy

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The run state (:mod:`gekodata.policy.prompt_state`): keep rates, thaw rate, epochs,
        per-prompt last-rolled-out epoch, visits and streak at the last boundary, recall mask."""
        return self._state.arrays()

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_arrays` (``ValueError``, nothing changed, if they do not fit)."""
        if arrays:
            self._state.load(arrays)


def _check_tags(tags: Any) -> np.ndarray:
    """``tags`` as int64 [N] >= 0; ``ValueError`` otherwise."""
    if hasattr(tags, "detach"):
        tags = tags.detach().cpu().numpy()
    array = np.asarray(tags)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_):
        raise ValueError(
            f"tags must be 1-D integers (a group id per prompt), got {array.dtype} {array.shape}"
        )
    if len(array) and int(array.min()) < 0:
        raise ValueError(f"tags must be >= 0, got {int(array.min())}")
    return array.astype(np.int64)


def tags_digest(tags: np.ndarray) -> str:
    """sha256 of the tags as int64 bytes (the sampler file compares it)."""
    return hashlib.sha256(np.ascontiguousarray(tags, dtype=np.int64).tobytes()).hexdigest()[:16]
