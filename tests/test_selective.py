import math
import re
from collections import namedtuple

import numpy as np
import pytest
import torch

from gekodata import GEKOStateStore
from gekodata.selective import (
    SelectiveBackprop,
    importance_weights,
    inclusion_probabilities,
    num_kept,
    select_rows,
    store_scores,
    subset_batch,
)


def scores_of(b=20, seed=0):
    return torch.rand(b, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("strategy", ["topk", "random", "weighted"])
@pytest.mark.parametrize("fraction", [0.01, 0.25, 0.5, 0.66, 1.0])
def test_select_rows_count_unique_sorted(strategy, fraction):
    s = scores_of()
    rows = select_rows(s, fraction, strategy, generator=torch.Generator().manual_seed(1))
    k = max(1, math.floor(fraction * 20 + 0.5))
    assert rows.dtype == torch.int64 and rows.shape == (k,) == (num_kept(20, fraction),)
    assert torch.equal(rows, torch.unique(rows))  # unique and increasing
    assert rows.min() >= 0 and rows.max() < 20
    if fraction == 1.0:
        assert torch.equal(rows, torch.arange(20))


def test_topk_rows_are_the_highest_and_inf_first():
    s = scores_of(seed=2)
    rows = select_rows(s, 0.3, "topk")
    kept = torch.zeros(20, dtype=torch.bool)
    kept[rows] = True
    assert s[kept].min() > s[~kept].max()
    s[5] = float("inf")
    s[7] = -float("inf")
    rows = select_rows(s, 0.05, "topk")
    assert rows.tolist() == [5]
    with pytest.raises(ValueError, match="NaN"):
        select_rows(torch.tensor([0.1, float("nan")]), 0.5)


def test_random_and_weighted_are_seeded():
    s = scores_of(seed=3)
    for strategy in ("random", "weighted"):
        a = select_rows(s, 0.4, strategy, generator=torch.Generator().manual_seed(9))
        b = select_rows(s, 0.4, strategy, generator=torch.Generator().manual_seed(9))
        assert torch.equal(a, b)
        draws = {
            tuple(
                select_rows(s, 0.4, strategy, generator=torch.Generator().manual_seed(i)).tolist()
            )
            for i in range(10)
        }
        assert len(draws) > 1


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_weighted_inclusion_probabilities_hold_and_weights_are_unbiased(fraction):
    b = 12
    s = scores_of(b, seed=4)
    pi = inclusion_probabilities(s, fraction, "weighted")
    k = num_kept(b, fraction)
    assert pi.sum().item() == pytest.approx(k)
    assert (pi > 0).all() and (pi <= 1).all()
    # biased towards high scores: probabilities are non-decreasing in the score
    by_score = pi[torch.argsort(s)]
    assert (by_score[1:] >= by_score[:-1]).all() and by_score[-1] > by_score[0]
    losses = s.double() * 3 + 0.1
    g = torch.Generator().manual_seed(0)
    trials = 2500
    counts = torch.zeros(b, dtype=torch.float64)
    estimate = 0.0
    for _ in range(trials):
        rows = select_rows(s, fraction, "weighted", generator=g)
        counts[rows] += 1
        w = importance_weights(s, rows, fraction, "weighted").double()
        estimate += float((w * losses[rows]).mean())
    freq = counts / trials
    assert (freq - pi).abs().max() < 0.05  # ~5 standard errors at 2500 trials
    assert estimate / trials == pytest.approx(float(losses.mean()), rel=0.02)


def test_random_weights_are_ones_and_topk_has_none():
    s = scores_of()
    rows = select_rows(s, 0.3, "random", generator=torch.Generator().manual_seed(0))
    assert torch.equal(importance_weights(s, rows, 0.3, "random"), torch.ones(6))
    assert torch.equal(
        inclusion_probabilities(s, 0.3, "random"), torch.full((20,), 0.3, dtype=torch.float64)
    )
    topk_pi = inclusion_probabilities(s, 0.3, "topk")
    assert set(topk_pi.tolist()) == {0.0, 1.0} and topk_pi.sum() == 6
    assert torch.equal(topk_pi.nonzero().squeeze(1), select_rows(s, 0.3, "topk"))
    ties = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0])
    assert select_rows(ties, 0.4, "topk").tolist() == [1, 2]  # ties: lower index first
    with pytest.raises(ValueError, match="deterministic"):
        importance_weights(s, select_rows(s, 0.3), 0.3, "topk")


