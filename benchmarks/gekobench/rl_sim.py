"""A GRPO prompt-selection simulation (numpy, seconds): which prompts get rolled out, and what the
"model" learns from them, for uniform, DAPO-style, GRESO-style and gekodata selection.

**The world** (one per seed; every arm of a seed starts from the same one). ``N`` prompts in
topics of 20 (the tags a user may know: a skill, a source, a difficulty band), three kinds of
topic:

* *core* (40%): too easy (45%, pass rate 0.92-0.99), learnable (45%, 0.05-0.73), out of reach
  for good (10%, pass rate 0);
* *frontier* (30%): learnable (30%), too easy (15%), and late (55%): out of reach (pass rate 0)
  until the model's progress passes the topic's threshold (uniform in [0.2, 1.6] progress units,
  each prompt +- N(0, 0.1)); then learnable at 0.10-0.31;
* *beyond* (30%): out of reach for good (75%), hard but learnable (25%, 0.03-0.18).

**Learning** (GRPO: a group with reward variance has nonzero advantages, an all-alike group none).
Each prompt has a logit; after every epoch, each group with reward variance trained on a prompt
raises that prompt's logit by ``ETA`` (0.5), and the model's *progress* (informative groups
trained so far / N) lifts every reachable prompt by ``TRANSFER`` (0.4) logits per unit (what one
skill teaches about the others); late prompts unlock when progress passes their threshold.
Zero-variance groups change nothing. So an arm loses accuracy only by not rolling out prompts
that would have been informative, and gains rollouts by skipping the others. Learning within an
epoch is ignored for every arm alike.

**Arms.** ``uniform``: every prompt once per epoch. ``dapo``: every prompt once per epoch, zero-
variance groups dropped after generation and the update batches refilled from later prompts
(DAPO's dynamic sampling, Yu et al. 2025): the same rollouts as uniform, none of its trained
groups zero-advantage; in this learning model it learns exactly as uniform. ``greso``: GRESO's
rule as implemented in :mod:`benchmarks.gekobench.greso` (Zheng et al. 2025, read, not copied): a
prompt with a run of ``z`` zero-variance rollouts is skipped before rollout with probability
``1 - p ** z`` (``p_easy`` or ``p_hard`` by the run's direction), and after every chunk of 256
candidate prompts each ``p`` moves by 0.01 toward a target share of zero-variance groups among
the chunk's rolled-out prompts (25% in all, half all-wrong), within [0.01, 1].
``gekodata_before``: ``PromptPolicy`` with its pre-issue-23 rules (fixed keep rates, a 0.05
exploration floor); ``gekodata``: ``PromptPolicy(group_size=8)`` defaults;
``gekodata_recheck0``: the defaults without re-checks of out-of-reach prompts (``recheck=0``:
adaptive keep rates and the floor only); ``gekodata_tags``: the defaults with ``tags=`` the
topics. The gekodata arms run the real ``WeightedBucketSampler``
(``audit_fraction=0.1``) and report with ``report_groups``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from gekodata import PromptPolicy, WeightedBucketSampler
from gekodata.prompts import report_groups

from .greso import GresoSkip

ETA = 0.5
"""Logit step of a prompt per group with reward variance trained on it."""
TRANSFER = 0.4
"""Logit lift of every reachable prompt per unit of progress (informative groups / N)."""
TOPIC = 20
"""Prompts per topic."""
MAX_LOGIT = 6.0
KINDS = ("easy", "learnable", "late", "never")
ARMS = (
    "uniform",
    "dapo",
    "greso",
    "gekodata_before",
    "gekodata",
    "gekodata_recheck0",
    "gekodata_tags",
)


@dataclass
class World:
    """The prompts' true state: logits (-inf: out of reach), kinds, topics, unlock thresholds."""

    logit: np.ndarray  # float64 [N]
    kind: np.ndarray  # int8 [N]: 0 easy, 1 learnable, 2 late, 3 never
    tag: np.ndarray  # int64 [N]
    unlock_at: np.ndarray  # float64 [N], inf unless late
    unlock_logit: np.ndarray  # float64 [N]
    unlocked_epoch: np.ndarray  # int64 [N], -1 until unlocked
    progress: float = 0.0

    @property
    def pass_rate(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit))

    def learn(self, informative: np.ndarray, next_epoch: int) -> None:
        """Apply one epoch's informative groups per prompt (int [N]); unlock late prompts."""
        num = len(self.logit)
        gained = float(informative.sum()) / num
        reachable = np.isfinite(self.logit)
        self.logit[reachable] += ETA * informative[reachable] + TRANSFER * gained
        np.minimum(self.logit, MAX_LOGIT, out=self.logit)
        self.progress += gained
        opening = (self.unlocked_epoch < 0) & (self.unlock_at <= self.progress)
        self.logit[opening] = self.unlock_logit[opening]
        self.unlocked_epoch[opening] = next_epoch


