"""A tiny causal LM and character tokenizer saved to disk, and a prompt dataset, for the GRPO tests
(no download: the tokenizer is built with ``tokenizers``, the model from a config)."""

import importlib.util
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "grpo_reasoning.py"


def char_tokenizer():
    """The example's in-memory character tokenizer (a PreTrainedTokenizerFast, pad 0, eos 1,
    left padding): ``examples/grpo_reasoning.py``'s ``char_tokenizer``."""
    spec = importlib.util.spec_from_file_location("grpo_reasoning_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.char_tokenizer()


def save_tiny_model(path: Path, seed: int = 0) -> str:
    """Write a 1-layer Llama (hidden 32) and its tokenizer to ``path``; returns the path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def prompt_dataset(n: int):
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [f"{i % 7}+{i % 5}=" for i in range(n)],
            "answer": [str(i % 7 + i % 5) for i in range(n)],
        }
    )
