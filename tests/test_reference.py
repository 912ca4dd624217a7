"""cross_fit_reference_losses: reference losses for RHO-LOSS from models that never saw the sample."""

import numpy as np
import pytest

from gekodata.store.state_store import GEKOStateStore


def test_cross_fit_reference_losses_score_each_sample_with_a_model_that_never_saw_it():
    from gekodata.reference import cross_fit_reference_losses

    rng = np.random.default_rng(0)
    n = 101
    x = rng.normal(size=n)
    y = (x > 0).astype(int)
    y[:10] = 1 - y[:10]  # ten wrong labels
    trained_on = {}

    def make_model(k):
        return {"fold": k}

    def train(model, idx):  # "model": the mean input of each class among the training rows
        trained_on[model["fold"]] = set(idx.tolist())
        model["centre"] = [x[idx][y[idx] == c].mean() for c in (0, 1)]
        return 3 * len(idx)  # three epochs

    def loss(model, idx):
        assert not (set(idx.tolist()) & trained_on[model["fold"]])  # never scored by its own model
        logits = -np.abs(x[idx, None] - np.array(model["centre"])[None, :])
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return -logp[np.arange(len(idx)), y[idx]]

    store = GEKOStateStore(n)
    ref = cross_fit_reference_losses(n, make_model, train, loss, folds=2, seed=3, store=store)
    assert sorted(np.bincount(ref.fold).tolist()) == [50, 51]
    assert ref.train_passes == 3 * n and ref.score_passes == n and ref.seconds >= 0
    assert np.isfinite(ref.losses).all() and store.has_reference.all()
    np.testing.assert_allclose(store.reference_loss, ref.losses, rtol=1e-3)
    assert ref.losses[:10].mean() > ref.losses[10:].mean()  # wrong labels: high irreducible loss
    again = cross_fit_reference_losses(n, make_model, train, loss, folds=2, seed=3)
    np.testing.assert_array_equal(again.fold, ref.fold)  # the split depends on the seed only
    with pytest.raises(ValueError, match="folds"):
        cross_fit_reference_losses(n, make_model, train, loss, folds=1)
    with pytest.raises(ValueError, match="values for"):
        cross_fit_reference_losses(n, make_model, train, lambda m, idx: np.zeros(len(idx) + 1))
    fresh = GEKOStateStore(n)
    with pytest.raises(ValueError, match="finite"):
        cross_fit_reference_losses(
            n, make_model, train, lambda m, idx: np.full(len(idx), np.nan), store=fresh
        )
    assert "ref_loss_code" not in fresh.columns
