"""Every number the store keeps means what it says: stated error bounds, stated ranges, refusals."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gekodata.store.codec import LOSS_ABS_ERROR, LOSS_MAX, LOSS_MIN, LOSS_REL_ERROR, decode_loss, encode_loss
from gekodata.store.state_store import GEKOStateStore


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
    assert LOSS_MIN == 2.0**-24
    assert 2.0e31 < LOSS_MAX < 2.1e31
    assert 6.7e-4 < LOSS_REL_ERROR < 6.8e-4
    assert LOSS_ABS_ERROR == 2.0**-25
    assert decode_loss(np.array([0, 1, 65535], dtype=np.uint16)).tolist() == [
        0.0,
        np.float32(LOSS_MIN),
        LOSS_MAX,
    ]
    assert decode_loss(encode_loss(np.array([1.0]))).tolist() == [1.0]


def test_log_spaced_sweep_from_tiny_to_huge_losses_is_within_the_stated_bound():
    # 0, subnormals, below LOSS_MIN, the whole codec range, and exactly LOSS_MAX
    sweep = np.concatenate(
        [
            [0.0, 1e-45, 1e-30, LOSS_MIN / 3, LOSS_MIN / 2, LOSS_MIN * 0.9],
            np.logspace(np.log10(LOSS_MIN), np.log10(LOSS_MAX), 20001)[:-1],
            [LOSS_MAX],
        ]
    ).astype(np.float32)
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
    store.update(
        np.array([1]), np.array([1e30], dtype=np.float32), np.array([0.5]), np.array([0.0])
    )
    store.update(np.array([1]), np.array([0.0]), np.array([0.5]), np.array([0.0]))
    assert np.isfinite(store.loss_std[1]) and store.loss_std[1] == pytest.approx(
        0.5e30, rel=2 * LOSS_REL_ERROR
    )


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


# ------------------------------------------------------------------------------- loss scale
def _report(store, idx, loss):
    loss = np.asarray(loss, dtype=np.float32)
    store.update(np.asarray(idx), loss, np.full(len(loss), 0.5), np.zeros(len(loss)))


def test_one_outlier_in_a_small_sync_window_does_not_set_the_scale_for_the_run():
    store = GEKOStateStore(201)
    rng = np.random.default_rng(0)
    for step in range(100):  # sync windows of 2 rows
        loss = 0.5 + 0.05 * rng.standard_normal(2)
        if step == 10:
            loss[1] = 1e4
        _report(store, [2 * step % 200, (2 * step + 1) % 200], np.abs(loss))
    # old rule (running max of each update's 0.99-quantile): loss_scale ~ 9900 for the rest of
    # the run, and a later loss of 3.0 got reward 1 - 3/9900 -> Q ~ 0.9995 on a fresh sample
    assert store.loss_scale == store.min_loss_scale == 1.0
    _report(store, [200], [3.0])  # first visit: Q = reward
    assert store.q_value[200] == 0.0


def test_loss_scale_is_the_quantile_of_every_reported_loss_and_can_fall():
    store = GEKOStateStore(10, loss_scale_quantile=0.5, min_loss_scale=1e-3)
    _report(store, [0, 1], [8.0, 9.0])
    assert store.loss_scale == 8.0  # the 1st of 2 losses, exactly (largest loss in its bin)
    _report(store, [2, 3, 4], [0.1, 0.1, 0.1])
    assert store.loss_scale == pytest.approx(0.1)  # the median of 5 reports
    # duplicates count with their multiplicity; row order does not matter
    a, b = GEKOStateStore(3), GEKOStateStore(3)
    idx, loss = np.array([0, 0, 1, 2, 0]), np.array([5.0, 7.0, 1.5, 30.0, 2.0])
    _report(a, idx, loss)
    _report(b, idx[::-1], loss[::-1])
    assert a.loss_hist_counts.sum() == 5
    np.testing.assert_array_equal(a.loss_hist_counts, b.loss_hist_counts)
    np.testing.assert_array_equal(a.loss_hist_max, b.loss_hist_max)
    assert a.loss_scale == b.loss_scale


@settings(max_examples=150, deadline=None)
@given(
    inliers=st.lists(st.floats(0, 50, width=32), min_size=1, max_size=200),
    outlier_share=st.floats(0, 1),
    outlier=st.floats(1e3, float(np.float32(1e30)), width=32),
    q=st.sampled_from([0.5, 0.9, 0.99, 0.999]),
    window=st.integers(1, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_fraction_of_outliers_below_1_minus_q_cannot_raise_the_scale(
    inliers, outlier_share, outlier, q, window, seed
):
    """The module docstring's tolerance: outliers of share < 1 - q leave loss_scale <= the
    largest inlier times one bin width (2^(1/8)), in any order and any window size."""
    n_in = len(inliers)
    n_out = int(outlier_share * (1 - q) * n_in / q)  # share n_out / (n_in + n_out) < 1 - q
    while n_out > 0 and not n_out < (1 - q) * (n_in + n_out):
        n_out -= 1
    losses = np.array(inliers + [outlier] * n_out, dtype=np.float32)
    np.random.default_rng(seed).shuffle(losses)
    store = GEKOStateStore(8, loss_scale_quantile=q, min_loss_scale=1e-6)
    for start in range(0, len(losses), window):
        chunk = losses[start : start + window]
        _report(store, np.arange(len(chunk)), chunk)
    bound = max(max(inliers) * 2 ** (1 / 8), 1e-6)
    assert store.loss_scale <= bound


def test_histogram_round_trips_bitwise_through_state_dict_store_and_sampler_files(tmp_path):
    from gekodata.store.files import read_sampler_file, sampler_file_store_state, write_sampler_file

    store = GEKOStateStore(30, loss_scale_quantile=0.9)
    rng = np.random.default_rng(1)
    _report(store, rng.integers(0, 30, 100), rng.exponential(2.0, 100))
    clone = GEKOStateStore.from_state_dict(store.state_dict())
    path = tmp_path / "s.safetensors"
    store.save(path)
    from_file = GEKOStateStore.from_file(path)
    sampler_path = tmp_path / "sampler.safetensors"
    write_sampler_file(
        sampler_path, store.state_dict(), {"plan": np.arange(3)}, {"num_samples": 30}
    )
    from_sampler = GEKOStateStore.from_state_dict(
        sampler_file_store_state(*read_sampler_file(sampler_path))
    )
    for other in (clone, from_file, from_sampler):
        assert other.loss_scale == store.loss_scale
        np.testing.assert_array_equal(other.loss_hist_counts, store.loss_hist_counts)
        np.testing.assert_array_equal(other.loss_hist_max, store.loss_hist_max)
        for name, col in store.columns.items():
            np.testing.assert_array_equal(other.columns[name], col)
        # and they keep evolving identically
        _report(other, [3, 4], [9.0, 0.25])
    _report(store, [3, 4], [9.0, 0.25])
    assert all(o.loss_scale == store.loss_scale for o in (clone, from_file, from_sampler))
    bad = store.state_dict()
    bad["loss_hist_counts"] = bad["loss_hist_counts"][:-1]
    with pytest.raises(ValueError, match="loss_hist_counts"):
        GEKOStateStore(30).load_state_dict(bad)


# ------------------------------------------------------------------------ validation
def test_validate_checks_values_as_float32():
    store = GEKOStateStore(4)
    # passed the float64 checks before and overflowed to inf in the sampler's float32 buffer
    with pytest.raises(
        ValueError, match=r"loss must be finite \(as float32.*entry 0 is 1e\+39 \(idx 0\)"
    ):
        store.validate(np.array([0, 1]), np.array([1e39, 1.0]))
    with pytest.raises(ValueError, match=r"largest loss.*entry 1"):
        store.validate(np.array([0, 1]), np.array([1.0, 1e32]))
    store.validate(np.array([0, 1]), np.array([1.0, LOSS_MAX]))  # the top is accepted
    snap = {k: v.copy() for k, v in store.columns.items()}
    with pytest.raises(ValueError, match="finite"):
        store.update(
            np.array([0, 1]), np.array([1e39, 1.0]), np.array([0.5, 0.5]), np.array([0.0, 0.0])
        )
    for k, v in snap.items():
        np.testing.assert_array_equal(store.columns[k], v)
    assert store.loss_hist_counts.sum() == 0 and store.total_updates == 0


def test_invalid_rows_flags_exactly_the_rows_validate_refuses():
    store = GEKOStateStore(5)
    idx = np.array([0, 5, -1, 1, 2, 3, 4, 0, 1, 2, 3])
    loss = np.array([0.1, 0.1, 0.1, np.nan, 1e39, -1.0, 1e32, 0.2, 0.3, 0.4, 0.5])
    conf = np.array([0.5] * 7 + [1.5, np.nan, 0.5, 0.5])
    correct = np.array([1.0] * 9 + [-0.1, 1.0])
    pred = np.array([3] * 10 + [-2])
    bad = store.invalid_rows(idx, loss, conf, correct, pred)
    assert bad.dtype == bool and bad.tolist() == [False] + [True] * 10
    messages = [
        "idx 5 (entry 1) out of range for a dataset of 5 samples",
        "idx -1 (entry 1) out of range for a dataset of 5 samples",
        "loss must be finite (as float32, the dtype the store computes in); entry 1 is nan (idx 1)",
        "loss must be finite (as float32, the dtype the store computes in); entry 1 is 1e+39 (idx 2)",
        "loss must be >= 0; entry 1 is -1.0 (idx 3)",
        "loss must be <= 2.023e+31, the largest loss the store can hold",
        "conf must be in [0, 1]; entry 1 is 1.5 (idx 0)",
        "conf must be in [0, 1]; entry 1 is nan (idx 1)",
        "correct must be in [0, 1]; entry 1 is -0.1 (idx 2)",
        "pred must be labels in [0, 2^31) or -1 (unknown); entry 1 is -2 (idx 3)",
    ]
    assert len(messages) == len(idx) - 1
    for row, message in zip(range(1, len(idx)), messages):  # each bad row alone is refused
        keep = np.array([0, row])
        with pytest.raises(ValueError, match=re.escape(message)):
            store.validate(idx[keep], loss[keep], conf[keep], correct[keep], pred[keep])
    store.validate(idx[~bad], loss[~bad], conf[~bad], correct[~bad], pred[~bad])
    assert store.invalid_rows(np.array([], dtype=np.int64), np.array([])).shape == (0,)
    with pytest.raises(ValueError, match="same length"):
        store.invalid_rows(np.array([0, 1]), np.array([0.1]))
    with pytest.raises(ValueError, match="integers"):
        store.invalid_rows(np.array([0.0]), np.array([0.1]))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-2, 6),
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(-0.5, 1.5) | st.just(float("nan")),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_invalid_rows_and_validate_agree(rows):
    store = GEKOStateStore(5)
    idx = np.array([r[0] for r in rows])
    loss = np.array([r[1] for r in rows])
    conf = np.array([r[2] for r in rows])
    bad = store.invalid_rows(idx, loss, conf)
    if bad.any():
        with pytest.raises(
            ValueError,
            match=r"out of range for a dataset|must be finite|must be >= 0|must be <=|must be in",
        ):
            store.validate(idx, loss, conf)
    else:
        store.validate(idx, loss, conf)
    store.validate(idx[~bad], loss[~bad], conf[~bad])  # the rest is always accepted


def test_update_validated_skips_the_second_pass_with_the_same_result():
    a, b = GEKOStateStore(6), GEKOStateStore(6)
    idx, loss = np.array([0, 3, 3, 5]), np.array([0.5, 2.0, 4.0, 1e5])
    conf, correct = np.array([0.2, 0.9, 0.7, 0.1]), np.array([0.0, 1.0, 1.0, 0.0])
    a.validate(idx, loss, conf, correct)
    a.update(idx, loss, conf, correct, validated=True)
    b.update(idx, loss, conf, correct)
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k])
    assert a.loss_scale == b.loss_scale
    with pytest.raises(
        ValueError, match=re.escape("idx 9 (entry 0) out of range for a dataset of 6 samples")
    ):
        # default: still validates
        b.update(np.array([9]), np.array([1.0]), np.array([0.5]), np.array([0.0]))


