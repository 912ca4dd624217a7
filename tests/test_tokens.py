import math
import re

import pytest
import torch

from gekodata.tokens import (
    TokenRatioSchedule,
    masked_token_loss,
    select_tokens,
    token_difficulty,
)

SCORINGS = ["entropy", "margin", "loss", "combined"]


def make(batch=3, steps=9, vocab=13, seed=0, ignore=True):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, steps, vocab, generator=g) * 2.0
    labels = torch.randint(0, vocab, (batch, steps), generator=g)
    if ignore:
        labels[0, :4] = -100  # prompt
        labels[2, -2:] = -100  # padding
    return logits, labels


def reference(logits, labels, scoring, ignore_index=-100):
    """Direct per-position float64 computation with shifted labels."""
    batch, steps, vocab = logits.shape
    out = torch.full((batch, steps - 1), float("nan"), dtype=torch.float64)
    for b in range(batch):
        for t in range(steps - 1):
            y = int(labels[b, t + 1])
            if y == ignore_index:
                continue
            p = torch.softmax(logits[b, t].double(), dim=-1)
            h = float(-(p * torch.log(p)).sum()) / math.log(vocab)
            top = torch.sort(p, descending=True).values
            margin = 1.0 - float(top[0] - top[1])
            nll = -math.log(float(p[y]))
            value = {
                "entropy": h,
                "margin": margin,
                "loss": nll,
                "combined": (h + margin + 1.0 - float(p[y])) / 3.0,
            }[scoring]
            out[b, t] = value
    return out


@pytest.mark.parametrize("scoring", SCORINGS)
def test_difficulty_matches_direct_computation(scoring):
    logits, labels = make()
    got = token_difficulty(logits, labels, scoring)
    assert got.dtype == torch.float32 and got.shape == (3, 8)
    ref = reference(logits, labels, scoring)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_chunked_equals_unchunked_and_noncontiguous(scoring):
    logits, labels = make(batch=4, steps=11, vocab=17, seed=1)
    full = token_difficulty(logits, labels, scoring, chunk_size=10_000)
    for chunk in (1, 3, 7):
        torch.testing.assert_close(
            token_difficulty(logits, labels, scoring, chunk_size=chunk), full, equal_nan=True
        )
    noncontig = logits.transpose(0, 1).contiguous().transpose(0, 1)
    assert not noncontig.is_contiguous()
    torch.testing.assert_close(
        token_difficulty(noncontig, labels, scoring, chunk_size=5), full, equal_nan=True
    )
    # half precision is upcast per chunk
    half = token_difficulty(logits.to(torch.bfloat16), labels, scoring)
    assert half.dtype == torch.float32
    torch.testing.assert_close(
        half, token_difficulty(logits.to(torch.bfloat16).float(), labels, scoring), equal_nan=True
    )


@pytest.mark.parametrize("scoring", SCORINGS)
def test_minus_inf_logits_are_handled(scoring):
    logits, labels = make(ignore=False)
    logits[..., :3] = -float("inf")  # e.g. a masked part of the vocabulary
    labels = labels.clamp(min=3)
    got = token_difficulty(logits, labels, scoring)
    assert torch.isfinite(got).all()
    ref = reference(logits[..., 3:], labels - 3, scoring)
    if scoring == "combined":
        return
    if (
        scoring == "entropy"
    ):  # normalised by log V of the full vocabulary (13), not of the 10 live ids
        ref = ref * math.log(10) / math.log(13)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_ignored_positions_are_nan_and_never_index_out_of_bounds():
    logits, labels = make()
    labels[1, 1:] = -100  # whole row without targets
    d = token_difficulty(logits, labels, "loss")
    expected_nan = labels[:, 1:] == -100
    assert torch.equal(torch.isnan(d), expected_nan)
    assert torch.isfinite(d[~expected_nan]).all()
    # a custom ignore index, and all-ignored batch
    labels2 = labels.masked_fill(labels == -100, 7_777)
    torch.testing.assert_close(
        token_difficulty(logits, labels2, "loss", ignore_index=7_777), d, equal_nan=True
    )
    assert torch.isnan(token_difficulty(logits, torch.full_like(labels, -100))).all()