def test_select_rows_rejects_bad_input():
    s = scores_of()
    for fraction in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            select_rows(s, fraction)
    with pytest.raises(ValueError, match="strategy"):
        select_rows(s, 0.5, "hardest")
    with pytest.raises(ValueError, match="1-D"):
        select_rows(s.view(4, 5), 0.5)
    with pytest.raises(ValueError, match="empty"):
        select_rows(torch.zeros(0), 0.5)
    with pytest.raises(TypeError, match="scores must be a 1-D torch tensor, got list"):
        select_rows([0.1, 0.2], 0.5)


def test_subset_batch_indexes_nested_tensors_and_passes_the_rest():
    Pair = namedtuple("Pair", "a b")
    batch = {
        "input_ids": torch.arange(12).view(6, 2),
        "idx": torch.arange(10, 16),
        "meta": {"weights": np.arange(6.0), "name": "x", "scalar": torch.tensor(3.0)},
        "pair": Pair(torch.arange(6), 7),
        "list": [torch.arange(6) * 2, None],
        "tuple": (torch.ones(6, 3),),
    }
    rows = torch.tensor([1, 4])
    sub = subset_batch(batch, rows)
    assert torch.equal(sub["input_ids"], torch.tensor([[2, 3], [8, 9]]))
    assert torch.equal(sub["idx"], torch.tensor([11, 14]))
    assert np.array_equal(sub["meta"]["weights"], np.array([1.0, 4.0]))
    assert sub["meta"]["name"] == "x" and sub["meta"]["scalar"].item() == 3.0
    assert isinstance(sub["pair"], Pair) and torch.equal(sub["pair"].a, rows) and sub["pair"].b == 7
    assert torch.equal(sub["list"][0], torch.tensor([2, 8])) and sub["list"][1] is None
    assert isinstance(sub["tuple"], tuple) and sub["tuple"][0].shape == (2, 3)
    assert torch.equal(subset_batch(torch.arange(6) * 3, rows), torch.tensor([3, 12]))
    assert torch.equal(subset_batch(batch["input_ids"], np.array([0])), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="rows"):
        subset_batch(batch, torch.tensor([0.5]))


def test_store_scores_use_loss_ema_and_rank_unseen_first():
    store = GEKOStateStore(10, ema_alpha=1.0)
    store.update(
        np.array([0, 1, 2, 3]), np.array([0.5, 2.0, 1.0, 0.25]), np.full(4, 0.5), np.zeros(4)
    )
    idx = torch.tensor([3, 1, 7, 0])
    s = store_scores(store, idx)
    assert s.dtype == torch.float32
    assert s[0].item() == pytest.approx(0.25, rel=1e-3) and s[1].item() == pytest.approx(
        2.0, rel=1e-3
    )
    assert s[2].item() == math.inf
    sb = SelectiveBackprop(0.5)
    rows = sb.select_from_store(store, idx)
    assert idx[rows].tolist() == [1, 7]  # unseen 7 and the hardest seen sample 1
    assert sb.samples_scored == 0 and sb.samples_backpropagated == 2

    class HasStore:
        pass

    holder = HasStore()
    holder.store = store
    assert torch.equal(store_scores(holder, idx), s)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        store_scores(store, torch.tensor([10]))
    with pytest.raises(
        TypeError,
        match=re.escape("store must be a GEKOStateStore (or hold one as .store), got object"),
    ):
        store_scores(object(), idx)


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)
        )

    def forward(self, x):
        return self.body(x)


def grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


