"""Per-position difficulty of a causal LM's next-token predictions: the score token gating
(:mod:`gekodata.gating.tokens`) ranks tokens by.

:func:`token_difficulty` aligns its scores with the *shifted* labels (position ``t`` predicts token
``t + 1``) and returns ``NaN`` where there is no target. Compared with CGGR 0.5 it shifts labels
(CGGR scores position ``t`` against label ``t``), never indexes with ``-100`` (CGGR's gather goes
out of bounds), has one implementation whose meaning does not depend on the device (CGGR's
PyTorch fallback ignores the scoring mode) and bounds its memory for large vocabularies.
"""

from __future__ import annotations

import math

import torch

from ..signals import check_causal_lm_inputs

SCORINGS = ("entropy", "margin", "loss", "combined")

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
            raise ValueError(
                f"labels must be token ids in [0, {vocab}) or ignore_index={ignore_index}"
            )
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
        raise ValueError(
            f"need a vocabulary of at least 2 for entropy/margin scores, got V={vocab}"
        )
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
    flat = logits.view(num, vocab) if logits.is_contiguous() else None
    rows = _chunk_rows(num, vocab, chunk_size)
    log_v = math.log(vocab)
    for start in range(0, num, rows):
        stop = min(num, start + rows)
        if flat is not None:
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
