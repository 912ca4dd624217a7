"""Token gating for causal language models (CGGR's idea, done right): train on a subset of tokens.

What this module does and does not do
-------------------------------------
Token gating picks a subset of target tokens (the "hard" ones) and trains only on their loss, as
in Rho-1 ("Not all tokens are what you need") and CGGR. **This changes what is learned; it does
not reduce FLOPs.** The forward pass still runs over every position, and the backward pass still
runs through the whole dense graph: masking the loss only zeroes the output gradients of the
unselected positions, and every layer below the LM head still does a full-size backward. (CGGR's
``CGGRLoss`` claims "~25% backward FLOPs" for this; it is not true.) To save compute, drop whole
samples from the backward pass: see :mod:`gekodata.gating.selective`.

Pieces (all importable from here):

* :func:`token_difficulty` (:mod:`gekodata.gating.token_scores`) -- per-position difficulty from logits
  and labels, ``NaN`` where there is no target.
* :func:`select_tokens` -- a boolean mask of the tokens to train on (``topk``, ``stratified``,
  ``sequence_aware`` and the ``random`` control of the same size).
* :class:`TokenRatioSchedule` (:mod:`gekodata.gating.token_schedule`) -- the kept-token ratio per step.
* :func:`masked_token_loss` -- mean NLL over the selected tokens (differentiable).

Typical loop::

    from gekodata.gating.tokens import TokenRatioSchedule, masked_token_loss, select_tokens, token_difficulty

    schedule = TokenRatioSchedule(floor=0.25, warmup_steps=1000)
    gen = torch.Generator().manual_seed(0)               # only used by stratified / random
    for step, batch in enumerate(loader):
        logits = model(batch["input_ids"]).logits         # [B, T, V]
        diff = token_difficulty(logits, batch["labels"])  # [B, T-1], no grad, NaN = no target
        mask = select_tokens(diff, schedule.ratio(step), "topk", generator=gen)
        loss = masked_token_loss(logits, batch["labels"], mask)
        loss.backward()
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..arguments import check_int, check_unit_interval
from ..signals import check_causal_lm_inputs
from .common import private_generator, ranks_ascending
from .token_schedule import TokenRatioSchedule
from .token_scores import DEFAULT_CHUNK_ELEMENTS, SCORINGS, token_difficulty

STRATEGIES = ("topk", "stratified", "sequence_aware", "random")


# --------------------------------------------------------------------------- selection
def _round_half_up(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5)


def _uniform(shape, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) float64 draws from ``generator`` (on its own device), moved to ``device``."""
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return u.to(device)


