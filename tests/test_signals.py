import math

import pytest
import torch

from gekodata.signals import causal_lm_signals, classification_signals


def reference_lm(logits, labels, ignore_index=-100):
    """Direct per-token loop: shift, skip ignore_index, average per sample."""
    out = []
    for b in range(logits.shape[0]):
        nll, prob, hits, n = 0.0, 0.0, 0, 0
        for t in range(logits.shape[1] - 1):
            target = int(labels[b, t + 1])
            if target == ignore_index:
                continue
            logp = torch.log_softmax(logits[b, t].double(), dim=-1)
            nll -= float(logp[target])
            prob += math.exp(float(logp[target]))
            hits += int(int(logits[b, t].argmax()) == target)
            n += 1
        out.append((nll / n, prob / n, hits, n))
    return out


def test_causal_lm_matches_per_token_reference_with_masking():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = -100  # prompt
    labels[1, 5:] = -100  # padding
    labels[2, 2] = -100
    loss, conf, correct = causal_lm_signals(logits, labels, correct=0.0)
    ref = reference_lm(logits, labels)
    for b, (nll, prob, _, _) in enumerate(ref):
        assert loss[b].item() == pytest.approx(nll, rel=1e-5)
        assert conf[b].item() == pytest.approx(prob, rel=1e-5)
    assert correct.all()  # threshold 0 accepts every sample


def test_causal_lm_correctness_rules():
    vocab = 5
    labels = torch.tensor([[-100, 1, 2, 3], [-100, 1, 2, 3]])
    logits = torch.zeros(2, 4, vocab)
    # sample 0 predicts every next token; sample 1 misses the last one
    for t, tok in enumerate([1, 2, 3]):
        logits[0, t, tok] = 5.0
        logits[1, t, tok if t < 2 else 4] = 5.0
    _, _, exact = causal_lm_signals(logits, labels)
    assert exact.tolist() == [True, False]
    _, _, two_thirds = causal_lm_signals(logits, labels, correct=0.6)
    assert two_thirds.tolist() == [True, True]
    _, _, custom = causal_lm_signals(
        logits, labels, correct=lambda pred, lab, mask: pred[:, -1] == lab[:, -1]
    )
    assert custom.tolist() == [True, False]


def test_causal_lm_loss_is_differentiable_and_shift_false():
    logits = torch.randn(2, 4, 6, requires_grad=True)
    labels = torch.randint(0, 6, (2, 4))
    loss, conf, _ = causal_lm_signals(logits, labels)
    assert loss.requires_grad and not conf.requires_grad
    loss.sum().backward()
    assert (
        logits.grad is not None and logits.grad[:, -1].abs().sum() == 0
    )  # last position predicts nothing
    shifted, _, _ = causal_lm_signals(logits[:, :-1].detach(), labels[:, 1:], shift=False)
    torch.testing.assert_close(shifted, loss.detach())


def test_sample_without_targets_has_nothing_to_learn():
    logits = torch.randn(2, 3, 4)
    labels = torch.tensor([[-100, -100, -100], [-100, 1, 2]])
    loss, conf, correct = causal_lm_signals(logits, labels)
    assert loss[0] == 0 and conf[0] == 1 and bool(correct[0])
    assert torch.isfinite(loss).all()


def test_causal_lm_errors():
    logits = torch.randn(2, 5, 7)
    with pytest.raises(ValueError, match="already shifted"):
        causal_lm_signals(logits, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids in"):
        causal_lm_signals(logits, torch.full((2, 5), 9))
    with pytest.raises(ValueError, match="integer"):
        causal_lm_signals(logits, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="correct must be"):
        causal_lm_signals(logits, torch.zeros(2, 5, dtype=torch.long), correct="fuzzy")
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        causal_lm_signals(torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.long))


def test_classification_signals():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True)
    targets = torch.tensor([0, 1])
    loss, conf, correct = classification_signals(logits, targets)
    expected = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(conf, torch.softmax(logits.detach(), -1)[[0, 1], [0, 1]])
    assert correct.tolist() == [True, False]
    loss.mean().backward()
    assert logits.grad is not None


def test_classification_bf16_logits_give_float32_signals():
    logits = torch.randn(4, 3).bfloat16()
    loss, conf, _ = classification_signals(logits, torch.tensor([0, 1, 2, 0]))
    assert loss.dtype == torch.float32 and conf.dtype == torch.float32


def test_classification_errors():
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        classification_signals(torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="match logits"):
        classification_signals(torch.randn(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        classification_signals(torch.randn(2, 3), torch.zeros(2))
