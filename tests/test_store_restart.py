"""``GEKOStateStore.update(..., restart=idx)``: the forgetting audit's restart inside one update.
Restarted rows fold the window as a first observation while their visits keep counting, exactly
as resetting them, updating and adding the cleared visits back."""
from __future__ import annotations

import numpy as np

from gekodata import GEKOStateStore
from gekodata.store.layout import MAX_VISITS


def _seen_store(n: int, rng: np.random.Generator) -> GEKOStateStore:
    store = GEKOStateStore(n)
    for _ in range(3):
        idx = rng.integers(0, n, size=2 * n)
        store.update(idx, rng.exponential(size=idx.size), rng.random(idx.size), rng.random(idx.size) > 0.5)
    return store


def test_restart_equals_reset_update_and_visits_added_back():
    rng = np.random.default_rng(0)
    n = 200
    a = _seen_store(n, rng)
    b = GEKOStateStore(n)
    b.load_state_dict(a.state_dict())
    idx = rng.integers(0, n, size=300)
    loss, conf, correct = rng.exponential(size=300), rng.random(300), rng.random(300) > 0.5
    restart = np.unique(idx[:40])

    a.update(idx, loss, conf, correct, restart=restart)

    visits = b.visits[restart].astype(np.int64)
    b.reset(restart)
    b.update(idx, loss, conf, correct)
    b.visits[restart] = np.minimum(visits + b.visits[restart], MAX_VISITS)

    sa, sb = a.state_dict(), b.state_dict()
    for name in sa["columns"]:
        np.testing.assert_array_equal(sa["columns"][name], sb["columns"][name], err_msg=name)


def test_restart_keeps_visits_and_restarts_the_loss_ema():
    store = GEKOStateStore(4)
    store.update(np.array([0, 0, 1]), np.full(3, 0.1), np.full(3, 0.9), np.ones(3))
    store.update(np.array([0]), np.array([5.0]), np.array([0.1]), np.zeros(1), restart=np.array([0]))
    assert store.visits[0] == 3 and store.visits[1] == 1
    assert abs(float(store.loss_of(np.array([0]))[0]) - 5.0) < 5.0 * 1e-3