def select_tokens(
    difficulty: torch.Tensor,
    ratio: float,
    strategy: str = "topk",
    *,
    min_per_sequence: int = 1,
    num_bands: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boolean mask of the tokens to train on; never selects a NaN (no-target) position.

    Args:
        difficulty: float [B, T'] from :func:`token_difficulty` (any shape for ``topk``,
            ``stratified`` and ``random``; [B, T'] for ``sequence_aware``). NaN = no target.
        ratio: fraction of the valid (non-NaN) tokens to keep, in [0, 1]. The count is
            ``k = floor(ratio * n_valid + 0.5)`` (round half up), over the whole batch.
        strategy:

            * ``"topk"``: the ``k`` highest difficulties of the batch (ties: lower flat index).
            * ``"stratified"``: a representative sample. The valid tokens are ranked and cut into
              ``num_bands`` equal-count difficulty bands; each band contributes its proportional
              share of ``k`` (cumulative round-half-up, so shares sum to exactly ``k``), drawn
              uniformly at random within the band. Keeps easy tokens in play (less forgetting)
              while covering every difficulty level; it is not biased towards hard tokens.
            * ``"sequence_aware"``: every row first gets its ``min(min_per_sequence, valid_in_row)``
              hardest tokens; the rest of the budget ``k`` is filled with the hardest remaining
              tokens of the batch. Selects ``max(k, mandatory)`` tokens.
            * ``"random"``: ``k`` valid tokens uniformly at random: the control that any gating
              must beat at the same token count.
        min_per_sequence: minimum tokens per row for ``sequence_aware`` (>= 0).
        num_bands: difficulty bands for ``stratified`` (>= 1).
        generator: private RNG for ``stratified`` and ``random`` (reproducible when seeded; if
            None a fresh, non-deterministically seeded private generator is used; the global RNG is
            never touched). May live on any device; draws are moved to ``difficulty``'s device.

    Returns:
        bool tensor, same shape and device as ``difficulty``. ``ratio = 1`` selects every valid
        token; ``ratio = 0`` selects none (``sequence_aware``: only the per-row minimum).

    The selection is computed with sorts and comparisons on the device, without host syncs.
    """
    if not isinstance(difficulty, torch.Tensor):
        raise TypeError(f"difficulty must be a torch tensor, got {type(difficulty).__name__}")
    if not difficulty.is_floating_point():
        raise ValueError(
            f"difficulty must be floating point (NaN marks no-target positions), got {difficulty.dtype}"
        )
    ratio = check_unit_interval("ratio", ratio)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "sequence_aware":
        if difficulty.dim() != 2:
            raise ValueError(
                f"sequence_aware needs difficulty of shape [B, T'], got {tuple(difficulty.shape)}"
            )
        check_int("min_per_sequence", min_per_sequence, 0)
    if strategy == "stratified":
        check_int("num_bands", num_bands, 1)
    shape = difficulty.shape
    d = difficulty.detach().reshape(-1).to(torch.float64)
    n = d.numel()
    if n == 0:
        return torch.zeros(shape, dtype=torch.bool, device=difficulty.device)
    valid = ~torch.isnan(d)
    n_valid = valid.sum().to(torch.float64)
    k = _round_half_up(ratio * n_valid)  # 0-dim tensor: no host sync
    if strategy == "topk":
        mask = ranks_ascending(-d) < k  # rank 0 = hardest, NaN last
    elif strategy == "random":
        u = _uniform(n, private_generator(generator), d.device)
        mask = ranks_ascending(-torch.where(valid, u, d)) < k
    elif strategy == "stratified":
        mask = _stratified(d, valid, n_valid, k, num_bands, private_generator(generator))
    else:
        mask = _sequence_aware(d.view(shape), valid.view(shape), k, min_per_sequence)
    return (mask & valid).view(shape)


def _stratified(
    d: torch.Tensor,
    valid: torch.Tensor,
    n_valid: torch.Tensor,
    k: torch.Tensor,
    bands: int,
    generator: torch.Generator,
) -> torch.Tensor:
    n = d.numel()
    rank = ranks_ascending(-d).to(
        torch.float64
    )  # hardest first: valid tokens get ranks 0 .. n_valid-1
    band = torch.floor(rank * bands / n_valid.clamp(min=1.0)).clamp(
        max=bands
    )  # invalid -> >= bands
    band = torch.where(valid, band, torch.full_like(band, bands))
    u = _uniform(n, generator, d.device)
    shuffled = torch.sort(u).indices  # uniform random order ...
    order = shuffled[torch.sort(band[shuffled], stable=True).indices]  # ... then grouped by band
    position = torch.empty_like(order)
    position[order] = torch.arange(n, device=d.device)
    # band b holds ranks [ceil(b n / S), ceil((b+1) n / S)); its quota is the difference of the
    # cumulative rounded shares, so quotas sum to exactly k.
    b = torch.arange(bands + 1, device=d.device, dtype=torch.float64)
    starts = torch.ceil(b * n_valid / bands)
    cum_quota = _round_half_up(k * starts / n_valid.clamp(min=1.0))
    band_i = band.long().clamp(max=bands - 1)
    start = starts[band_i]
    quota = cum_quota[band_i + 1] - cum_quota[band_i]
    return valid & ((position.to(torch.float64) - start) < quota)


def _sequence_aware(
    d: torch.Tensor, valid: torch.Tensor, k: torch.Tensor, min_per_sequence: int
) -> torch.Tensor:
    batch, steps = d.shape
    row_order = torch.sort(-d, dim=1, stable=True).indices  # per row, hardest first, NaN last
    row_rank = torch.empty_like(row_order)
    row_rank.scatter_(1, row_order, torch.arange(steps, device=d.device).expand(batch, steps))
    mandatory = valid & (row_rank < min_per_sequence)
    n_mandatory = mandatory.sum()
    flat = d.reshape(-1)
    rest = (valid & ~mandatory).reshape(-1)
    order = torch.sort(
        -torch.where(rest, flat, torch.full_like(flat, float("nan"))), stable=True
    ).indices
    filled = torch.cumsum(rest[order].to(torch.int64), dim=0)
    budget = (k - n_mandatory).clamp(min=0)
    take = torch.zeros_like(rest)
    take[order] = rest[order] & (filled <= budget)
    return mandatory.reshape(-1) | take


# --------------------------------------------------------------------------- loss
def masked_token_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    ignore_index: int = -100,
    *,
    shift: bool = True,
) -> torch.Tensor:
    """Mean NLL over the selected target tokens (differentiable).

    Args:
        logits: float [B, T, V] (with grad).
        labels: int [B, T], unshifted labels with ``ignore_index`` where there is no target.
        mask: bool [B, T-1] (``shift=True``) or [B, T] (``shift=False``), e.g. from
            :func:`select_tokens`. Positions whose target is ``ignore_index`` never count, even if
            the mask is True there.
        ignore_index: label value marking positions without a target.
        shift: as in :func:`token_difficulty`.

    Returns:
        scalar float32: ``sum(NLL over selected) / max(number selected, 1)`` in nats. With nothing
        selected it is 0 and still attached to the graph (its gradient is zero), so the caller's
        ``backward()`` works on every step. No host sync.

    The gradient reaches only the logits of selected positions; everything below the LM head
    still runs a full backward (see the module docstring: this changes what is learned, it does
    not save FLOPs).
    """
    check_causal_lm_inputs(logits, labels)
    vocab = logits.shape[-1]
    if shift:
        logits = logits[:, :-1, :]
        labels = labels[:, 1:]
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"mask must be a bool tensor (e.g. from select_tokens), got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (e.g. from select_tokens), got {mask.dtype}")
    if tuple(mask.shape) != tuple(labels.shape):
        raise ValueError(
            f"mask must have shape {tuple(labels.shape)} (the {'shifted ' if shift else ''}targets), "
            f"got {tuple(mask.shape)}"
        )
    targets = labels.to(logits.device)
    selected = mask.to(logits.device) & (targets != ignore_index)
    if logits.device.type == "cpu" and selected.any():
        chosen = targets[selected]
        if bool((chosen < 0).any() or (chosen >= vocab).any()):
            raise ValueError(
                f"labels must be token ids in [0, {vocab}) or ignore_index={ignore_index}"
            )
    safe = targets.masked_fill(~selected, 0).to(torch.long)
    # [B, V, T'] layout: no reshape copy of the (sliced) logits; float() copies only half precision
    nll = F.cross_entropy(logits.float().transpose(1, 2), safe, reduction="none")  # [B, T']
    weight = selected.to(nll.dtype)
    return (nll * weight).sum() / weight.sum().clamp(min=1.0)


__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "SCORINGS",
    "STRATEGIES",
    "TokenRatioSchedule",
    "masked_token_loss",
    "private_generator",
    "select_tokens",
    "token_difficulty",
]
