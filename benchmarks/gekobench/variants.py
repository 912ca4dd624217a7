"""Task variants where selection can matter, and the small reference models of RHO-LOSS.

Built per seed from a time-to-quality task (:mod:`.tasks`: T1 MiniLM on BBC News, T2
small CNN on MNIST-5000); only the *training* set changes, the test set stays the clean one:

* ``clean``: the task as it is.
* ``noisy``: 20% symmetric label flips (a label drawn uniformly from the other classes).
* ``redundant``: half of the training set is near-duplicates of a small subset: N/2 distinct
  samples, and N/2 augmented copies of N/20 of them (10 each). Images: a random shift of up to 2
  pixels and Gaussian pixel noise (sigma 0.05); text: each token dropped with probability 0.1.
* ``imbalanced``: ``rare`` classes (T2: 3 of 10, T1: 1 of 5, chosen by the seed) keep 10% of their
  training samples. Accuracy is then reported as the training distribution would see it
  (per-class accuracy on the clean test set, weighted by the training class shares) beside macro
  accuracy (the unweighted mean of per-class accuracy).

Reference models (for ``ReducibleLossPolicy``, cross-fitted on halves of the variant's training
set by :func:`gekodata.reference.cross_fit_reference_losses`): T2 a linear softmax classifier on
the pixels, T1 a bag-of-embeddings (fastText-like) classifier on the token ids; both take about a
second, which the benchmark adds to the arm's wall-clock.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn as nn

from gekodata.reference import ReferenceLosses, cross_fit_reference_losses

from .data import inject_noise

VARIANTS = ("clean", "noisy", "redundant", "imbalanced", "noisy_imbalanced")
STUDY_VARIANTS = VARIANTS[:4]  # the issue-13 selection study's variants (its saved results)
NOISE_RATE = 0.2
RARE_KEEP = 0.1


def _stream(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 4242, salt])


def _augment_images(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    out = torch.empty_like(x)
    shifts = rng.integers(-2, 3, size=(len(x), 2))
    for i, (dy, dx) in enumerate(shifts):  # benchmark data preparation, once per seed
        out[i] = torch.roll(x[i], shifts=(int(dy), int(dx)), dims=(-2, -1))
    out += torch.from_numpy(rng.normal(0.0, 0.05, size=tuple(x.shape)).astype(np.float32))
    return out.clamp_(0.0, 1.0)


def _jitter(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Tabular near-duplicates: standardised features plus Gaussian noise (sigma 0.05)."""
    return x + torch.from_numpy(rng.normal(0.0, 0.05, size=tuple(x.shape)).astype(np.float32))