def make_world(num_prompts: int, seed: int) -> World:
    """The seed's world (module docstring); ``num_prompts`` a multiple of :data:`TOPIC`."""
    rng = np.random.default_rng([seed, 23])
    topics = num_prompts // TOPIC
    topic_kind = rng.choice(3, size=topics, p=[0.4, 0.3, 0.3])  # core, frontier, beyond
    mix = {0: [0.45, 0.45, 0.0, 0.10], 1: [0.15, 0.30, 0.55, 0.0], 2: [0.0, 0.25, 0.0, 0.75]}
    tag = np.repeat(np.arange(topics), TOPIC)
    kind = np.concatenate([rng.choice(4, size=TOPIC, p=mix[int(k)]) for k in topic_kind]).astype(
        np.int8
    )
    beyond = topic_kind[tag] == 2
    logit = np.where(kind == 0, rng.uniform(2.5, 5.0, num_prompts), -np.inf)
    logit = np.where(kind == 1, rng.uniform(-3.0, 1.0, num_prompts), logit)
    logit = np.where((kind == 1) & beyond, rng.uniform(-3.5, -1.5, num_prompts), logit)
    threshold = rng.uniform(0.2, 1.6, topics)[tag] + rng.normal(0, 0.1, num_prompts)
    unlock_at = np.where(kind == 2, np.maximum(threshold, 0.05), np.inf)
    return World(
        logit=logit,
        kind=kind,
        tag=tag,
        unlock_at=unlock_at,
        unlock_logit=rng.uniform(-2.2, -0.8, num_prompts),
        unlocked_epoch=np.full(num_prompts, -1, dtype=np.int64),
    )


@dataclass
class Ledger:
    """What an arm generated and trained, per epoch."""

    groups: list[int] = field(default_factory=list)
    zero_generated: list[int] = field(default_factory=list)
    zero_trained: list[int] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)
    pass_rate: list[float] = field(default_factory=list)
    rolled: list[np.ndarray] = field(default_factory=list)  # bool [N] per epoch


Rollout = Callable[[np.ndarray], np.ndarray]
"""prompts (int [P]) -> bool [P, G]: each completion right with its prompt's current pass rate."""


def run_arm(
    arm: str, seed: int, *, num_prompts: int, epochs: int, g: int, **policy_kw: Any
) -> dict:
    """One arm on the seed's world; per-epoch ledger and the summary figures."""
    world = make_world(num_prompts, seed)
    rng = np.random.default_rng([seed, 7])

    def rollout(prompts: np.ndarray) -> np.ndarray:
        return rng.random((len(prompts), g)) < world.pass_rate[prompts, None]

    ledger = Ledger()
    select = _selector(arm, world, seed, epochs, g, policy_kw)
    started = time.perf_counter()
    for epoch in range(epochs):
        prompts, right = select.run_epoch(epoch, rollout)
        hits = right.sum(1)
        zero = (hits == 0) | (hits == g)
        train = ~zero if arm == "dapo" else np.ones(len(prompts), dtype=bool)
        informative = np.bincount(prompts[~zero], minlength=num_prompts)
        ledger.groups.append(len(prompts))
        ledger.zero_generated.append(int(zero.sum()))
        ledger.trained.append(int(train.sum()))
        ledger.zero_trained.append(int((zero & train).sum()))
        ledger.rolled.append(np.bincount(prompts, minlength=num_prompts) > 0)
        world.learn(informative, epoch + 1)
        ledger.pass_rate.append(float(world.pass_rate.mean()))
    return _summary(arm, seed, world, ledger, g, time.perf_counter() - started)


