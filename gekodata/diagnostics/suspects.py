"""Samples the noise guard marks SUSPECT (probably mislabeled), and their CSV export.

Reads the store only: :func:`find_suspects` lists what the store knows of every sample in the
SUSPECT bucket (``BucketPolicy(noise_guard=True)``); :func:`write_suspects_csv` writes that list.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..policy import Bucket
from ..store.files import atomic_write
from ..store.state_store import GEKOStateStore


@dataclass(frozen=True)
class Suspects:
    """Samples classified SUSPECT, as parallel arrays [K]."""

    idx: np.ndarray  # int64: positions in the original dataset
    predicted: np.ndarray  # int64: last predicted label, -1 if the loop reported no pred
    confidence: np.ndarray  # float32: EMA of the probability of the given label
    loss: np.ndarray  # float32: loss EMA
    wrong_streak: np.ndarray  # uint8: consecutive wrong sync windows (saturates at 7)
    visits: np.ndarray  # int64: reported passes

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, field: str) -> np.ndarray:
        """``found["idx"]`` as well as ``found.idx``: one field's array [K] by name; ``KeyError``
        naming the fields for any other key."""
        if not isinstance(field, str) or field not in self.__dataclass_fields__:
            raise KeyError(
                f"{field!r}: a Suspects field is one of {list(self.__dataclass_fields__)}"
            )
        return getattr(self, field)


def find_suspects(store: GEKOStateStore) -> Suspects:
    """Every sample whose bucket code is SUSPECT, with its store state."""
    idx = np.flatnonzero(store.bucket == Bucket.SUSPECT)
    return Suspects(
        idx=idx.astype(np.int64),
        predicted=store.predicted[idx].astype(np.int64),
        confidence=store.confidence[idx],
        loss=store.loss[idx],
        wrong_streak=store.wrong_streak[idx],
        visits=store.visits[idx].astype(np.int64),
    )


def write_suspects_csv(
    path: str | os.PathLike, found: Suspects, num_samples: int, labels: Any | None = None
) -> int:
    """Write ``found`` as CSV (atomically); returns the number of rows.

    Columns: ``idx, predicted, confidence, loss, wrong_streak, visits`` and, when ``labels``
    (the given label of every one of the ``num_samples`` samples, indexable by ``idx``: array,
    tensor or list) is passed, ``label`` after ``idx``. ``predicted`` is -1 where the loop
    reported no ``pred``.
    """
    header = ["idx", "predicted", "confidence", "loss", "wrong_streak", "visits"]
    columns = [
        found.idx.tolist(),
        found.predicted.tolist(),
        [f"{x:.4f}" for x in found.confidence.tolist()],
        [f"{x:.4f}" for x in found.loss.tolist()],
        found.wrong_streak.tolist(),
        found.visits.tolist(),
    ]
    if labels is not None:
        given = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if len(given) != num_samples:
            raise ValueError(
                f"labels has {len(given)} entries but the dataset has {num_samples} samples"
            )
        header.insert(1, "label")
        columns.insert(1, given[found.idx].tolist())
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes labels that hold commas or quotes
    writer.writerow(header)
    writer.writerows(zip(*columns))
    atomic_write(path, text.getvalue().encode())
    return len(found.idx)
