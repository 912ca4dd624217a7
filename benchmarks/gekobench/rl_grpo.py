"""The RL prompt-selection benchmark's pieces: the chain_sum task, a tiny policy, GRPO updates and the
three arms (uniform, DAPO-style filtering, gekodata's PromptPolicy).

The CLI is ``python -m benchmarks.rl`` (its docstring has the protocol and the commands)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from gekodata import BucketPolicy, PromptPolicy, WeightedBucketSampler
from gekodata.prompts import report_groups

CHARS = " 0123456789+-=*/()."
PAD, EOS = 0, 1
TASK_CONFIG = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}


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

    def score(self, idx: Sequence[int], texts: Sequence[str]) -> np.ndarray:
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


def build_tasks(sizes: dict[str, int], data_seed: int):
    """(sft, train, eval) Tasks with disjoint expressions; entry i of each split is a function of
    (data_seed, split, i) only."""
    import reasoning_gym as rg

    splits, seen = {}, set()
    for k, (name, n) in enumerate(sizes.items()):
        # reasoning-gym draws entry i from Random(seed + i): splits need seeds further apart than their sizes
        ds = rg.create_dataset(
            "chain_sum", size=4 * n + 64, seed=data_seed * 7919 + k * 10**6, **TASK_CONFIG
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


def run_arm(
    arm: str,
    warm: dict[str, torch.Tensor],
    tasks: dict[str, Task],
    cfg: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    """One arm from the warm-started weights; per-epoch records."""
    train, held_out = tasks["train"], tasks["eval"]
    group, epochs, batch = cfg.group, cfg.epochs, cfg.rollout_batch
    model = tiny_policy(seed, train.prompts.shape[1] + train.answers.shape[1] + 1)
    model.load_state_dict(warm)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(
        seed * 1000 + 1
    )  # rollouts: the same stream start for every arm
    if arm == "gekodata":
        sampler = WeightedBucketSampler(
            range(len(train)),
            PromptPolicy(group_size=group),
            num_epochs=epochs,
            seed=seed,
            audit_fraction=cfg.audit_fraction,
        )
    else:
        sampler = WeightedBucketSampler(
            range(len(train)), BucketPolicy.uniform(), num_epochs=epochs, seed=seed
        )
    records, rollouts, steps, clock = [], 0, 0, 0.0
    start_em = exact_match(model, held_out)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        plan = np.array(sampler.global_plan, dtype=np.int64)
        zero = groups = kept = 0
        pending: list[tuple] = []  # dapo: informative groups waiting for a full update batch
        for s in range(0, len(plan), batch):
            idx = plan[s : s + batch]
            prompts = train.prompts[idx]
            comp = sample(model, prompts, group, train.answers.shape[1], gen, cfg.temperature)
            rewards = train.score(
                np.repeat(idx, group), [decode(r) for r in comp.tolist()]
            ).reshape(-1, group)
            report_groups(sampler, idx, rewards)
            rollouts += comp.shape[0]
            r = torch.from_numpy(rewards)
            std = r.std(dim=1, keepdim=True)
            adv = ((r - r.mean(dim=1, keepdim=True)) / (std + 1e-4)).reshape(-1)
            informative = (std.squeeze(1) > 0).numpy()
            groups += len(idx)
            zero += int((~informative).sum())
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
        records.append(
            {
                "epoch": epoch,
                "prompts_rolled_out": len(plan),
                "groups": groups,
                "zero_advantage_groups": zero,
                "zero_advantage_fraction": zero / groups if groups else 0.0,
                "groups_trained": kept,
                "rollouts": rollouts,
                "optimizer_steps": steps,
                "wall_clock_s": clock,
                "held_out_exact_match": exact_match(model, held_out),
            }
        )
    return {
        "arm": arm,
        "seed": seed,
        "held_out_before": start_em,
        "epochs": records,
        "final_exact_match": records[-1]["held_out_exact_match"],
        "rollouts": rollouts,
        "wall_clock_s": clock,
        "efficiency_report": sampler.efficiency_report().to_dict(),
    }


def _update_from(model, opt, pending: list[tuple], rows: int, clip: float) -> int:
    """Pop ``rows`` completions from the DAPO buffer and take one update on them."""
    prompts, comps, advs = (torch.cat([p[k] for p in pending]) for k in range(3))
    grpo_update(model, opt, prompts[:rows], comps[:rows], advs[:rows], clip)
    pending.clear()
    if len(prompts) > rows:
        pending.append((prompts[rows:], comps[rows:], advs[rows:]))
    return 1


def summarise(runs: list[dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    by = {a: sorted((r for r in runs if r["arm"] == a), key=lambda r: r["seed"]) for a in arms}
    base = {r["seed"]: r for r in by.get("uniform", [])}
    out = {}
    for arm, rs in by.items():
        final = np.array([r["final_exact_match"] for r in rs])
        rollouts = np.array([r["rollouts"] for r in rs], dtype=float)
        zero = np.array([np.mean([e["zero_advantage_fraction"] for e in r["epochs"]]) for r in rs])
        paired = [
            r["final_exact_match"] - base[r["seed"]]["final_exact_match"]
            for r in rs
            if r["seed"] in base
        ]
        saved = [1 - r["rollouts"] / base[r["seed"]]["rollouts"] for r in rs if r["seed"] in base]
        out[arm] = {
            "final_exact_match_mean": float(final.mean()),
            "final_exact_match_std": float(final.std()),
            "delta_vs_uniform_mean": float(np.mean(paired)) if paired else None,
            "delta_vs_uniform_std": float(np.std(paired)) if paired else None,
            "rollouts_mean": float(rollouts.mean()),
            "rollouts_saved_vs_uniform": float(np.mean(saved)) if saved else None,
            "zero_advantage_fraction_mean": float(zero.mean()),
            "zero_advantage_groups_total_mean": float(
                np.mean([sum(e["zero_advantage_groups"] for e in r["epochs"]) for r in rs])
            ),
            "wall_clock_s_mean": float(np.mean([r["wall_clock_s"] for r in rs])),
            "held_out_before_mean": float(np.mean([r["held_out_before"] for r in rs])),
            "seeds": [r["seed"] for r in rs],
        }
    return out


def run_regime(target: float, tasks: dict[str, Task], args: argparse.Namespace) -> dict[str, Any]:
    """Every seed's warm start to ``target`` dev exact match, then every arm from it."""
    runs, warm_starts = [], {}
    for seed in args.seeds:
        t = time.perf_counter()
        model = tiny_policy(
            seed, tasks["train"].prompts.shape[1] + tasks["train"].answers.shape[1] + 1
        )
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
        warm_starts[seed] = {
            "steps": steps,
            "dev_exact_match": exact_match(model, tasks["dev"]),
            "seconds": time.perf_counter() - t,
        }
        print(
            f"target {target}, seed {seed}: warm start {steps} steps {time.perf_counter() - t:.0f}s, dev exact "
            f"match {warm_starts[seed]['dev_exact_match']:.3f}",
            flush=True,
        )
        for arm in args.arms:
            run = run_arm(arm, warm, tasks, args, seed)
            runs.append(run)
            curve = " ".join(f"{e['held_out_exact_match']:.3f}" for e in run["epochs"])
            zero = " ".join(f"{e['zero_advantage_fraction']:.2f}" for e in run["epochs"])
            print(
                f"  {arm:<9} rollouts {run['rollouts']:>6}  held-out {run['held_out_before']:.3f} -> "
                f"{run['final_exact_match']:.3f}  {run['wall_clock_s']:.0f}s | {curve} | zero-adv {zero}",
                flush=True,
            )
    return {
        "warm_target": target,
        "warm_starts": warm_starts,
        "held_out_before": float(np.mean([r["held_out_before"] for r in runs])),
        "summary": summarise(runs, args.arms),
        "runs": runs,
    }