def test_subset_backward_equals_masked_full_batch_backward():
    torch.manual_seed(0)  # test-only seeding of the model init
    model = TinyNet()
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.randn(16, 6, generator=g), "y": torch.randint(0, 4, (16,), generator=g)}
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    sb = SelectiveBackprop(0.25, "topk")
    with torch.no_grad():
        scores = loss_fn(model(batch["x"]), batch["y"])
    rows = sb.select(scores)
    assert rows.numel() == 4
    # selective: a grad forward on the 4 kept rows only
    sub = subset_batch(batch, rows)
    model.zero_grad()
    loss_fn(model(sub["x"]), sub["y"]).mean().backward()
    selective = grads(model)
    # reference: the full-batch loss restricted (masked) to those rows, normalised by k
    model.zero_grad()
    mask = torch.zeros(16)
    mask[rows] = 1.0
    (loss_fn(model(batch["x"]), batch["y"]) * mask).sum().div(4).backward()
    for a, b in zip(selective, grads(model)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # and the kept rows are the highest-loss ones
    assert scores[rows].min() >= scores[mask == 0].max()


def test_weighted_rows_with_importance_weights_match_masked_reference():
    torch.manual_seed(0)
    model = TinyNet()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(10, 6, generator=g), torch.randint(0, 4, (10,), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    sb = SelectiveBackprop(0.5, "weighted", generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        scores = loss_fn(model(x), y)
    rows = sb.select(scores)
    w = sb.importance_weights()
    model.zero_grad()
    (loss_fn(model(x[rows]), y[rows]) * w).mean().backward()
    selective = grads(model)
    model.zero_grad()
    full_w = torch.zeros(10)
    full_w[rows] = w
    (loss_fn(model(x), y) * full_w).sum().div(rows.numel()).backward()
    for a, b in zip(selective, grads(model)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_counters_and_cost_summary_add_up():
    sb = SelectiveBackprop(0.25, "random", generator=torch.Generator().manual_seed(0))
    for b in (16, 16, 8):
        sb.select(scores_of(b))
    sb.select(scores_of(16), scoring_pass=False)
    assert sb.steps == 4
    assert sb.samples_seen == 56 and sb.samples_scored == 40
    assert sb.samples_backpropagated == 4 + 4 + 2 + 4
    sb.record_time(scoring=0.5, training=1.5)
    with sb.timer("training"):
        pass
    cost = sb.cost_summary()
    assert cost["flop_units_full"] == 3 * 56
    assert cost["flop_units_selective"] == 40 + 3 * 14
    assert cost["flop_ratio"] == pytest.approx((40 + 42) / 168)
    lora = sb.cost_summary(backward_cost=1.0)  # frozen base: a backward costs about one forward
    assert lora["flop_units_full"] == 2 * 56 and lora["flop_units_selective"] == 40 + 2 * 14
    with pytest.raises(ValueError, match="backward_cost"):
        sb.cost_summary(backward_cost=-1)
    assert cost["kept_fraction"] == pytest.approx(14 / 56)
    assert cost["scoring_seconds"] == 0.5 and cost["training_seconds"] >= 1.5
    assert cost["total_seconds"] == pytest.approx(
        cost["scoring_seconds"] + cost["training_seconds"]
    )
    state = sb.state_dict()
    other = SelectiveBackprop(0.25, "random", generator=torch.Generator().manual_seed(5))
    other.load_state_dict(state)
    assert other.cost_summary() == sb.cost_summary()
    s = scores_of(16, seed=9)
    assert torch.equal(other.select(s), sb.select(s))  # generator state restored too
    sb.reset()
    assert sb.cost_summary()["samples_seen"] == 0.0
    # break-even: scoring forward + kept*3 < full*3 only below 2/3
    heavy = SelectiveBackprop(0.75)
    heavy.select(scores_of(20))
    assert heavy.cost_summary()["flop_ratio"] > 1.0


def test_selective_backprop_rejects_bad_input():
    with pytest.raises(ValueError, match="fraction"):
        SelectiveBackprop(0.0)
    with pytest.raises(ValueError, match="strategy"):
        SelectiveBackprop(0.5, "hardest")
    sb = SelectiveBackprop(0.5, "random")
    with pytest.raises(ValueError, match="select"):
        sb.importance_weights()
    with pytest.raises(ValueError, match="phase"), sb.timer("eval"):
        pass
    with pytest.raises(ValueError, match="seconds"):
        sb.record_time(scoring=-1.0)
