"""Every number the store keeps means what it says: stated error bounds, stated ranges, refusals."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gekodata.state import (
    LOSS_ABS_ERROR,
    LOSS_MAX,
    LOSS_MIN,
    LOSS_REL_ERROR,
    GEKOStateStore,
    decode_loss,
    encode_loss,
)


def _bound(x: np.ndarray) -> np.ndarray:
    """The module docstring's bound: |stored - x| <= LOSS_REL_ERROR * x + LOSS_ABS_ERROR."""
    return LOSS_REL_ERROR * x.astype(np.float64) + LOSS_ABS_ERROR


def _stored_first_report(losses: np.ndarray) -> np.ndarray:
    store = GEKOStateStore(len(losses))
    store.update(np.arange(len(losses)), losses, np.full(len(losses), 0.5), np.zeros(len(losses)))
    return store.loss


def test_default_columns_stay_within_12_bytes_per_sample():
    store = GEKOStateStore(1000)
    assert store.nbytes / store.num_samples <= 12


def test_stated_constants():
    assert LOSS_MIN == 2.0 ** -24
    assert 2.0e31 < LOSS_MAX < 2.1e31
    assert 6.7e-4 < LOSS_REL_ERROR < 6.8e-4
    assert LOSS_ABS_ERROR == 2.0 ** -25
    assert decode_loss(np.array([0, 1, 65535], dtype=np.uint16)).tolist() == [0.0, np.float32(LOSS_MIN), LOSS_MAX]
    assert decode_loss(encode_loss(np.array([1.0]))).tolist() == [1.0]


def test_log_spaced_sweep_from_tiny_to_huge_losses_is_within_the_stated_bound():
    # 0, subnormals, below LOSS_MIN, the whole codec range, and exactly LOSS_MAX
    sweep = np.concatenate([
        [0.0, 1e-45, 1e-30, LOSS_MIN / 3, LOSS_MIN / 2, LOSS_MIN * 0.9],
        np.logspace(np.log10(LOSS_MIN), np.log10(LOSS_MAX), 20001)[:-1],
        [LOSS_MAX],
    ]).astype(np.float32)
    sweep = sweep[sweep <= np.float32(LOSS_MAX)]
    stored = _stored_first_report(sweep)
    err = np.abs(stored.astype(np.float64) - sweep.astype(np.float64))
    assert (err <= _bound(sweep)).all(), sweep[err > _bound(sweep)][:5]
    # the old fp16 column: 7e4 and 1e5 were both stored as 65504
    assert stored[np.searchsorted(sweep, 7e4)] < stored[np.searchsorted(sweep, 1e5)]
    huge = _stored_first_report(np.array([7e4, 1e5, 1e20], dtype=np.float32))
    np.testing.assert_allclose(huge, [7e4, 1e5, 1e20], rtol=LOSS_REL_ERROR)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, LOSS_MAX, width=32, allow_subnormal=True), min_size=1, max_size=50))
def test_any_accepted_float32_loss_is_stored_within_the_bound(losses):
    x = np.array(losses, dtype=np.float32)
    stored = _stored_first_report(x)
    assert (np.abs(stored.astype(np.float64) - x.astype(np.float64)) <= _bound(x)).all()


@settings(max_examples=100, deadline=None)
@given(st.floats(0, float(np.finfo(np.float32).max), width=32))
def test_every_finite_float32_loss_is_stored_or_refused(x):
    store = GEKOStateStore(1)
    args = (np.array([0]), np.array([x], dtype=np.float32), np.array([0.5]), np.array([0.0]))
    if x > LOSS_MAX:
        with pytest.raises(ValueError, match="largest loss"):
            store.update(*args)
        assert store.visits[0] == 0
    else:
        store.update(*args)
        assert abs(float(store.loss[0]) - x) <= _bound(np.array([x]))[0]


def test_std_is_in_loss_units_and_does_not_saturate():
    store = GEKOStateStore(2, ema_alpha=0.5)
    for value in (1000.0, 1600.0):  # the old variance saturated once a loss moved by ~512
        store.update(np.array([0]), np.array([value]), np.array([0.5]), np.array([0.0]))
    # West's EW variance after x1, x2 with a = 0.5: (1 - a) a (x2 - x1)^2 -> std = 0.5 * 600
    assert store.loss_std[0] == pytest.approx(300.0, rel=2 * LOSS_REL_ERROR)
    assert store.stability[0] == pytest.approx(1 - 300.0, rel=2 * LOSS_REL_ERROR)
    assert store.loss_std[1] == 0 and store.stability[1] == 1
    # huge losses: no float32 overflow in the variance arithmetic
    store.update(np.array([1]), np.array([1e30], dtype=np.float32), np.array([0.5]), np.array([0.0]))
    store.update(np.array([1]), np.array([0.0]), np.array([0.5]), np.array([0.0]))
    assert np.isfinite(store.loss_std[1]) and store.loss_std[1] == pytest.approx(0.5e30, rel=2 * LOSS_REL_ERROR)


def test_ema_follows_a_constant_input_to_within_the_stated_dead_band():
    for alpha in (0.5, 0.1):
        store = GEKOStateStore(1, ema_alpha=alpha)
        store.update(np.array([0]), np.array([1000.0]), np.array([0.5]), np.array([0.0]))
        for _ in range(200):
            store.update(np.array([0]), np.array([1010.0]), np.array([0.5]), np.array([0.0]))
        assert abs(store.loss[0] - 1010.0) <= 1010.0 * LOSS_REL_ERROR / alpha + 1e-3


def test_loss_of_reads_only_the_given_rows_decoded():
    store = GEKOStateStore(5)
    store.update(np.array([1, 3]), np.array([2.5, 7e5]), np.array([0.5, 0.5]), np.array([0.0, 0.0]))
    got = store.loss_of(np.array([3, 0, 1]))
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_array_equal(got, store.loss[[3, 0, 1]])
    np.testing.assert_allclose(got, [7e5, 0.0, 2.5], rtol=LOSS_REL_ERROR)
