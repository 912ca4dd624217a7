"""Tiny synthetic classification data and a tiny random BERT for the HF integration tests."""

import torch
from torch.utils.data import Dataset


class ToyText(Dataset):
    """n token sequences of length L; the label (3 classes) is written into token 1, so it is learnable."""

    def __init__(self, n: int = 48, length: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(5, 50, (n, length), generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)
        self.x[:, 1] = self.y + 1

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {
            "input_ids": self.x[i],
            "attention_mask": torch.ones_like(self.x[i]),
            "labels": self.y[i],
        }


def tiny_bert(seed: int = 0, num_labels: int = 3):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=num_labels,
        max_position_embeddings=32,
    )
    return BertForSequenceClassification(config)


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config)
