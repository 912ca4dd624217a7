"""The token-gating and selective-backward benchmark's pieces: the LoRA model context, the arms of both
parts and the run that saves their JSON.

The CLI is ``python -m benchmarks.tokens`` (its docstring has the protocol and the commands)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch

from gekodata import GEKOStateStore
from gekodata.selective import SelectiveBackprop, subset_batch
from gekodata.signals import causal_lm_signals
from gekodata.tokens import (
    TokenRatioSchedule,
    masked_token_loss,
    select_tokens,
    token_difficulty,
)

from .examples import load_example
from .machine import machine_info
from .report_tokens import METRICS, equal_time, plot, table
from .results import write_results

PARTS = {
    "token_gating": ("full", "gekodata_topk", "random_tokens", "cggr_loss"),
    "selective_backward": ("full", "sb_topk", "sb_random", "sb_store", "cggr_model"),
}
RUN_KEYS = (
    "status",
    "steps",
    "target_tokens_seen",
    "tokens_backpropagated",
    "samples_seen",
    "samples_scored",
    "samples_backpropagated",
    "wall_clock_s",
    "process_time_s",
    "scoring_s",
    "forward_s",
    "backward_s",
    "optimizer_s",
    "final",
    "at_equal_time",
    "curve",
)
CONFIGS = {
    "full": {
        "model": "smollm2",
        "seeds": [0, 1, 2],
        "train_size": 128,
        "eval_size": 48,
        "max_operand": 100,
        "lr": 1e-3,
        "lora_r": 8,
        "threads": 1,
        "steps_a": 40,
        "batch_a": 8,
        "steps_b": 30,
        "batch_b": 16,
        "eval_every": 10,
        "floor": 0.25,
        "warmup": 10,
        "keep": 0.5,
        "router_layers": 4,
    },
    "quick": {
        "model": "tiny",
        "seeds": [0],
        "train_size": 32,
        "eval_size": 16,
        "max_operand": 30,
        "lr": 1e-2,
        "lora_r": 4,
        "threads": 1,
        "steps_a": 6,
        "batch_a": 8,
        "steps_b": 6,
        "batch_b": 8,
        "eval_every": 3,
        "floor": 0.25,
        "warmup": 2,
        "keep": 0.5,
        "router_layers": 1,
    },
}


class Context:
    """The model (PEFT LoRA), data, per-seed LoRA initialisations and the evaluation."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        lora_8bit = load_example("lora_8bit")  # the example's model loading and addition data
        import transformers
        from peft import LoraConfig, get_peft_model

        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        transformers.logging.set_verbosity_error()
        self.cfg = cfg
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # GGUF de-quantisation progress bar
            base, tok = lora_8bit.load_model(cfg["model"], 0)
        self.load_s = time.perf_counter() - t0
        base.config.use_cache = False
        self.train, self.eval = lora_8bit.build_datasets(
            tok, cfg["train_size"], cfg["eval_size"], cfg["max_operand"]
        )
        self.model = get_peft_model(
            base,
            LoraConfig(
                r=cfg["lora_r"],
                lora_alpha=2 * cfg["lora_r"],
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            ),
        )
        self.model.train()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.inits: dict[int, list[torch.Tensor]] = {}
        self.eval0: dict[str, float] | None = None

    def lora_init(self, seed: int) -> list[torch.Tensor]:
        """LoRA A matrices drawn from ``seed`` (B = 0, so the initial model is the base model)."""
        if seed not in self.inits:
            from peft.tuners.lora import LoraLayer

            torch.manual_seed(seed)
            for module in self.model.modules():
                if isinstance(module, LoraLayer):
                    module.reset_lora_parameters("default", True)
            self.inits[seed] = [p.detach().clone() for p in self.trainable]
        return self.inits[seed]

    def reset(self, seed: int) -> torch.optim.Optimizer:
        with torch.no_grad():
            for p, init in zip(self.trainable, self.lora_init(seed)):
                p.copy_(init)
        return torch.optim.AdamW(self.trainable, lr=self.cfg["lr"], weight_decay=0.0)

    def batches(self, seed: int, batch_size: int, steps: int) -> list[torch.Tensor]:
        """Row indices of each step's batch: reshuffled epochs from ``seed``, the same for every arm."""
        gen = torch.Generator().manual_seed(seed)
        n = len(self.train)
        order = torch.cat(
            [torch.randperm(n, generator=gen) for _ in range(-(-steps * batch_size // n))]
        )
        return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_ids": self.train.input_ids[rows], "labels": self.train.labels[rows]}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Eval loss (mean NLL over every held-out answer token), exact match and token accuracy."""
        was_training = self.model.training
        self.model.eval()
        nll_sum, tokens, hits, token_hits = 0.0, 0, 0, 0
        for start in range(0, len(self.eval), 24):
            ids, labels = (
                self.eval.input_ids[start : start + 24],
                self.eval.labels[start : start + 24],
            )
            logits = self.model(input_ids=ids).logits
            targets = labels[:, 1:]
            valid = targets != -100
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none"
            )
            nll_sum += float(nll[valid].sum())
            tokens += int(valid.sum())
            token_hits += int(((logits[:, :-1].argmax(-1) == targets) & valid).sum())
            hits += int(causal_lm_signals(logits, labels)[2].sum())
        self.model.train(was_training)
        return {
            "eval_loss": nll_sum / max(tokens, 1),
            "exact_match": hits / max(len(self.eval), 1),
            "token_accuracy": token_hits / max(tokens, 1),
        }


class Clock:
    """Accumulates wall-clock seconds per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {
            "scoring": 0.0,
            "forward": 0.0,
            "backward": 0.0,
            "optimizer": 0.0,
        }

    @contextlib.contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t0


def gradient_counter(logits: torch.Tensor, labels: torch.Tensor, sink: list[int]) -> None:
    """Count answer tokens whose logits get a non-zero gradient (hook on the training logits)."""
    valid = labels[:, 1:] != -100

    def hook(grad: torch.Tensor) -> None:
        sink.append(int(((grad[:, :-1].abs().amax(-1) > 0) & valid).sum()))

    logits.register_hook(hook)


def import_cggr():
    """The cggr module, or raise with the reason (recorded as "did not run: ...")."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import cggr
    return cggr


def run_token_arm(ctx: Context, arm: str, seed: int) -> dict[str, Any]:
    """Part A: one arm of token gating."""
    cfg = ctx.cfg
    opt = ctx.reset(seed)
    schedule = TokenRatioSchedule(floor=cfg["floor"], warmup_steps=cfg["warmup"])
    gen = torch.Generator().manual_seed(1000 + seed)
    criterion = None
    if arm == "cggr_loss":
        cggr = import_cggr()
        criterion = cggr.CGGRLoss(
            scoring="combined",
            selection="topk",
            min_tokens_ratio=cfg["floor"],
            warmup_steps=cfg["warmup"],
            dynamic_threshold=False,
        )
    clock, grads = Clock(), []
    seen_tokens, cggr_positions = 0, 0
    curve = [{"step": 0, "train_s": 0.0, "cpu_s": 0.0, **ctx.eval0}]
    train_s, cpu_s = 0.0, 0.0
    for step, rows in enumerate(ctx.batches(seed, cfg["batch_a"], cfg["steps_a"])):
        b = ctx.batch(rows)
        w0, c0 = time.perf_counter(), time.process_time()
        with clock("forward"):
            logits = ctx.model(input_ids=b["input_ids"]).logits
            valid = b["labels"][:, 1:] != -100
            gradient_counter(logits, b["labels"], grads)
            if arm == "full":
                loss = masked_token_loss(logits, b["labels"], valid)
            elif arm == "gekodata_topk":
                diff = token_difficulty(logits, b["labels"], "combined")
                mask = select_tokens(diff, schedule.ratio(step), "topk")
                loss = masked_token_loss(logits, b["labels"], mask)
            elif arm == "random_tokens":
                diff = torch.zeros(valid.shape).masked_fill_(~valid, float("nan"))
                mask = select_tokens(diff, schedule.ratio(step), "random", generator=gen)
                loss = masked_token_loss(logits, b["labels"], mask)
            else:
                loss = criterion(logits[:, :-1].contiguous(), b["labels"][:, 1:].contiguous())
                cggr_positions += int(criterion.get_metrics()["tokens_selected"])
        with clock("backward"):
            loss.backward()
        with clock("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)
            if criterion is not None:
                criterion.step()
        train_s += time.perf_counter() - w0
        cpu_s += time.process_time() - c0
        seen_tokens += int(valid.sum())
        if (step + 1) % cfg["eval_every"] == 0 or step + 1 == cfg["steps_a"]:
            curve.append({"step": step + 1, "train_s": train_s, "cpu_s": cpu_s, **ctx.evaluate()})
    steps = cfg["steps_a"]
    run = {
        "status": "ok",
        "steps": steps,
        "target_tokens_seen": seen_tokens,
        "tokens_backpropagated": sum(grads),
        "samples_seen": steps * cfg["batch_a"],
        "samples_scored": 0,
        "samples_backpropagated": steps * cfg["batch_a"],
        "wall_clock_s": train_s,
        "process_time_s": cpu_s,
        "scoring_s": clock.seconds["scoring"],
        "forward_s": clock.seconds["forward"],
        "backward_s": clock.seconds["backward"],
        "optimizer_s": clock.seconds["optimizer"],
        "final": {k: curve[-1][k] for k in METRICS},
        "curve": curve,
    }
    if criterion is not None:
        run["cggr_positions_selected"] = cggr_positions  # prompt and padding positions included
    return run


def run_selective_arm(ctx: Context, arm: str, seed: int) -> dict[str, Any]:
    """Part B: one arm of selective backward."""
    cfg = ctx.cfg
    opt = ctx.reset(seed)
    clock, grads = Clock(), []
    sb = None
    if arm == "sb_topk":
        sb = SelectiveBackprop(cfg["keep"], "topk")
    elif arm == "sb_store":
        sb, store = SelectiveBackprop(cfg["keep"], "topk"), GEKOStateStore(len(ctx.train))
    elif arm == "sb_random":
        sb = SelectiveBackprop(
            cfg["keep"], "random", generator=torch.Generator().manual_seed(2000 + seed)
        )
    cggr_model, router_calls = None, []
    if arm == "cggr_model":
        cggr = import_cggr()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            router = cggr.create_truncated_router(
                ctx.model.base_model.model, num_layers=cfg["router_layers"]
            )
        router.register_forward_pre_hook(lambda *_: router_calls.append(time.perf_counter()))
        router.register_forward_hook(
            lambda *_: clock.seconds.__setitem__(
                "scoring", clock.seconds["scoring"] + time.perf_counter() - router_calls[-1]
            )
        )
        cggr_model = cggr.CGGRModel(
            ctx.model,
            router=router,
            min_tokens_ratio=cfg["keep"],
            warmup_steps=0,
            dynamic_threshold=False,
            selection="topk",
        )
    seen = scored = kept = 0
    curve = [{"step": 0, "train_s": 0.0, "cpu_s": 0.0, **ctx.eval0}]
    train_s, cpu_s = 0.0, 0.0
    for step, rows in enumerate(ctx.batches(seed, cfg["batch_b"], cfg["steps_b"])):
        b = ctx.batch(rows)
        n = len(rows)
        w0, c0 = time.perf_counter(), time.process_time()
        if arm == "cggr_model":
            with clock(
                "forward"
            ):  # includes the router pass, which the hooks also add to "scoring"
                loss = cggr_model(b["input_ids"], labels=b["labels"])
            k = int(cggr_model.get_metrics()["tokens_selected"]) // (b["input_ids"].shape[1] - 1)
            scored += n
        else:
            if arm == "sb_topk":
                with clock("scoring"), torch.no_grad():
                    scores = causal_lm_signals(
                        ctx.model(input_ids=b["input_ids"]).logits, b["labels"]
                    )[0]
                b = subset_batch(b, sb.select(scores))
            elif arm == "sb_random":
                b = subset_batch(b, sb.select(torch.zeros(n), scoring_pass=False))
            elif arm == "sb_store":
                with clock("scoring"):  # ranking from the store: no forward
                    b = subset_batch({**b, "idx": rows}, sb.select_from_store(store, rows))
            with clock("forward"):
                logits = ctx.model(input_ids=b["input_ids"]).logits
                gradient_counter(logits, b["labels"], grads)
                per_sample, conf, correct = causal_lm_signals(logits, b["labels"])
                loss = per_sample.mean()
            k = len(b["input_ids"])
            scored += n if arm == "sb_topk" else 0
        with clock("backward"):
            loss.backward()
        with clock("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)
            if cggr_model is not None:
                cggr_model.step()
            if arm == "sb_store":  # what gekodata's sampler.report does, on the kept rows only
                store.update(
                    b["idx"].numpy(),
                    per_sample.detach().numpy(),
                    conf.numpy(),
                    correct.float().numpy(),
                )
        train_s += time.perf_counter() - w0
        cpu_s += time.process_time() - c0
        seen += n
        kept += k
        if (step + 1) % cfg["eval_every"] == 0 or step + 1 == cfg["steps_b"]:
            curve.append({"step": step + 1, "train_s": train_s, "cpu_s": cpu_s, **ctx.evaluate()})
    if arm == "cggr_model":
        clock.seconds["forward"] -= clock.seconds[
            "scoring"
        ]  # report the router pass as scoring only
    run = {
        "status": "ok",
        "steps": cfg["steps_b"],
        "target_tokens_seen": None,
        "tokens_backpropagated": sum(grads) if grads else None,
        "samples_seen": seen,
        "samples_scored": scored,
        "samples_backpropagated": kept,
        "wall_clock_s": train_s,
        "process_time_s": cpu_s,
        "scoring_s": clock.seconds["scoring"],
        "forward_s": clock.seconds["forward"],
        "backward_s": clock.seconds["backward"],
        "optimizer_s": clock.seconds["optimizer"],
        "final": {k: curve[-1][k] for k in METRICS},
        "curve": curve,
    }
    if sb is not None:
        run["cost_summary"] = sb.cost_summary()
    return run


RUNNERS: dict[str, Callable[[Context, str, int], dict[str, Any]]] = {
    "token_gating": run_token_arm,
    "selective_backward": run_selective_arm,
}


def run(
    mode: str,
    out: Path,
    seeds: list[int] | None = None,
    parts: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cfg = dict(CONFIGS[mode], **(overrides or {}))
    if seeds:
        cfg["seeds"] = list(seeds)
    parts = parts or list(PARTS)
    torch.set_num_threads(cfg["threads"])
    info = machine_info()
    ctx = Context(cfg)
    ctx.eval0 = ctx.evaluate()  # LoRA B starts at zero: the same base model for every seed and arm
    name = "tokens" + ("_quick" if mode == "quick" else "")
    result: dict[str, Any] = {
        "benchmark": "tokens",
        "mode": mode,
        "date": dt.date.today().isoformat(),
        "machine": info,
        "machine_line": f"{info['cpu_count']} CPU cores, torch {info['torch']}, {cfg['threads']} thread(s)",
        "config": {
            **cfg,
            "answer_tokens_per_sample": float(
                (ctx.train.labels[:, 1:] != -100).sum(1).float().mean()
            ),
            "seq_len": int(ctx.train.input_ids.shape[1]),
            "load_s": ctx.load_s,
            "optimizer": "AdamW (constant lr, no weight decay)",
        },
        "eval_before": ctx.eval0,
        "notes": [
            "Wall-clock is noisy: 2 CPU cores shared with other jobs; arms interleaved, order rotated per seed.",
            "Token gating (part A) changes which tokens carry the loss; it saves no forward or backward FLOPs.",
            "cggr_loss: CGGRLoss on shifted logits/labels; it selects over all positions (labels unused).",
            "cggr_model: CGGRModel with a 4-layer truncated router (shared weights), no attention mask.",
        ],
        "parts": {p: {"arms": {a: {"seeds": [], "runs": []} for a in PARTS[p]}} for p in parts},
    }
    print(
        f"tokens benchmark ({mode}): {cfg['model']}, {len(ctx.train)} train / {len(ctx.eval)} eval additions, "
        f"{result['config']['seq_len']} tokens, {result['config']['answer_tokens_per_sample']:.2f} answer tokens each; "
        f"seeds {cfg['seeds']}; eval before: {ctx.eval0}",
        flush=True,
    )
    for seed in cfg["seeds"]:
        for p in parts:
            arms = list(PARTS[p])
            shift = seed % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                try:
                    r = RUNNERS[p](ctx, arm, seed)
                except Exception as exc:
                    last = traceback.extract_tb(exc.__traceback__)[-1]
                    r = {
                        "status": f"did not run: {type(exc).__name__}: {exc} (at {Path(last.filename).name}:"
                        f"{last.lineno})"
                    }
                data = result["parts"][p]["arms"][arm]
                data["seeds"].append(seed)
                data["runs"].append(r)
                if r["status"] == "ok":
                    f = r["final"]
                    count = (
                        r["tokens_backpropagated"]
                        if p == "token_gating"
                        else r["samples_backpropagated"]
                    )
                    print(
                        f"  seed {seed} {p:<18} {arm:<14} backprop {count:>5}  train {r['wall_clock_s']:6.1f}s "
                        f"cpu {r['process_time_s']:6.1f}s  eval loss {f['eval_loss']:.4f}  "
                        f"exact {f['exact_match']:.3f}",
                        flush=True,
                    )
                else:
                    print(f"  seed {seed} {p:<18} {arm:<14} {r['status']}", flush=True)
        for part in result["parts"].values():
            equal_time(part)
        write_results(out, name, result, lambda path: plot(result, path))
    text = table(result)
    (out / f"{name}.md").write_text(text)
    print("\n" + text)
    return result


def render(path: Path) -> dict[str, Any]:
    """Table (printed and ``.md``) and plot from a saved result."""
    result = json.loads(path.read_text())
    for part in result["parts"].values():
        equal_time(part)
    text = table(result)
    path.with_suffix(".md").write_text(text)
    plot(result, path.with_suffix(".png"))
    print(text)
    return result