def _augment_tokens(
    input_ids: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    ids_out, mask_out = torch.zeros_like(input_ids), torch.zeros_like(mask)
    pad = 0
    for i in range(len(input_ids)):
        length = int(mask[i].sum())
        keep = np.ones(length, dtype=bool)
        keep[1 : length - 1] = rng.random(max(length - 2, 0)) >= 0.1  # never [CLS] or [SEP]
        kept = input_ids[i, :length][torch.from_numpy(keep)]
        ids_out[i].fill_(pad)
        ids_out[i, : len(kept)] = kept
        mask_out[i, : len(kept)] = 1
    return ids_out, mask_out


def make_variant(task, variant: str, seed: int):
    """A copy of ``task`` (a :class:`.tasks.Task`) whose training set is ``variant`` for
    ``seed``; ``task.notes`` gains what was done, ``task.labels`` the training labels."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    cols: dict[str, torch.Tensor] = dict(task.train.columns)
    labels = cols["labels"]
    num_classes = int(task.num_classes)
    notes = dict(task.notes, variant=variant)
    class_weights = None
    truth: dict[object, object] = {}  # what the benchmark knows and the run must estimate
    if variant in ("imbalanced", "noisy_imbalanced"):
        rng = _stream(seed, 2)
        rare = np.sort(rng.permutation(num_classes)[: task.rare_classes])
        y = labels.numpy()
        keep = np.ones(len(y), dtype=bool)
        for c in rare:
            members = np.flatnonzero(y == c)
            keep[members[rng.permutation(len(members))[round(RARE_KEEP * len(members)) :]]] = False
        cols = {k: v[torch.from_numpy(keep)] for k, v in cols.items()}
        share = np.bincount(cols["labels"].numpy(), minlength=num_classes) / int(keep.sum())
        class_weights = torch.from_numpy(share)
        notes.update(
            rare_classes=rare.tolist(),
            rare_keep=RARE_KEEP,
            train_class_counts=np.bincount(cols["labels"].numpy(), minlength=num_classes).tolist(),
        )
    if variant in ("noisy", "noisy_imbalanced"):
        cols["labels"], flipped = inject_noise(cols["labels"], num_classes, NOISE_RATE, seed)
        notes["flipped"] = int(flipped.sum())
        truth["flipped"] = flipped
    elif variant == "redundant":
        rng = _stream(seed, 1)
        n = len(labels)
        distinct = rng.permutation(n)[: n // 2]
        core = distinct[rng.permutation(len(distinct))[: max(n // 20, 1)]]
        copies = np.repeat(core, (n - len(distinct)) // len(core) + 1)[: n - len(distinct)]
        dup = {k: v[torch.from_numpy(copies)] for k, v in cols.items()}
        if "x" in dup:
            dup["x"] = (
                _augment_images(dup["x"], rng) if dup["x"].dim() == 4 else _jitter(dup["x"], rng)
            )
        else:
            dup["input_ids"], dup["attention_mask"] = _augment_tokens(
                dup["input_ids"], dup["attention_mask"], rng
            )
        cols = {k: torch.cat([v[torch.from_numpy(distinct)], dup[k]]) for k, v in cols.items()}
        notes.update(distinct=len(distinct), core=len(core), copies=len(copies))
    train = type(task.train)(**cols)
    notes["train_size"] = len(train)
    evaluate = task.make_evaluate(class_weights)
    return dataclasses.replace(
        task,
        name=f"{task.name}_{variant}",
        train=train,
        evaluate=evaluate,
        notes=notes,
        labels=train.columns["labels"].numpy().copy(),
        cache=truth,
    )


# ---------------------------------------------------------------------------------- reference models
class LinearPixels(nn.Module):
    def __init__(self, num_classes: int, pixels: int = 28 * 28) -> None:
        super().__init__()
        self.head = nn.Linear(pixels, num_classes)

    def forward(self, batch):
        return self.head(batch["x"].flatten(1))


class BagOfEmbeddings(nn.Module):
    """fastText-like: the mean embedding of a text's tokens, then a linear layer."""

    def __init__(self, num_classes: int, vocab: int = 30522, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, batch):
        weights = batch["attention_mask"].float()
        mean = (self.embed(batch["input_ids"]) * weights[..., None]).sum(1) / weights.sum(
            1, keepdim=True
        )
        return self.head(mean)


def reference_losses(
    task, seed: int, epochs: int = 10, lr: float = 1e-2, batch_size: int = 64
) -> ReferenceLosses:
    """Cross-fit the task's small reference model on halves of its training set (2 folds)."""
    cols = task.train.columns
    torch_gen = torch.Generator().manual_seed(seed)

    def make_model(fold: int) -> nn.Module:
        torch.manual_seed(1000 * seed + fold)
        if "x" in cols:
            return LinearPixels(task.num_classes, cols["x"][0].numel())
        return BagOfEmbeddings(task.num_classes)

    def train(model: nn.Module, idx: np.ndarray) -> int:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        idx_t = torch.from_numpy(idx)
        for _ in range(epochs):
            order = idx_t[torch.randperm(len(idx_t), generator=torch_gen)]
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = {k: v[rows] for k, v in cols.items()}
                nn.functional.cross_entropy(model(batch), batch["labels"]).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
        return epochs * len(idx)

    @torch.inference_mode()
    def loss(model: nn.Module, idx: np.ndarray) -> np.ndarray:
        rows = torch.from_numpy(idx)
        batch = {k: v[rows] for k, v in cols.items()}
        return nn.functional.cross_entropy(model(batch), batch["labels"], reduction="none").numpy()

    return cross_fit_reference_losses(len(task.train), make_model, train, loss, folds=2, seed=seed)
