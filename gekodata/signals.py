"""Per-sample (loss, confidence, correctness) from the logits the training forward produced.

One vectorized pass, no extra forward. ``loss`` keeps its graph so the user trains on it;
``conf`` and ``correct`` are detached. All three have shape [B] and live on the logits' device.
They come back as a :class:`Signals`, which unpacks as those three and carries what else the loop
knew: for classification the predicted class and the target class of each sample, so that
``sampler.report(signals, batch["idx"])`` hands the labels to the store without extra code.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F


class Signals(tuple):  # type: ignore[type-arg]
    """One batch's ``(loss, conf, correct)``, each [B]: unpacks as those three, and carries

    * ``pred``: int [B], the predicted class (detached), or None where there is no single class;
    * ``label``: int [B], the sample's given class (the target), or None (causal LM, multi-label,
      regression).

    Pass it whole to :meth:`WeightedBucketSampler.report
    <gekodata.sampler.WeightedBucketSampler.report>` (``report(signals, idx)``) and ``pred`` and
    ``label`` travel with the report: the store learns each sample's label (a class-aware noise
    guard and the data diagnosis need it). ``loss, conf, correct = signals`` still works."""

    pred: torch.Tensor | None
    label: torch.Tensor | None

    def __new__(
        cls,
        loss: torch.Tensor,
        conf: torch.Tensor,
        correct: torch.Tensor,
        *,
        pred: torch.Tensor | None = None,
        label: torch.Tensor | None = None,
    ) -> Signals:
        self = super().__new__(cls, (loss, conf, correct))
        self.pred, self.label = pred, label
        return self

    def __getnewargs__(
        self,
    ) -> tuple[torch.Tensor, ...]:  # pickle and copy: the three, then pred/label
        return tuple(self)

    @property
    def loss(self) -> torch.Tensor:
        """float32 [B], the per-sample loss (keeps its graph)."""
        return self[0]

    @property
    def conf(self) -> torch.Tensor:
        """float32 [B] in [0, 1], the probability given to the target (detached)."""
        return self[1]

    @property
    def correct(self) -> torch.Tensor:
        """bool [B], the sample was answered right."""
        return self[2]


CorrectRule = Union[str, float, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]


def classification_signals(logits: torch.Tensor, targets: torch.Tensor) -> Signals:
    """Signals for single-label classification.

    Args:
        logits: float [B, K], unnormalised class scores.
        targets: int [B], class indices in ``[0, K)``.

    Returns:
        :class:`Signals` of loss: float32 [B], cross-entropy per sample (differentiable; nats);
        conf: float32 [B], softmax probability of the target class (detached); correct: bool [B],
        ``argmax(logits) == target``; carrying ``pred`` (the argmax) and ``label`` (``targets``).
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [B, K], got shape {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must be [B] with B={logits.shape[0]} to match logits, got shape {tuple(targets.shape)}"
        )
    if targets.is_floating_point():
        raise ValueError(f"targets must be integer class indices, got {targets.dtype}")
    loss = F.cross_entropy(logits.float(), targets, reduction="none")
    conf = torch.exp(-loss.detach())
    pred = logits.detach().argmax(dim=-1)
    return Signals(loss, conf, pred == targets, pred=pred, label=targets.detach())


def multi_label_signals(logits: torch.Tensor, targets: torch.Tensor) -> Signals:
    """Signals for multi-label classification (independent sigmoid per label, as HF's
    ``problem_type="multi_label_classification"``).

    Args:
        logits: float [B, K], one score per label.
        targets: [B, K] of 0/1 (float or int), the labels that apply.

    Returns:
        loss: float32 [B], binary cross-entropy averaged over the K labels (differentiable; nats).
        conf: float32 [B], ``exp(-loss)``: the geometric mean over labels of the probability
            given to each label's target value (detached).
        correct: bool [B], every label right (``sigmoid(logit) > 0.5`` equals the target).
    """
    if logits.dim() != 2 or targets.shape != logits.shape:
        raise ValueError(
            f"multi-label logits and targets must both be [B, K], got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    target = targets.to(torch.float32)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").mean(-1)
    conf = torch.exp(-loss.detach())
    correct = ((logits.detach() > 0) == (target > 0.5)).all(dim=-1)
    return Signals(loss, conf, correct)