def test_shift_alignment_and_no_future_leakage():
    logits, labels = make(batch=2, steps=8, vocab=11, seed=2, ignore=False)
    base = token_difficulty(logits, labels, "combined")
    for t in range(7):
        # difficulty[:, t] depends on logits[:, t] and labels[:, t+1] only
        l2, y2 = logits.clone(), labels.clone()
        l2[:, t] += torch.randn(2, 11)
        y2[:, t + 1] = (y2[:, t + 1] + 1) % 11
        d2 = token_difficulty(l2, y2, "combined")
        changed = (d2 != base).any(dim=0)
        assert changed[t]
        assert not changed[torch.arange(7) != t].any()
        # changing later logits / labels leaves position t alone
        l3, y3 = logits.clone(), labels.clone()
        l3[:, t + 1 :] = torch.randn_like(l3[:, t + 1 :])
        y3[:, t + 2 :] = (y3[:, t + 2 :] + 3) % 11
        d3 = token_difficulty(l3, y3, "combined")
        assert torch.equal(d3[:, : t + 1], base[:, : t + 1])
    # shift=False aligns labels with logits position by position
    d_ns = token_difficulty(logits[:, :-1], labels[:, 1:], "loss", shift=False)
    torch.testing.assert_close(d_ns, token_difficulty(logits, labels, "loss"))


class TinyCausalLM(torch.nn.Module):
    """Embedding + causal self-attention + LM head."""

    def __init__(self, vocab=23, dim=16):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Embedding(64, dim)
        self.attn = torch.nn.MultiheadAttention(dim, 2, batch_first=True)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, ids):
        steps = ids.shape[1]
        x = self.emb(ids) + self.pos(torch.arange(steps))
        causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool), diagonal=1)
        y, _ = self.attn(x, x, x, attn_mask=causal, need_weights=False)
        return self.head(x + y)


def test_no_future_token_leakage_with_a_real_causal_model():
    torch.manual_seed(0)  # test-only seeding of the model init
    model = TinyCausalLM().eval()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 23, (2, 10), generator=g)
    with torch.no_grad():
        base = token_difficulty(model(ids), ids, "combined")
        for t in range(9):
            ids2 = ids.clone()
            ids2[:, t + 2 :] = torch.randint(0, 23, ids2[:, t + 2 :].shape, generator=g)
            d2 = token_difficulty(model(ids2), ids2, "combined")
            # positions 0..t see only tokens 0..t and are scored against token t+1, both unchanged
            torch.testing.assert_close(d2[:, : t + 1], base[:, : t + 1], rtol=1e-5, atol=1e-6)


def test_difficulty_is_detached_and_validates_inputs():
    logits, labels = make()
    logits.requires_grad_(True)
    d = token_difficulty(logits, labels)
    assert not d.requires_grad
    with pytest.raises(ValueError, match="already shifted"):
        token_difficulty(logits, labels[:, 1:])
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        token_difficulty(logits[0], labels)
    with pytest.raises(ValueError, match="scoring"):
        token_difficulty(logits, labels, "confidence")
    with pytest.raises(ValueError, match="integer"):
        token_difficulty(logits, labels.float())
    bad = labels.clone()
    bad[1, 3] = 13
    with pytest.raises(ValueError, match=r"\[0, 13\)"):
        token_difficulty(logits, bad)
    with pytest.raises(ValueError, match="chunk_size"):
        token_difficulty(logits, labels, chunk_size=0)
    with pytest.raises(ValueError, match="at least 2"):
        token_difficulty(logits[..., :1], labels.clamp(min=0, max=0))


# ---------------------------------------------------------------------------- selection
def valid_difficulty(seed=0, shape=(4, 12), nan_frac=0.25):
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(shape, generator=g)
    d[torch.rand(shape, generator=g) < nan_frac] = float("nan")
    return d


@pytest.mark.parametrize("strategy", ["topk", "stratified", "random"])
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.77, 1.0])
def test_selection_count_and_never_nan(strategy, ratio):
    d = valid_difficulty()
    n_valid = int((~torch.isnan(d)).sum())
    m = select_tokens(d, ratio, strategy, generator=torch.Generator().manual_seed(1))
    assert m.dtype == torch.bool and m.shape == d.shape
    assert not m[torch.isnan(d)].any()
    assert int(m.sum()) == math.floor(ratio * n_valid + 0.5)
    if ratio == 1.0:
        assert torch.equal(m, ~torch.isnan(d))


