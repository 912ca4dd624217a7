"""A tiny causal LM and character tokenizer saved to disk, and a prompt dataset, for the GRPO tests
(no download: the tokenizer is built with ``tokenizers``, the model from a config)."""
import string
from pathlib import Path

import torch

CHARS = string.digits + string.ascii_letters + " +-*=?:.,\n"


def char_tokenizer():
    """A PreTrainedTokenizerFast with one token per character, pad 0, eos 1, left padding."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(CHARS)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="left")


def save_tiny_model(path: Path, seed: int = 0) -> str:
    """Write a 1-layer Llama (hidden 32) and its tokenizer to ``path``; returns the path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=1, eos_token_id=1)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def prompt_dataset(n: int):
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [f"{i % 7}+{i % 5}=" for i in range(n)],
                              "answer": [str(i % 7 + i % 5) for i in range(n)]})