def regression_signals(
    predictions: torch.Tensor, targets: torch.Tensor, *, tolerance: float
) -> Signals:
    """Signals for regression: correctness needs a tolerance only the user can name, so pass
    ``functools.partial(regression_signals, tolerance=...)`` where a function is expected.

    Args:
        predictions: float [B] or [B, D] (``[B, 1]`` as HF's ``num_labels=1`` heads give).
        targets: float, the same shape (or [B] for [B, 1] predictions).
        tolerance: a sample is correct when every output is within this absolute error.

    Returns:
        loss: float32 [B], squared error averaged over outputs (differentiable; target units²).
        conf: float32 [B], ``exp(-loss)`` (detached).
        correct: bool [B], ``|prediction - target| <= tolerance`` for every output.
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    pred = predictions.float()
    target = targets.to(torch.float32).reshape(pred.shape[0], -1)
    pred = pred.reshape(pred.shape[0], -1)
    if pred.shape != target.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ"
        )
    error = pred - target
    loss = (error * error).mean(-1)
    conf = torch.exp(-loss.detach())
    correct = (error.detach().abs() <= tolerance).all(dim=-1)
    return Signals(loss, conf, correct)


def check_causal_lm_inputs(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """``TypeError``/``ValueError`` unless ``logits`` is a float [B, T, V] tensor and ``labels`` an
    integer [B, T] tensor (with a hint when the labels look already shifted). Shared by
    :func:`causal_lm_signals`, :mod:`gekodata.gating.token_scores` and :mod:`gekodata.gating.tokens`."""
    if not isinstance(logits, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("logits and labels must be torch tensors")
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B, T, V], got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        hint = ""
        if (
            labels.dim() == 2
            and labels.shape[0] == logits.shape[0]
            and labels.shape[1] == logits.shape[1] - 1
        ):
            hint = " (labels look already shifted: pass shift=False with logits[:, :-1])"
        raise ValueError(
            f"labels must be [B, T] = {tuple(logits.shape[:2])} to match logits [B, T, V], "
            f"got {tuple(labels.shape)}{hint}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer token ids, got {labels.dtype}")


def causal_lm_signals(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = -100,
    correct: CorrectRule = "exact",
    shift: bool = True,
) -> Signals:
    """Signals for causal language models, from next-token logits.

    Args:
        logits: float [B, T, V] from the model's forward.
        labels: int [B, T], the input ids with positions not to learn (prompt, padding) set to
            ``ignore_index``: the same ``labels`` a Hugging Face causal LM takes.
        ignore_index: label value that marks positions without a target.
        correct: how a sample counts as correct: ``"exact"`` (every target token is the argmax
            prediction), a float τ in [0, 1] (token accuracy >= τ), or a callable
            ``f(predicted_ids [B, T'], labels [B, T'], mask [B, T']) -> bool [B]`` on the shifted
            tensors (e.g. to match only the answer span).
        shift: predict token t+1 from position t (True, as Hugging Face models do internally).
            Pass False if ``labels`` are already aligned with ``logits``.

    Returns:
        loss: float32 [B], mean NLL over each sample's target tokens (differentiable).
        conf: float32 [B], mean probability of the target token over target tokens (detached).
        correct: bool [B] by the ``correct`` rule.

    A sample with no target tokens gets loss 0, conf 1 and correct True: it has nothing to learn.
    """
    check_causal_lm_inputs(logits, labels)
    if shift:
        logits = logits[:, :-1, :]
        labels = labels[:, 1:]
    mask = labels != ignore_index
    safe_labels = labels.masked_fill(~mask, 0)
    if logits.device.type == "cpu" and mask.any():
        vocab = logits.shape[-1]
        valid = labels[mask]
        if bool((valid < 0).any() or (valid >= vocab).any()):
            raise ValueError(
                f"labels must be token ids in [0, {vocab}) or ignore_index={ignore_index}"
            )
    batch, steps, vocab = logits.shape
    token_nll = F.cross_entropy(
        logits.reshape(-1, vocab).float(), safe_labels.reshape(-1), reduction="none"
    ).view(batch, steps)
    maskf = mask.to(token_nll.dtype)
    num_targets = maskf.sum(dim=1)
    denom = num_targets.clamp(min=1.0)
    loss = (token_nll * maskf).sum(dim=1) / denom
    with torch.no_grad():
        token_prob = torch.exp(-token_nll.detach()) * maskf
        conf = torch.where(num_targets > 0, token_prob.sum(dim=1) / denom, torch.ones_like(denom))
        predicted = logits.detach().argmax(dim=-1)
        hits = (predicted == labels) & mask
        if callable(correct):
            is_correct = torch.as_tensor(correct(predicted, labels, mask), device=logits.device).to(
                torch.bool
            )
            if is_correct.shape != (batch,):
                raise ValueError(
                    f"the correct= callable must return shape ({batch},), got {tuple(is_correct.shape)}"
                )
        elif correct == "exact":
            is_correct = hits.sum(dim=1) == mask.sum(dim=1)
        elif (
            isinstance(correct, (int, float))
            and not isinstance(correct, bool)
            and 0.0 <= correct <= 1.0
        ):
            accuracy = hits.sum(dim=1).float() / denom
            is_correct = (accuracy >= float(correct)) | (num_targets == 0)
        else:
            raise ValueError(
                f"correct must be 'exact', a float in [0, 1] or a callable, got {correct!r}"
            )
    return Signals(loss, conf, is_correct)