def test_topk_selects_the_highest():
    d = valid_difficulty(seed=4, shape=(5, 20))
    m = select_tokens(d, 0.3, "topk")
    assert d[m].min() >= d[~m & ~torch.isnan(d)].max()
    # works on any shape, including 1-D
    flat = select_tokens(d.reshape(-1), 0.3, "topk")
    assert torch.equal(flat.view(5, 20), m)


def test_stratified_covers_every_band_proportionally():
    d = valid_difficulty(seed=5, shape=(8, 50), nan_frac=0.1)
    valid = ~torch.isnan(d)
    vals = d[valid]
    n = vals.numel()
    ranks = torch.empty(n, dtype=torch.long)
    ranks[torch.argsort(-vals)] = torch.arange(n)
    bands = 4
    band = ranks * bands // n
    for seed in range(5):
        m = select_tokens(
            d, 0.2, "stratified", num_bands=bands, generator=torch.Generator().manual_seed(seed)
        )
        picked = m[valid]
        k = int(picked.sum())
        for b in range(bands):
            share = int(picked[band == b].sum())
            expected = k * int((band == b).sum()) / n
            assert abs(share - expected) <= 1.0
    # the draw inside bands depends on the seed, reproducibly
    a = select_tokens(d, 0.2, "stratified", generator=torch.Generator().manual_seed(0))
    b = select_tokens(d, 0.2, "stratified", generator=torch.Generator().manual_seed(0))
    c = select_tokens(d, 0.2, "stratified", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sequence_aware_guarantees_minimum_per_row():
    d = valid_difficulty(seed=6, shape=(6, 10), nan_frac=0.3)
    d[0] = float("nan")  # a row without targets
    d[1, 1:] = float("nan")  # a row with one target
    d[2] *= 0.01  # an easy row that topk alone would skip
    valid = ~torch.isnan(d)
    n_valid = int(valid.sum())
    for ratio in (0.0, 0.1, 0.5):
        for min_per in (0, 1, 2, 3):
            m = select_tokens(d, ratio, "sequence_aware", min_per_sequence=min_per)
            assert not m[~valid].any()
            per_row = m.sum(dim=1)
            need = torch.clamp(valid.sum(dim=1), max=min_per)
            assert (per_row >= need).all()
            k = math.floor(ratio * n_valid + 0.5)
            assert int(m.sum()) == max(k, int(need.sum()))
            # the mandatory tokens of a row are its hardest ones
            for r in range(6):
                if per_row[r] > 0:
                    assert (
                        d[r][m[r]].min() >= d[r][valid[r] & ~m[r]].max()
                        if (valid[r] & ~m[r]).any()
                        else True
                    )
    assert select_tokens(d, 0.1, "topk")[2].sum() == 0
    assert select_tokens(d, 0.1, "sequence_aware")[2].sum() >= 1


def test_random_is_seeded_and_uniform():
    d = valid_difficulty(seed=7, shape=(4, 25), nan_frac=0.2)
    a = select_tokens(d, 0.3, "random", generator=torch.Generator().manual_seed(3))
    b = select_tokens(d, 0.3, "random", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    counts = torch.zeros_like(d)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        counts += select_tokens(d, 0.3, "random", generator=g).float()
    freq = counts[~torch.isnan(d)] / 300
    assert (freq - freq.mean()).abs().max() < 0.15  # uniform over valid tokens, not hardness-biased
    assert counts[torch.isnan(d)].sum() == 0


def test_selection_rejects_bad_input():
    d = valid_difficulty()
    with pytest.raises(ValueError, match="ratio"):
        select_tokens(d, 1.5)
    with pytest.raises(ValueError, match="strategy"):
        select_tokens(d, 0.5, "hardest")
    with pytest.raises(ValueError, match="floating"):
        select_tokens(torch.ones(3, 4, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match=r"\[B, T'\]"):
        select_tokens(d.reshape(-1), 0.5, "sequence_aware")
    with pytest.raises(ValueError, match="num_bands"):
        select_tokens(d, 0.5, "stratified", num_bands=0)
    with pytest.raises(ValueError, match="min_per_sequence"):
        select_tokens(d, 0.5, "sequence_aware", min_per_sequence=-1)


# ---------------------------------------------------------------------------- schedule
def test_schedule_endpoints_monotonic_and_dynamic_clamp():
    s = TokenRatioSchedule(floor=0.25, warmup_steps=100)
    assert s.ratio(0) == 1.0 and s.ratio(100) == 0.25 and s.ratio(10_000) == 0.25
    assert s.ratio(50) == pytest.approx(0.625)
    values = [s.ratio(t) for t in range(0, 150, 5)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert s.ratio(100, mean_confidence=0.0) == 0.25  # not dynamic: confidence ignored
    assert TokenRatioSchedule(floor=0.4, warmup_steps=0).ratio(0) == 0.4
    dyn = TokenRatioSchedule(floor=0.25, warmup_steps=100, dynamic=True, confidence_target=0.5)
    assert dyn.ratio(200, mean_confidence=0.9) == 0.25  # confident: the base ratio
    assert dyn.ratio(200, mean_confidence=0.0) == 1.0  # lost: everything
    assert dyn.ratio(200, mean_confidence=0.25) == pytest.approx(0.25 + 0.5 * 0.75)
    lows = [dyn.ratio(200, mean_confidence=c / 10) for c in range(11)]
    assert all(a >= b for a, b in zip(lows, lows[1:]))
    strong = TokenRatioSchedule(floor=0.25, warmup_steps=100, dynamic=True, sensitivity=5.0)
    assert all(
        0.25 <= strong.ratio(t, mean_confidence=c / 10) <= 1.0
        for t in range(0, 200, 20)
        for c in range(11)
    )
    for bad, message in (
        ({"floor": 1.2}, "floor must be in [0, 1], got 1.2"),
        ({"floor": 0.5, "start": 0.4}, "start (0.4) must be >= floor (0.5)"),
        ({"warmup_steps": -1}, "warmup_steps must be an int >= 0, got -1"),
        ({"confidence_target": 0.0}, "confidence_target must be in (0, 1], got 0.0"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            TokenRatioSchedule(**bad)
    with pytest.raises(ValueError, match="step"):
        s.ratio(-1)
    with pytest.raises(ValueError, match="mean_confidence"):
        dyn.ratio(5, mean_confidence=1.5)


# ---------------------------------------------------------------------------- loss
def test_masked_token_loss_matches_manual_and_grads_only_selected():
    logits, labels = make(seed=8)
    logits.requires_grad_(True)
    d = token_difficulty(logits, labels, "loss")
    m = select_tokens(d, 0.4, "topk")
    loss = masked_token_loss(logits, labels, m)
    logp = torch.log_softmax(logits.detach().double(), dim=-1)[:, :-1]
    targets = labels[:, 1:]
    manual = torch.stack([-logp[b, t, targets[b, t]] for b, t in m.nonzero().tolist()]).mean()
    torch.testing.assert_close(loss.double(), manual, rtol=1e-6, atol=1e-6)
    # the selected tokens' own difficulty is their NLL
    torch.testing.assert_close(loss, d[m].mean())
    loss.backward()
    grad_rows = logits.grad.abs().sum(dim=-1)  # [B, T]
    selected_positions = torch.zeros_like(grad_rows, dtype=torch.bool)
    selected_positions[:, :-1] = m
    assert (grad_rows[selected_positions] > 0).all()
    assert (grad_rows[~selected_positions] == 0).all()


def test_masked_token_loss_ignores_masked_labels_and_empty_selection():
    logits, labels = make(seed=9)
    logits.requires_grad_(True)
    everything = torch.ones(labels.shape[0], labels.shape[1] - 1, dtype=torch.bool)
    valid = labels[:, 1:] != -100
    torch.testing.assert_close(
        masked_token_loss(logits, labels, everything), masked_token_loss(logits, labels, valid)
    )
    hf_style = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 13), labels[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(masked_token_loss(logits, labels, everything), hf_style)
    empty = masked_token_loss(logits, labels, torch.zeros_like(everything))
    assert empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    assert logits.grad is not None and (logits.grad == 0).all()
    with pytest.raises(ValueError, match="shape"):
        masked_token_loss(logits, labels, torch.ones_like(labels, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        masked_token_loss(logits, labels, everything.float())
    shifted = masked_token_loss(logits[:, :-1], labels[:, 1:], valid, shift=False)
    torch.testing.assert_close(shifted, masked_token_loss(logits, labels, valid))
