"""The RL prompt-selection benchmark's pieces: reasoning-gym tasks, a tiny policy, GRPO updates and the
five arms (uniform, DAPO-style filtering, GRESO-style skipping, gekodata's PromptPolicy with its
defaults and with ``recheck=0``).

The CLI is ``python -m benchmarks.rl`` (its docstring has the protocol and the commands)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from gekodata import BucketPolicy, PromptPolicy, SelectionPolicy, WeightedBucketSampler
from gekodata.prompts import report_groups

from .greso import GresoSkip

CHARS = " 0123456789+-=*/()."
PAD, EOS = 0, 1
TASKS: dict[str, dict[str, Any]] = {
    # "23 - 60 =": every question of one kind; the warm-started model gets most of them right
    "chain_sum": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
    # "6 + 10 * 0 =": 2 or 3 one-digit terms (0-10), +, - and * with precedence
    "basic_arithmetic": {
        "min_terms": 2,
        "max_terms": 3,
        "min_digits": 1,
        "max_digits": 1,
        "operators": ("+", "-", "*"),
        "allow_parentheses": False,
        "allow_negation": False,
    },
}
"""reasoning-gym tasks the benchmark runs (both put the question in ``metadata["expression"]``,
written with :data:`CHARS`), with their dataset settings."""
TASK_CONFIG = TASKS["chain_sum"]


class Task:
    """reasoning-gym entries as fixed-width token tensors.

    ``prompts`` int64 [n, Lp]: the expression and " =", left-filled with spaces to width ``Lp``;
    ``answers`` int64 [n, La]: the answer's characters then EOS, right-padded with PAD."""

    def __init__(
        self, rg_dataset, entries: list[dict[str, Any]], prompt_width: int, answer_width: int
    ) -> None:
        self.rg, self.entries = rg_dataset, entries
        self.texts = [f"{e['metadata']['expression']} =" for e in entries]
        self.prompts = torch.tensor(
            [encode(t.rjust(prompt_width)) for t in self.texts], dtype=torch.long
        )
        answers = [[*encode(str(e["answer"])), EOS] for e in entries]
        self.answers = torch.full((len(entries), answer_width), PAD, dtype=torch.long)
        for i, a in enumerate(answers):
            self.answers[i, : len(a)] = torch.tensor(a)

    def __len__(self) -> int:
        return len(self.entries)

    def score(self, idx: Sequence[int] | np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``score_answer`` of each text for entry ``idx[k]`` (reasoning-gym's verifier)."""
        return np.array(
            [self.rg.score_answer(t, self.entries[i]) for i, t in zip(idx, texts)], dtype=np.float32
        )


def encode(text: str) -> list[int]:
    return [2 + CHARS.index(c) for c in text]


def decode(row: Sequence[int]) -> str:
    out = []
    for t in row:
        if t in (EOS, PAD):
            break
        out.append(CHARS[t - 2])
    return "".join(out).strip()


def build_tasks(sizes: dict[str, int], data_seed: int, task: str = "chain_sum"):
    """One Task per split of reasoning-gym ``task`` (a key of :data:`TASKS`), with disjoint
    expressions; entry i of each split is a function of (task, data_seed, split, i) only."""
    import reasoning_gym as rg

    splits, seen = {}, set()
    for k, (name, n) in enumerate(sizes.items()):
        # reasoning-gym draws entry i from Random(seed + i): splits need seeds further apart than their sizes
        ds = rg.create_dataset(
            task, size=4 * n + 64, seed=data_seed * 7919 + k * 10**6, **TASKS[task]
        )
        kept = []
        for i in range(len(ds)):
            e = ds[i]
            key = e["metadata"]["expression"]
            if key not in seen:
                seen.add(key)
                kept.append(e)
            if len(kept) == n:
                break
        if len(kept) < n:
            raise SystemExit(f"only {len(kept)} distinct {name} expressions; lower the sizes")
        splits[name] = (ds, kept)
    width = max(len(f"{e['metadata']['expression']} =") for _, es in splits.values() for e in es)
    answer = max(len(str(e["answer"])) for _, es in splits.values() for e in es) + 1
    return {name: Task(ds, es, width, answer) for name, (ds, es) in splits.items()}


def tiny_policy(seed: int, max_positions: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)  # the model's init (a benchmark script: the library never seeds)
    config = LlamaConfig(
        vocab_size=2 + len(CHARS),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=PAD,
        bos_token_id=EOS,
        eos_token_id=EOS,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).float()


def completion_mask(tokens: torch.Tensor) -> torch.Tensor:
    """float [B, La]: 1 up to and including the first EOS (all positions if none)."""
    eos = (tokens == EOS).int()
    before = torch.cumsum(eos, dim=1) - eos  # EOS seen strictly before this position
    return (before == 0).float()


def token_logp(model, prompts: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
    """log p of every completion token under ``model``, [B, La]."""
    seq = torch.cat([prompts, completions], dim=1)
    logits = model(input_ids=seq).logits[:, prompts.shape[1] - 1 : -1].float()
    return torch.log_softmax(logits, -1).gather(-1, completions[..., None]).squeeze(-1)


def supervised_warmup(
    model,
    task: Task,
    steps: int,
    batch: int,
    lr: float,
    gen: torch.Generator,
    dev: Task | None = None,
    target: float = 1.0,
    check_every: int = 100,
) -> int:
    """Teacher-forced cross-entropy on the answers (the warm start every arm shares), for at most
    ``steps`` steps, stopping once greedy exact match on ``dev`` reaches ``target`` (checked every
    ``check_every`` steps): every seed then starts RL from a comparable policy (this tiny model's
    accuracy jumps within a few hundred steps, at a step count that varies with the seed).
    Returns the steps taken."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        if (
            dev is not None
            and step
            and step % check_every == 0
            and exact_match(model, dev) >= target
        ):
            return step
        idx = torch.randint(0, len(task), (batch,), generator=gen)
        answers = task.answers[idx]
        logp = token_logp(model, task.prompts[idx], answers)
        mask = (answers != PAD).float()
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps


@torch.no_grad()
def sample(
    model,
    prompts: torch.Tensor,
    group: int,
    length: int,
    gen: torch.Generator | None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Completions [B * group, length]: ``group`` per prompt, consecutive; greedy when ``gen`` is
    None. KV cache; every row has the same width, so no attention mask is needed."""
    was_training = model.training
    model.eval()
    ids = prompts.repeat_interleave(group, dim=0)
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.cache, out.logits[:, -1].float()
    tokens = []
    for _ in range(length):
        if gen is None:
            tok = logits.argmax(-1)
        else:
            tok = torch.multinomial(
                torch.softmax(logits / temperature, -1), 1, generator=gen
            ).squeeze(-1)
        tokens.append(tok)
        out = model(input_ids=tok[:, None], cache=past, use_cache=True)
        past, logits = out.cache, out.logits[:, -1].float()
    model.train(was_training)
    return torch.stack(tokens, dim=1)


def exact_match(model, task: Task, batch: int = 512) -> float:
    """Held-out accuracy: the share of greedy answers that ``score_answer`` scores 1.0 (it gives
    partial credit, e.g. 0.75 for a wrong extra digit; the rewards keep it, this metric does not)."""
    scores = []
    for start in range(0, len(task), batch):
        idx = list(range(start, min(start + batch, len(task))))
        comp = sample(model, task.prompts[idx], 1, task.answers.shape[1], None)
        scores.append(task.score(idx, [decode(r) for r in comp.tolist()]))
    return float((np.concatenate(scores) >= 1.0).mean())


def grpo_update(
    model,
    opt,
    prompts: torch.Tensor,
    completions: torch.Tensor,
    advantages: torch.Tensor,
    clip: float,
) -> None:
    """One on-policy policy-gradient step: token-mean of ``-A * log p`` over completion tokens."""
    mask = completion_mask(completions)
    logp = token_logp(model, prompts, completions)
    loss = -(advantages[:, None] * logp * mask).sum() / mask.sum().clamp(min=1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()


def _plan_batches(sampler, epoch: int, batch: int) -> Iterator[np.ndarray]:
    """The sampler's plan for ``epoch`` in rollout batches (uniform, DAPO and gekodata arms)."""
    sampler.set_epoch(epoch)
    plan = np.array(sampler.global_plan, dtype=np.int64)
    for s in range(0, len(plan), batch):
        yield plan[s : s + batch]


def _greso_batches(skip: GresoSkip, batch: int) -> Iterator[np.ndarray]:
    """GRESO's epoch: the shuffled prompts filtered by the skip draw, each rollout batch filled
    with ``batch`` kept prompts (more candidates drawn as needed, as GRESO keeps its batch size);
    the last batch of the epoch may be short. Lazy: the caller's ``observe`` after each batch
    adapts the rates before the next batch's draws."""
    order, pos, kept = skip.order(), 0, np.zeros(0, dtype=np.int64)
    while pos < len(order):
        need = batch - len(kept)
        kept = np.concatenate([kept, skip.keep(order[pos : pos + need])])
        pos += need
        if len(kept) == batch:
            yield kept
            kept = np.zeros(0, dtype=np.int64)
    if len(kept):
        yield kept


def _selection(arm: str, n: int, cfg: argparse.Namespace, seed: int):
    """The arm's selector: a ``WeightedBucketSampler`` (uniform, DAPO, gekodata) or ``GresoSkip``."""
    if arm == "greso":
        return GresoSkip(n, seed)
    gekodata = arm.startswith("gekodata")
    if arm == "gekodata_recheck0":  # the defaults without re-checks of out-of-reach prompts
        policy: SelectionPolicy = PromptPolicy(group_size=cfg.group, recheck=0.0)
    elif gekodata:
        policy = PromptPolicy(group_size=cfg.group)
    else:
        policy = BucketPolicy.uniform()
    return WeightedBucketSampler(
        range(n),
        policy,
        num_epochs=cfg.epochs,
        seed=seed,
        audit_fraction=cfg.audit_fraction if gekodata else 0.0,
    )


def run_arm(
    arm: str,
    warm: dict[str, torch.Tensor],
    tasks: dict[str, Task],
    cfg: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    """One arm from the warm-started weights; per-epoch records. ``selection_s`` is the time spent
    choosing prompts and reporting their groups (planning, skip draws, ``report_groups``), part of
    ``wall_clock_s``."""
    train, held_out = tasks["train"], tasks["eval"]
    group, epochs, batch = cfg.group, cfg.epochs, cfg.rollout_batch
    model = tiny_policy(seed, train.prompts.shape[1] + train.answers.shape[1] + 1)
    model.load_state_dict(warm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(
        seed * 1000 + 1
    )  # rollouts: the same stream start for every arm
    selector = _selection(arm, len(train), cfg, seed)
    records, rollouts, steps, clock, selecting = [], 0, 0, 0.0, 0.0
    start_em = exact_match(model, held_out)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        batches = (
            _greso_batches(selector, batch)
            if isinstance(selector, GresoSkip)
            else _plan_batches(selector, epoch, batch)
        )
        zero = groups = kept = right = wrong = 0
        pending: list[tuple] = []  # dapo: informative groups waiting for a full update batch
        while True:
            t_sel = time.perf_counter()
            idx = next(batches, None)
            selecting += time.perf_counter() - t_sel
            if idx is None:
                break
            prompts = train.prompts[idx]
            comp = sample(model, prompts, group, train.answers.shape[1], gen, cfg.temperature)
            rewards = train.score(
                np.repeat(idx, group), [decode(r) for r in comp.tolist()]
            ).reshape(-1, group)
            r = torch.from_numpy(rewards)
            std = r.std(dim=1, keepdim=True)
            informative = (std.squeeze(1) > 0).numpy()
            all_right = ~informative & (rewards[:, 0] >= 0.5)
            t_sel = time.perf_counter()
            if isinstance(selector, GresoSkip):
                selector.observe(idx, all_right, ~informative & ~all_right)
            else:
                report_groups(selector, idx, rewards)
            selecting += time.perf_counter() - t_sel
            rollouts += comp.shape[0]
            adv = ((r - r.mean(dim=1, keepdim=True)) / (std + 1e-4)).reshape(-1)
            groups += len(idx)
            zero += int((~informative).sum())
            right += int(all_right.sum())
            wrong += int((~informative & ~all_right).sum())
            if arm == "dapo":
                rows = np.repeat(informative, group)
                if rows.any():
                    pending.append(
                        (prompts.repeat_interleave(group, 0)[rows], comp[rows], adv[rows])
                    )
                while sum(len(p[0]) for p in pending) >= batch * group:
                    steps += _update_from(model, opt, pending, batch * group, cfg.clip)
                    kept += batch
            else:
                grpo_update(model, opt, prompts.repeat_interleave(group, 0), comp, adv, cfg.clip)
                steps += 1
                kept += len(idx)
        if arm == "dapo" and pending:  # the epoch's last informative groups
            n = sum(len(p[0]) for p in pending)
            steps += _update_from(model, opt, pending, n, cfg.clip)
            kept += n // group
        clock += time.perf_counter() - t0
        record: dict[str, Any] = {
            "epoch": epoch,
            "prompts_rolled_out": groups,
            "groups": groups,
            "zero_advantage_groups": zero,
            "zero_advantage_fraction": zero / groups if groups else 0.0,
            "all_right_groups": right,
            "all_wrong_groups": wrong,
            "groups_trained": kept,
            "rollouts": rollouts,
            "optimizer_steps": steps,
            "wall_clock_s": clock,
            "selection_s": selecting,
            "held_out_exact_match": exact_match(model, held_out),
        }
        if isinstance(selector, GresoSkip):
            record["keep_rates"] = list(selector.keep_rates)
        elif arm.startswith("gekodata"):
            record["keep_rates"] = list(selector.policy.keep_rates)
            record["thaw_rate"] = selector.policy.thaw_rate
        records.append(record)
    out = {
        "arm": arm,
        "seed": seed,
        "held_out_before": start_em,
        "epochs": records,
        "final_exact_match": records[-1]["held_out_exact_match"],
        "rollouts": rollouts,
        "wall_clock_s": clock,
        "selection_s": selecting,
    }
    if not isinstance(selector, GresoSkip):
        out["efficiency_report"] = selector.efficiency_report().to_dict()
    return out


def _update_from(model, opt, pending: list[tuple], rows: int, clip: float) -> int:
    """Pop ``rows`` completions from the DAPO buffer and take one update on them."""
    prompts, comps, advs = (torch.cat([p[k] for p in pending]) for k in range(3))
    grpo_update(model, opt, prompts[:rows], comps[:rows], advs[:rows], clip)
    pending.clear()
    if len(prompts) > rows:
        pending.append((prompts[rows:], comps[rows:], advs[rows:]))
    return 1


def rollouts_to_reach(run: dict[str, Any], level: float) -> int | None:
    """Rollouts generated by the first epoch end whose held-out exact match is at least ``level``
    (0 when the warm start already is; None when no epoch reaches it)."""
    if run["held_out_before"] >= level - 1e-12:
        return 0
    for e in run["epochs"]:
        if e["held_out_exact_match"] >= level - 1e-12:
            return int(e["rollouts"])
    return None


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    return (float(np.mean(values)), float(np.std(values))) if len(values) else (None, None)


def summarise(runs: list[dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """Per arm, over seeds: final held-out exact match and its difference to uniform's (paired by
    seed), rollouts and their ratio to uniform's, rollouts to reach uniform's final exact match of
    the same seed (time to accuracy) and their ratio to uniform's own, zero-advantage groups and
    their ratio to DAPO's, wall-clock and its selection part."""
    by = {a: sorted((r for r in runs if r["arm"] == a), key=lambda r: r["seed"]) for a in arms}
    base = {r["seed"]: r for r in by.get("uniform", [])}
    dapo = {r["seed"]: r for r in by.get("dapo", [])}

    def zero_total(run: dict[str, Any]) -> int:
        return sum(e["zero_advantage_groups"] for e in run["epochs"])

    out = {}
    for arm, rs in by.items():
        final = np.array([r["final_exact_match"] for r in rs])
        rollouts = np.array([r["rollouts"] for r in rs], dtype=float)
        zero = np.array([np.mean([e["zero_advantage_fraction"] for e in r["epochs"]]) for r in rs])
        paired = [r for r in rs if r["seed"] in base]
        delta = [r["final_exact_match"] - base[r["seed"]]["final_exact_match"] for r in paired]
        ratio = [r["rollouts"] / base[r["seed"]]["rollouts"] for r in paired]
        reach, reach_ratio = [], []
        for r in paired:
            level = base[r["seed"]]["final_exact_match"]
            mine, theirs = rollouts_to_reach(r, level), rollouts_to_reach(base[r["seed"]], level)
            reach.append(mine)
            if mine is not None and theirs:  # uniform's 0: its start was already there
                reach_ratio.append(mine / theirs)
        vs_dapo = [
            zero_total(r) / zero_total(dapo[r["seed"]])
            for r in rs
            if r["seed"] in dapo and zero_total(dapo[r["seed"]])
        ]
        reached = [x for x in reach if x is not None]
        out[arm] = {
            "final_exact_match_mean": float(final.mean()),
            "final_exact_match_std": float(final.std()),
            "delta_vs_uniform_mean": _mean_std(delta)[0],
            "delta_vs_uniform_std": _mean_std(delta)[1],
            "rollouts_mean": float(rollouts.mean()),
            "rollouts_saved_vs_uniform": float(1 - np.mean(ratio)) if ratio else None,
            "rollouts_vs_uniform_mean": _mean_std(ratio)[0],
            "rollouts_vs_uniform_std": _mean_std(ratio)[1],
            "rollouts_to_uniform_final": reach,
            "rollouts_to_uniform_final_mean": float(np.mean(reached)) if reached else None,
            "reach_vs_uniform_mean": _mean_std(reach_ratio)[0],
            "reach_vs_uniform_std": _mean_std(reach_ratio)[1],
            "reach_vs_uniform_seeds": len(reach_ratio),
            "zero_advantage_fraction_mean": float(zero.mean()),
            "zero_advantage_groups_total_mean": float(np.mean([zero_total(r) for r in rs])),
            "zero_advantage_vs_dapo_mean": _mean_std(vs_dapo)[0],
            "zero_advantage_vs_dapo_std": _mean_std(vs_dapo)[1],
            "wall_clock_s_mean": float(np.mean([r["wall_clock_s"] for r in rs])),
            "selection_s_mean": float(np.mean([r["selection_s"] for r in rs])),
            "held_out_before_mean": float(np.mean([r["held_out_before"] for r in rs])),
            "seeds": [r["seed"] for r in rs],
        }
    return out


_TASK_CACHE: dict[tuple, dict[str, Task]] = {}


def _tasks_for(task: str, args: argparse.Namespace) -> dict[str, Task]:
    """The splits of ``task`` at the run's sizes (built once per process)."""
    sizes = {
        "sft": args.sft_size,
        "dev": args.dev_size,
        "train": args.train_size,
        "eval": args.eval_size,
    }
    key = (task, args.data_seed, *sizes.values())
    if key not in _TASK_CACHE:
        _TASK_CACHE[key] = build_tasks(sizes, args.data_seed, task)
    return _TASK_CACHE[key]


def run_seed(
    task: str, target: float, seed: int, args: argparse.Namespace
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One seed of one regime: the warm start to ``target`` dev exact match, then every arm from
    it. Returns (warm-start record, runs); one unit of ``--jobs`` (one torch thread each)."""
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    tasks = _tasks_for(task, args)
    t = time.perf_counter()
    model = tiny_policy(seed, tasks["train"].prompts.shape[1] + tasks["train"].answers.shape[1] + 1)
    steps = supervised_warmup(
        model,
        tasks["sft"],
        args.sft_steps,
        64,
        args.sft_lr,
        torch.Generator().manual_seed(seed),
        tasks["dev"],
        target,
    )
    warm = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start = {
        "steps": steps,
        "dev_exact_match": exact_match(model, tasks["dev"]),
        "seconds": time.perf_counter() - t,
    }
    print(
        f"{task} target {target}, seed {seed}: warm start {steps} steps {start['seconds']:.0f}s, dev "
        f"exact match {start['dev_exact_match']:.3f}",
        flush=True,
    )
    runs = []
    for arm in args.arms:
        run = run_arm(arm, warm, tasks, args, seed)
        runs.append(run)
        curve = " ".join(f"{e['held_out_exact_match']:.3f}" for e in run["epochs"])
        zero = " ".join(f"{e['zero_advantage_fraction']:.2f}" for e in run["epochs"])
        print(
            f"  {task} {target} seed {seed} {arm:<9} rollouts {run['rollouts']:>6}  held-out "
            f"{run['held_out_before']:.3f} -> {run['final_exact_match']:.3f}  "
            f"{run['wall_clock_s']:.0f}s | {curve} | zero-adv {zero}",
            flush=True,
        )
    return start, runs


def regime(
    task: str, target: float, units: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]], arms
) -> dict[str, Any]:
    """One (task, warm target) regime's record from its seeds' :func:`run_seed` results."""
    runs = [r for seed in sorted(units) for r in units[seed][1]]
    return {
        "task": task,
        "warm_target": target,
        "warm_starts": {seed: units[seed][0] for seed in sorted(units)},
        "held_out_before": float(np.mean([r["held_out_before"] for r in runs])),
        "summary": summarise(runs, arms),
        "runs": runs,
    }
