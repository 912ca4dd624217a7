"""Token-level difficulty and token gating for causal language models (CGGR's idea, done right).

What this module does and does not do
-------------------------------------
Token gating picks a subset of target tokens (the "hard" ones) and trains only on their loss, as
in Rho-1 ("Not all tokens are what you need") and CGGR. **This changes what is learned; it does
not reduce FLOPs.** The forward pass still runs over every position, and the backward pass still
runs through the whole dense graph: masking the loss only zeroes the output gradients of the
unselected positions, and every layer below the LM head still does a full-size backward. (CGGR's
``CGGRLoss`` claims "~25% backward FLOPs" for this; it is not true.) To save compute, drop whole
samples from the backward pass: see :mod:`gekodata.selective`.

Pieces:

* :func:`token_difficulty` -- per-position difficulty from logits and labels, aligned with the
  *shifted* labels (position ``t`` predicts token ``t + 1``), ``NaN`` where there is no target.
* :func:`select_tokens` -- a boolean mask of the tokens to train on (``topk``, ``stratified``,
  ``sequence_aware`` and the ``random`` control of the same size).
* :class:`TokenRatioSchedule` -- the kept-token ratio: linear warm-up from 1.0 to a floor,
  optionally raised while the model's confidence is low.
* :func:`masked_token_loss` -- mean NLL over the selected tokens (differentiable).

Typical loop::

    from gekodata.tokens import TokenRatioSchedule, masked_token_loss, select_tokens, token_difficulty

    schedule = TokenRatioSchedule(floor=0.25, warmup_steps=1000)
    gen = torch.Generator().manual_seed(0)               # only used by stratified / random
    for step, batch in enumerate(loader):
        logits = model(batch["input_ids"]).logits         # [B, T, V]
        diff = token_difficulty(logits, batch["labels"])  # [B, T-1], no grad, NaN = no target
        mask = select_tokens(diff, schedule.ratio(step), "topk", generator=gen)
        loss = masked_token_loss(logits, batch["labels"], mask)
        loss.backward()

Compared with CGGR 0.5 this module shifts labels (CGGR scores position ``t`` against label ``t``),
never indexes with ``-100`` (CGGR's gather goes out of bounds), has one implementation whose
meaning does not depend on the device (CGGR's PyTorch fallback ignores the scoring mode) and
bounds its memory for large vocabularies (see :func:`token_difficulty`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .signals import check_causal_lm_inputs

SCORINGS = ("entropy", "margin", "loss", "combined")
STRATEGIES = ("topk", "stratified", "sequence_aware", "random")

#: Default chunk: positions per chunk so that one [chunk, V] float32 buffer is at most 64 MiB.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------- validation
def _targets(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int, shift: bool
) -> torch.Tensor:
    """Target id per position of ``logits`` ([B, T]); ``ignore_index`` where there is none.

    With ``shift`` the target of position ``t`` is ``labels[:, t + 1]`` and the last position has
    no target. Labels are range-checked on CPU tensors only (a check on an accelerator would force
    a host sync; out-of-range ids there fail inside the gather, as in ``F.cross_entropy``).
    """
    vocab = logits.shape[-1]
    if shift:
        pad = torch.full_like(labels[:, :1], ignore_index)
        targets = torch.cat([labels[:, 1:], pad], dim=1)
    else:
        targets = labels
    if targets.device.type == "cpu":
        valid = targets[targets != ignore_index]
        if valid.numel() and bool((valid < 0).any() or (valid >= vocab).any()):
            raise ValueError(f"labels must be token ids in [0, {vocab}) or ignore_index={ignore_index}")
    return targets


def _chunk_rows(num_positions: int, vocab: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        return max(1, DEFAULT_CHUNK_ELEMENTS // vocab)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    return chunk_size


# --------------------------------------------------------------------------- difficulty
@torch.no_grad()
def token_difficulty(
    logits: torch.Tensor,
    labels: torch.Tensor,
    scoring: str = "combined",
    ignore_index: int = -100,
    *,
    shift: bool = True,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Per-token difficulty of the next-token predictions (higher = harder).

    Args:
        logits: float [B, T, V], the model's next-token logits (any float dtype; read, never
            modified; gradients are not tracked).
        labels: int [B, T], the input ids with positions not to learn set to ``ignore_index``:
            the ``labels`` a Hugging Face causal LM takes (unshifted).
        scoring: one of (``p`` = softmax of the position's logits in float32, ``p1 >= p2`` its two
            largest probabilities, ``y`` the target id, ``V`` the vocabulary size):

            * ``"entropy"``: ``H(p) / log V``, the normalised entropy, in [0, 1].
            * ``"margin"``: ``1 - (p1 - p2)``, in [0, 1]; 1 = the two best guesses tie.
            * ``"loss"``: ``-log p[y]``, the token's NLL in nats, in [0, inf).
            * ``"combined"``: ``(H(p) / log V + (1 - (p1 - p2)) + (1 - p[y])) / 3``, in [0, 1]:
              the mean of the three signals on a common [0, 1] scale. The loss enters as
              ``1 - p[y] = 1 - exp(-NLL)`` (monotone in the NLL) so that an unbounded NLL does not
              drown the other two, which CGGR's plain sum lets it do.

            ``entropy`` and ``margin`` do not look at the target, but positions without a target
            are still NaN so that every scoring yields the same set of candidates.
        ignore_index: label value marking positions without a target.
        shift: ``True`` (default): position ``t`` predicts ``labels[:, t + 1]``, the output is
            [B, T-1] and ``out[:, t]`` depends only on ``logits[:, t]`` and ``labels[:, t + 1]``.
            ``False``: labels are already aligned with logits; the output is [B, T].
        chunk_size: positions per chunk (default: as many as fit ``2**24`` float32 values,
            i.e. 64 MiB, per [chunk, V] buffer: 512 positions at V = 32768).

    Returns:
        float32 [B, T-1] (or [B, T] with ``shift=False``) on the logits' device, detached.
        **Positions whose target is ``ignore_index`` are NaN** (and so is nothing else: scores are
        finite wherever the logits are finite).

    Memory: positions are processed in chunks of the flattened [B*T, V] logits (a view when the
    logits are contiguous; otherwise one chunk is gathered at a time). Peak extra memory is about
    three [chunk, V] float32 buffers (the float32 copy of the chunk when the logits are not
    float32, one softmax-sized buffer, and the temporary inside ``logsumexp``) plus O(B*T) for the
    outputs, never a full [B, T, V] float32 copy. With the default chunk that is at most about
    192 MiB; measured on CPU at V = 32768 (peak RSS over the call): ~72 MiB for float32 logits,
    ~138 MiB for bfloat16 logits. Pass a smaller ``chunk_size`` to lower it.
    Half-precision logits are upcast chunk by chunk, so scores are computed in float32.

    Raises:
        ValueError: bad shapes/dtypes, unknown ``scoring``, ``V < 2``, or (CPU tensors) label ids
            outside ``[0, V)`` other than ``ignore_index``.
    """
    check_causal_lm_inputs(logits, labels)
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    batch, steps, vocab = logits.shape
    if vocab < 2:
        raise ValueError(f"need a vocabulary of at least 2 for entropy/margin scores, got V={vocab}")
    if shift and steps < 1:
        raise ValueError("need T >= 1 positions")
    logits = logits.detach()
    targets = _targets(logits, labels, ignore_index, shift).to(logits.device)
    num = batch * steps
    out = torch.empty(num, dtype=torch.float32, device=logits.device)
    if num == 0:
        return out.view(batch, steps)[:, : steps - 1 if shift else steps]
    flat_targets = targets.reshape(num)
    valid = flat_targets != ignore_index
    safe_targets = flat_targets.masked_fill(~valid, 0).to(torch.long)
    contiguous = logits.is_contiguous()
    flat = logits.view(num, vocab) if contiguous else None
    rows = _chunk_rows(num, vocab, chunk_size)
    log_v = math.log(vocab)
    for start in range(0, num, rows):
        stop = min(num, start + rows)
        if contiguous:
            x = flat[start:stop]
        else:
            pos = torch.arange(start, stop, device=logits.device)
            x = logits[pos // steps, pos % steps]
        x = x.float()  # no copy for float32 logits
        lse = torch.logsumexp(x, dim=-1, keepdim=True)  # [n, 1]
        if scoring in ("entropy", "combined"):
            p = torch.sub(x, lse).exp_()  # the one softmax-sized buffer
            # H = lse - sum_i p_i x_i  (exact; avoids log p of zero probabilities)
            # (nan_to_num: a -inf logit has p = 0 and contributes 0, not 0 * -inf = NaN)
            plogit = p.mul_(x).nan_to_num_(nan=0.0).sum(dim=-1)
            entropy = (lse.squeeze(-1) - plogit).clamp_(min=0.0) / log_v
            del p
        if scoring in ("margin", "combined"):
            top2 = torch.topk(x, 2, dim=-1).values
            p12 = (top2 - lse).exp()
            margin = 1.0 - (p12[:, 0] - p12[:, 1])
        if scoring in ("loss", "combined"):
            nll = lse.squeeze(-1) - x.gather(1, safe_targets[start:stop, None]).squeeze(1)
            nll = nll.clamp_(min=0.0)
        if scoring == "entropy":
            score = entropy
        elif scoring == "margin":
            score = margin
        elif scoring == "loss":
            score = nll
        else:
            score = (entropy + margin + (1.0 - torch.exp(-nll))) / 3.0
        out[start:stop] = score
    out = out.masked_fill_(~valid, float("nan")).view(batch, steps)
    return out[:, :-1] if shift else out


# --------------------------------------------------------------------------- selection
def _check_ratio(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _round_half_up(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5)


def private_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator`` if given (type-checked), else a fresh non-deterministically seeded one."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return generator
    g = torch.Generator()
    g.seed()  # private, non-deterministic; pass a generator for reproducible draws
    return g


def _uniform(shape, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) float64 draws from ``generator`` (on its own device), moved to ``device``."""
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return u.to(device)


def _ranks_desc(key: torch.Tensor) -> torch.Tensor:
    """Rank (0 = largest) of each element of 1-D ``key``; NaN last; ties by position (stable)."""
    order = torch.sort(-key, stable=True).indices  # ascending -key: NaN sorts last
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(key.numel(), device=key.device)
    return ranks


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
        raise ValueError(f"difficulty must be floating point (NaN marks no-target positions), got {difficulty.dtype}")
    ratio = _check_ratio("ratio", ratio)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "sequence_aware":
        if difficulty.dim() != 2:
            raise ValueError(f"sequence_aware needs difficulty of shape [B, T'], got {tuple(difficulty.shape)}")
        if isinstance(min_per_sequence, bool) or not isinstance(min_per_sequence, int) or min_per_sequence < 0:
            raise ValueError(f"min_per_sequence must be an int >= 0, got {min_per_sequence!r}")
    if strategy == "stratified" and (
        isinstance(num_bands, bool) or not isinstance(num_bands, int) or num_bands < 1
    ):
        raise ValueError(f"num_bands must be an int >= 1, got {num_bands!r}")
    shape = difficulty.shape
    d = difficulty.detach().reshape(-1).to(torch.float64)
    n = d.numel()
    if n == 0:
        return torch.zeros(shape, dtype=torch.bool, device=difficulty.device)
    valid = ~torch.isnan(d)
    n_valid = valid.sum().to(torch.float64)
    k = _round_half_up(ratio * n_valid)  # 0-dim tensor: no host sync
    if strategy == "topk":
        mask = _ranks_desc(d) < k
    elif strategy == "random":
        u = _uniform(n, private_generator(generator), d.device)
        mask = _ranks_desc(torch.where(valid, u, d)) < k
    elif strategy == "stratified":
        mask = _stratified(d, valid, n_valid, k, num_bands, private_generator(generator))
    else:
        mask = _sequence_aware(d.view(shape), valid.view(shape), k, min_per_sequence)
    return (mask & valid).view(shape)


def _stratified(
    d: torch.Tensor, valid: torch.Tensor, n_valid: torch.Tensor, k: torch.Tensor, bands: int,
    generator: torch.Generator,
) -> torch.Tensor:
    n = d.numel()
    rank = _ranks_desc(d).to(torch.float64)  # valid tokens get ranks 0 .. n_valid-1
    band = torch.floor(rank * bands / n_valid.clamp(min=1.0)).clamp(max=bands)  # invalid -> >= bands
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
    order = torch.sort(-torch.where(rest, flat, torch.full_like(flat, float("nan"))), stable=True).indices
    filled = torch.cumsum(rest[order].to(torch.int64), dim=0)
    budget = (k - n_mandatory).clamp(min=0)
    take = torch.zeros_like(rest)
    take[order] = rest[order] & (filled <= budget)
    return mandatory.reshape(-1) | take


# --------------------------------------------------------------------------- schedule
class TokenRatioSchedule:
    """Fraction of target tokens to keep at a training step.

    ``base(step) = start + (floor - start) * min(step / warmup_steps, 1)``: linear from ``start``
    (default 1.0: train on every token) down to ``floor`` over ``warmup_steps`` optimizer steps,
    then constant (``warmup_steps = 0``: ``floor`` from step 0).

    With ``dynamic=True`` and a ``mean_confidence`` c (e.g. the mean probability of the target
    token over the batch's valid tokens, ``torch.exp(-token_difficulty(..., "loss")).nanmean()``)
    the ratio is raised while the model is unsure::

        deficit = clamp((confidence_target - c) / confidence_target, 0, 1)
        ratio   = clamp(base + sensitivity * deficit * (1 - base), floor, 1)

    so c >= ``confidence_target`` gives ``base`` and c = 0 with ``sensitivity = 1`` gives 1.0.
    (CGGR's ``base * (1 + (1 - c) * s)`` can also drop below its floor; this one cannot.)
    Without ``dynamic`` the confidence is ignored.
    """

    def __init__(
        self,
        floor: float = 0.25,
        warmup_steps: int = 1000,
        start: float = 1.0,
        dynamic: bool = False,
        confidence_target: float = 0.5,
        sensitivity: float = 1.0,
    ) -> None:
        self.floor = _check_ratio("floor", floor)
        self.start = _check_ratio("start", start)
        if self.start < self.floor:
            raise ValueError(f"start ({self.start}) must be >= floor ({self.floor})")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.warmup_steps = warmup_steps
        self.dynamic = bool(dynamic)
        self.confidence_target = float(confidence_target)
        if not (0.0 < self.confidence_target <= 1.0):
            raise ValueError(f"confidence_target must be in (0, 1], got {confidence_target}")
        self.sensitivity = float(sensitivity)
        if not (math.isfinite(self.sensitivity) and self.sensitivity >= 0.0):
            raise ValueError(f"sensitivity must be finite and >= 0, got {sensitivity}")

    def base(self, step: int) -> float:
        """The warm-up ratio at ``step`` (>= 0), without the dynamic adjustment."""
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        progress = 1.0 if self.warmup_steps == 0 else min(step / self.warmup_steps, 1.0)
        return self.start + (self.floor - self.start) * progress

    def ratio(self, step: int, mean_confidence: float | None = None) -> float:
        """Kept-token ratio at ``step``, in [floor, 1] (the warm-up value unless ``dynamic``)."""
        base = self.base(step)
        if not self.dynamic or mean_confidence is None:
            return base
        c = float(mean_confidence)
        if not (0.0 <= c <= 1.0):
            raise ValueError(f"mean_confidence must be in [0, 1], got {mean_confidence}")
        deficit = min(max((self.confidence_target - c) / self.confidence_target, 0.0), 1.0)
        return min(max(base + self.sensitivity * deficit * (1.0 - base), self.floor), 1.0)

    def __repr__(self) -> str:
        return (
            f"TokenRatioSchedule(floor={self.floor}, warmup_steps={self.warmup_steps}, start={self.start}, "
            f"dynamic={self.dynamic}, confidence_target={self.confidence_target}, sensitivity={self.sensitivity})"
        )


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
        raise TypeError(f"mask must be a bool tensor (e.g. from select_tokens), got {type(mask).__name__}")
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
            raise ValueError(f"labels must be token ids in [0, {vocab}) or ignore_index={ignore_index}")
    safe = targets.masked_fill(~selected, 0).to(torch.long)
    # [B, V, T'] layout: no reshape copy of the (sliced) logits; float() copies only half precision
    nll = F.cross_entropy(logits.float().transpose(1, 2), safe, reduction="none")  # [B, T']
    weight = selected.to(nll.dtype)
    return (nll * weight).sum() / weight.sum().clamp(min=1.0)