class _Uniform:
    """Every prompt once per epoch (uniform and DAPO: DAPO filters after generation)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def run_epoch(self, epoch: int, rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
        prompts = np.arange(self.n)
        return prompts, rollout(prompts)


class _Greso:
    """GRESO-style pre-rollout skipping (:class:`~benchmarks.gekobench.greso.GresoSkip`): the
    shuffled prompts in chunks of ``BATCH``, each chunk filtered by the skip draw, rolled out, and
    the rates adapted from its rolled-out groups."""

    BATCH = 256

    def __init__(self, n: int, g: int, seed: int) -> None:
        self.skip = GresoSkip(n, seed)
        self.n, self.g = n, g

    def run_epoch(self, epoch: int, rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
        order = self.skip.order()
        chosen, outcomes = [], []
        for lo in range(0, self.n, self.BATCH):
            rolled = self.skip.keep(order[lo : lo + self.BATCH])
            right = rollout(rolled)
            chosen.append(rolled)
            outcomes.append(right)
            hits = right.sum(1)
            self.skip.observe(rolled, hits == self.g, hits == 0)
        return np.concatenate(chosen), np.concatenate(outcomes)


class _Gekodata:
    """The real sampler with a PromptPolicy; groups reported with ``report_groups``."""

    def __init__(self, n: int, epochs: int, seed: int, policy: PromptPolicy) -> None:
        self.sampler = WeightedBucketSampler(
            range(n), policy, num_epochs=epochs, seed=seed, audit_fraction=0.1
        )

    def run_epoch(self, epoch: int, rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
        self.sampler.set_epoch(epoch)
        prompts = np.asarray(self.sampler.global_plan, dtype=np.int64)
        right = rollout(prompts)
        report_groups(self.sampler, prompts, right.astype(np.float32))
        return prompts, right


def policy_for(arm: str, world: World, g: int, **kw: Any) -> PromptPolicy:
    """The PromptPolicy of a gekodata arm (``kw`` overrides, for tuning)."""
    if arm == "gekodata_before":
        return PromptPolicy(group_size=g, zero_target=None, recheck=0.0, explore=0.05)
    if arm == "gekodata_tags":
        return PromptPolicy(group_size=g, tags=world.tag, **kw)
    if arm == "gekodata_recheck0":
        return PromptPolicy(group_size=g, **{"recheck": 0.0, **kw})
    return PromptPolicy(group_size=g, **kw)


def _selector(arm: str, world: World, seed: int, epochs: int, g: int, kw: dict) -> Any:
    n = len(world.logit)
    if arm in ("uniform", "dapo"):
        return _Uniform(n)
    if arm == "greso":
        return _Greso(n, g, seed)
    return _Gekodata(n, epochs, seed, policy_for(arm, world, g, **kw))


def _summary(arm: str, seed: int, world: World, ledger: Ledger, g: int, seconds: float) -> dict:
    epochs = len(ledger.groups)
    rolled = np.array(ledger.rolled)  # [E, N]
    u = world.unlocked_epoch
    cohort = np.flatnonzero((u >= 1) & (u <= epochs - 2))
    # "became learnable while skipped": rolled out (and out of reach) before it unlocked
    before = (
        np.array([rolled[: u[i]].any() for i in cohort], dtype=bool)
        if len(cohort)
        else np.zeros(0, bool)
    )
    cohort = cohort[before]
    back = np.array([rolled[u[i] : u[i] + 2, i].any() for i in cohort], dtype=bool)
    groups = int(sum(ledger.groups))
    return {
        "arm": arm,
        "seed": seed,
        "rollouts": groups * g,
        "final_pass_rate": ledger.pass_rate[-1],
        "final_pass_rate_by_kind": {
            name: float(world.pass_rate[world.kind == k].sum()) / len(world.kind)
            for k, name in enumerate(KINDS)
        },
        "zero_advantage_trained_share": sum(ledger.zero_trained) / max(sum(ledger.trained), 1),
        "zero_advantage_generated": int(sum(ledger.zero_generated)),
        "unlocked_while_skipped": len(cohort),
        "back_within_2_epochs": float(back.mean()) if len(back) else None,
        "seconds": seconds,
        "epochs": [
            {
                "groups": ledger.groups[e],
                "rollouts": int(sum(ledger.groups[: e + 1])) * g,
                "pass_rate": ledger.pass_rate[e],
                "zero_generated": ledger.zero_generated[e],
            }
            for e in range(epochs)
        ],
    }


def summarise(runs: list[dict], arms: tuple[str, ...]) -> dict[str, dict]:
    """Per arm: means and stds over seeds; rollouts and final pass rate paired with uniform's."""
    by = {(r["arm"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out: dict[str, dict] = {}
    for arm in arms:
        rs = [by[(arm, s)] for s in seeds if (arm, s) in by]
        base = [by[("uniform", s)] for s in seeds if (arm, s) in by]
        ratio = np.array([r["rollouts"] / b["rollouts"] for r, b in zip(rs, base)])
        delta = np.array([r["final_pass_rate"] - b["final_pass_rate"] for r, b in zip(rs, base)])
        back = [r["back_within_2_epochs"] for r in rs if r["back_within_2_epochs"] is not None]
        reach = [_rollouts_to(r, b["final_pass_rate"]) for r, b in zip(rs, base)]
        out[arm] = {
            "rollouts_mean": float(np.mean([r["rollouts"] for r in rs])),
            "rollouts_vs_uniform_mean": float(ratio.mean()),
            "rollouts_vs_uniform_std": float(ratio.std()),
            "final_pass_rate_mean": float(np.mean([r["final_pass_rate"] for r in rs])),
            "delta_vs_uniform_mean": float(delta.mean()),
            "delta_vs_uniform_std": float(delta.std()),
            "zero_advantage_trained_share_mean": float(
                np.mean([r["zero_advantage_trained_share"] for r in rs])
            ),
            "zero_advantage_generated_mean": float(
                np.mean([r["zero_advantage_generated"] for r in rs])
            ),
            "unlocked_while_skipped_mean": float(
                np.mean([r["unlocked_while_skipped"] for r in rs])
            ),
            "back_within_2_epochs_mean": float(np.mean(back)) if back else None,
            "back_within_2_epochs_std": float(np.std(back)) if back else None,
            "rollouts_to_uniform_final": [None if x is None else int(x) for x in reach],
        }
    return out


def _rollouts_to(run: dict, level: float) -> float | None:
    """Rollouts by the first epoch end at which the run's mean pass rate reached ``level``."""
    for e in run["epochs"]:
        if e["pass_rate"] >= level - 1e-12:
            return float(e["rollouts"])
    return None
