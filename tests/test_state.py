import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gekodata.store.layout import COLUMNS
from gekodata.store.state_store import GEKOStateStore


def snapshot(store):
    return {k: v.copy() for k, v in store.columns.items()}, store.loss_scale, store.total_updates


def assert_same(store, snap):
    cols, scale, updates = snap
    for k, v in cols.items():
        np.testing.assert_array_equal(store.columns[k], v)
    assert store.loss_scale == scale and store.total_updates == updates


def test_default_columns_fit_12_bytes_per_sample():
    store = GEKOStateStore(1000)
    assert sum(dtype.itemsize for dtype in COLUMNS.values()) <= 12
    assert store.nbytes == 1000 * 12


def test_first_update_initialises_emas_then_averages():
    store = GEKOStateStore(4, ema_alpha=0.5)
    store.update(np.array([1]), np.array([2.0]), np.array([0.2]), np.array([0.0]))
    assert store.loss[1] == pytest.approx(2.0)
    assert store.confidence[1] == pytest.approx(0.2, abs=1 / 255)
    assert store.visits.tolist() == [0, 1, 0, 0]
    assert not store.last_correct[1]
    assert store.stability[1] == pytest.approx(1.0)
    store.update(np.array([1]), np.array([1.0]), np.array([0.8]), np.array([1.0]))
    assert store.loss[1] == pytest.approx(1.5, rel=1e-3)
    assert store.confidence[1] == pytest.approx(0.5, abs=1 / 255)
    assert store.correctness[1] == pytest.approx(0.5, abs=1 / 255)
    assert store.last_correct[1]
    # West's exponentially weighted variance after two losses 2 -> 1 with alpha 0.5: 0.25
    assert store.stability[1] == pytest.approx(1 - 0.5, abs=1e-3)
    assert store.visits[1] == 2


def test_q_value_uses_observed_loss_scale():
    store = GEKOStateStore(100, loss_scale_quantile=1.0)
    losses = np.linspace(0.0, 2.0, 100)
    store.update(np.arange(100), losses, np.full(100, 0.5), np.zeros(100))
    assert store.loss_scale == pytest.approx(2.0)
    np.testing.assert_allclose(store.q_value, 1 - losses / 2.0, atol=1e-3)
    # a later, lower-loss batch moves Q by q_rate toward its reward
    store.update(np.array([99]), np.array([0.0]), np.array([0.9]), np.array([1.0]))
    assert store.q_value[99] == pytest.approx(0.0 + 0.1 * (1.0 - 0.0), abs=1e-3)


def test_duplicates_are_averaged_order_independently():
    a = GEKOStateStore(5)
    b = GEKOStateStore(5)
    idx = np.array([3, 1, 3, 3])
    loss = np.array([1.0, 0.5, 2.0, 3.0])
    conf = np.array([0.1, 0.9, 0.3, 0.5])
    corr = np.array([0.0, 1.0, 1.0, 1.0])
    a.update(idx, loss, conf, corr)
    order = np.array([2, 0, 3, 1])
    b.update(idx[order], loss[order], conf[order], corr[order])
    for k in COLUMNS:
        np.testing.assert_array_equal(a.columns[k], b.columns[k])
    assert a.visits[3] == 3 and a.visits[1] == 1
    assert a.loss[3] == pytest.approx(2.0)
    assert a.confidence[3] == pytest.approx(0.3, abs=1 / 255)
    assert a.last_correct[3]  # mean correctness 2/3 >= 0.5
    assert a.total_updates == 4


@pytest.mark.parametrize(
    "idx, loss, conf, correct, match",
    [
        ([0, 1], [0.1], [0.5, 0.5], [1, 1], "same length"),
        ([0, 7], [0.1, 0.2], [0.5, 0.5], [1, 1], "out of range"),
        ([0, -1], [0.1, 0.2], [0.5, 0.5], [1, 1], "out of range"),
        ([0, 1], [0.1, np.nan], [0.5, 0.5], [1, 1], "finite"),
        ([0, 1], [0.1, np.inf], [0.5, 0.5], [1, 1], "finite"),
        ([0, 1], [0.1, -0.2], [0.5, 0.5], [1, 1], ">= 0"),
        ([0, 1], [0.1, 0.2], [0.5, 1.5], [1, 1], "conf must be in"),
        ([0, 1], [0.1, 0.2], [0.5, np.nan], [1, 1], "conf must be in"),
        ([0, 1], [0.1, 0.2], [0.5, 0.5], [1, 2], "correct must be in"),
        ([[0, 1]], [[0.1, 0.2]], [[0.5, 0.5]], [[1, 1]], "1-D"),
        ([0.0, 1.0], [0.1, 0.2], [0.5, 0.5], [1, 1], "integers"),
    ],
)
def test_bad_updates_raise_and_leave_store_unchanged(idx, loss, conf, correct, match):
    store = GEKOStateStore(5)
    store.update(np.array([0, 2]), np.array([0.3, 0.4]), np.array([0.6, 0.7]), np.array([1, 0]))
    snap = snapshot(store)
    with pytest.raises(ValueError, match=match):
        store.update(np.array(idx), np.array(loss), np.array(conf), np.array(correct))
    assert_same(store, snap)


def test_set_buckets_advances_and_resets_streaks():
    store = GEKOStateStore(3)
    frozen = np.array([True, False, True])
    for _ in range(3):
        store.set_buckets(np.array([1, 2, 1], dtype=np.uint8), frozen)
    assert store.frozen_streak.tolist() == [3, 0, 3]
    store.set_buckets(np.array([2, 2, 1], dtype=np.uint8), np.array([False, False, True]))
    assert store.frozen_streak.tolist() == [0, 0, 4]
    assert store.bucket.tolist() == [2, 2, 1]
    for _ in range(300):
        store.set_buckets(np.array([1, 1, 1], dtype=np.uint8), np.ones(3, dtype=bool))
    assert store.frozen_streak.max() == 255  # saturates, never wraps


def test_pruned_flag_does_not_disturb_bucket_or_correct_bits():
    store = GEKOStateStore(4)
    store.update(np.arange(4), np.zeros(4), np.ones(4), np.ones(4))
    store.set_buckets(np.array([1, 2, 3, 4], dtype=np.uint8), np.zeros(4, dtype=bool))
    store.set_pruned(np.array([0, 3]))
    assert store.pruned.tolist() == [True, False, False, True]
    assert store.bucket.tolist() == [1, 2, 3, 4]
    assert store.last_correct.all()
    store.set_pruned(None, value=False)
    assert store.num_pruned == 0
    store.set_pruned(np.array([False, True, True, False]))  # a bool mask: applied a block at a time
    store.set_pruned(np.array([False, False, True, False]), value=False)
    assert store.pruned.tolist() == [False, True, False, False]
    assert store.bucket.tolist() == [1, 2, 3, 4] and store.last_correct.all()


def test_visits_saturate():
    store = GEKOStateStore(1)
    store.columns["visits"][0] = 65534
    store.update(np.array([0, 0, 0]), np.ones(3), np.ones(3) / 2, np.ones(3))
    assert store.visits[0] == 65535


def test_save_load_roundtrip(tmp_path):
    store = GEKOStateStore(50, ema_alpha=0.25)
    rng = np.random.default_rng(0)
    store.update(rng.integers(0, 50, 80), rng.random(80) * 3, rng.random(80), rng.random(80) > 0.5)
    store.set_pruned(np.array([4, 9]))
    path = tmp_path / "state.safetensors"
    store.save(path, extra_metadata={"note": "hi"})
    loaded = GEKOStateStore.from_file(path)
    assert loaded.ema_alpha == 0.25 and loaded.loss_scale == store.loss_scale
    assert_same(loaded, snapshot(store))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp file left


def test_load_rejects_wrong_size_version_and_corruption(tmp_path):
    store = GEKOStateStore(10)
    store.update(np.arange(10), np.ones(10), np.full(10, 0.5), np.ones(10))
    path = tmp_path / "s.safetensors"
    store.save(path)
    other = GEKOStateStore(11)
    snap = snapshot(other)
    with pytest.raises(ValueError, match="10 samples"):
        other.load(path)
    assert_same(other, snap)

    target = GEKOStateStore(10)
    snap = snapshot(target)
    raw = path.read_bytes()
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(raw[: len(raw) - 7])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        target.load(truncated)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError):
        target.load(garbage)
    assert_same(target, snap)

    state = store.state_dict()
    state["format_version"] = 99
    with pytest.raises(ValueError, match="version"):
        target.load_state_dict(state)
    state = store.state_dict()
    state["columns"]["visits"] = state["columns"]["visits"].astype(np.int64)
    with pytest.raises(ValueError, match="visits"):
        target.load_state_dict(state)
    assert_same(target, snap)


def test_load_rejects_foreign_safetensors(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(path))
    with pytest.raises(ValueError, match="not a gekodata.state file"):
        GEKOStateStore(3).load(path)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    data=st.data(),
)
def test_update_property_matches_sequential_reference(n, data):
    """Random updates match a straightforward float64 reference within quantisation."""
    size = data.draw(st.integers(1, 30))
    idx = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size)))
    loss = np.array(data.draw(st.lists(st.floats(0, 20), min_size=size, max_size=size)))
    conf = np.array(data.draw(st.lists(st.floats(0, 1), min_size=size, max_size=size)))
    corr = np.array(data.draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=float)
    store = GEKOStateStore(n)
    store.update(idx, loss, conf, corr)
    for i in np.unique(idx):
        sel = idx == i
        assert store.visits[i] == sel.sum()
        assert store.loss[i] == pytest.approx(loss[sel].mean(), rel=2e-3, abs=1e-3)
        assert store.confidence[i] == pytest.approx(conf[sel].mean(), abs=1 / 255)
        assert store.last_correct[i] == (corr[sel].mean() >= 0.5)
    untouched = np.setdiff1d(np.arange(n), idx)
    assert (store.visits[untouched] == 0).all()
    assert (0 <= store.q_value).all() and (store.q_value <= 1).all()


# --------------------------------------------------------------------------- merged windows, bitwise
def reference_update(store, idx, loss, conf, correct, pred=None):
    """The store update as it was before windows were grouped by per-sample counts: np.unique
    merge, whole-array folds. Every grouping path must reproduce its floats bit for bit."""
    from gekodata.store.codec import add_to_hist
    from gekodata.store.kernels import fold_flags, fold_fraction, fold_group_streak, fold_loss_moments, fold_q_value
    from gekodata.store.layout import MAX_VISITS

    idx = np.asarray(idx, dtype=np.int64)
    loss, conf, correct = (np.asarray(x, dtype=np.float32) for x in (loss, conf, correct))
    add_to_hist(store.loss_hist_counts, store.loss_hist_max, loss)
    store.loss_scale = store._scale_from_hist()
    multiplicity = wandered = None
    unanimous = np.ones(len(np.unique(idx)), dtype=bool)
    if len(np.unique(idx)) != len(idx):
        raw_correct = correct
        idx, inverse, multiplicity = np.unique(idx, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.zeros(len(idx), dtype=np.int64)
        np.cumsum(multiplicity[:-1], out=starts[1:])
        ordered = raw_correct[order]
        unanimous = np.minimum.reduceat(ordered, starts) == np.maximum.reduceat(ordered, starts)
        loss, conf, correct = ((np.bincount(inverse, x) / multiplicity).astype(np.float32) for x in (loss, conf, correct))
        if pred is not None:
            pred = np.asarray(pred).astype(np.int64)
            merged = np.full(len(idx), -1, dtype=np.int64)
            np.maximum.at(merged, inverse, pred)
            unknown = np.iinfo(np.int64).max
            lowest = np.full(len(idx), unknown, dtype=np.int64)
            np.minimum.at(lowest, inverse, np.where(pred >= 0, pred, unknown))
            wandered = (merged >= 0) & (lowest != merged)
            pred = merged
    cols = store.columns
    visits = cols["visits"][idx]
    first = visits == 0
    cols["loss_ema_code"][idx], cols["loss_std_code"][idx] = fold_loss_moments(
        cols["loss_ema_code"][idx], cols["loss_std_code"][idx], loss, first, store.ema_alpha)
    cols["conf_ema"][idx] = fold_fraction(cols["conf_ema"][idx], conf, first, store.ema_alpha)
    cols["correct_ema"][idx] = fold_fraction(cols["correct_ema"][idx], correct, first, store.ema_alpha)
    cols["q_value"][idx] = fold_q_value(cols["q_value"][idx], loss, store.loss_scale, first, store.q_rate)
    cols["visits"][idx] = np.minimum(visits.astype(np.int64) + (1 if multiplicity is None else multiplicity),
                                     MAX_VISITS)
    last_pred = None
    if pred is not None:
        pred = np.asarray(pred)
        if "pred_label" not in cols:
            cols["pred_label"] = np.full(store.num_samples, -1, dtype=np.int32)
        last_pred = cols["pred_label"][idx]
        known = pred >= 0
        cols["pred_label"][idx[known]] = pred[known]
    cols["flags"][idx] = fold_flags(cols["flags"][idx], correct, pred, last_pred, wandered)
    if "group_streak" in cols:
        cols["group_streak"][idx] = fold_group_streak(cols["group_streak"][idx], unanimous, correct >= 0.5)
    store.total_updates += len(loss) if multiplicity is None else int(multiplicity.sum())


def random_window(rng, n, rows, labels):
    idx = rng.integers(0, n, rows)
    loss = np.concatenate([rng.exponential(0.7, rows - 3), [0.0, 1e-30, 3e4]]).astype(np.float32)
    rng.shuffle(loss)
    conf = rng.random(rows).astype(np.float32)
    correct = (rng.random(rows) < 0.6).astype(np.float32)
    pred = rng.integers(-1, 4, rows) if labels else None
    return idx, loss, conf, correct, pred


@pytest.mark.parametrize("method", ["sort", "counts"])
def test_grouped_rows_merge_the_same_floats_either_way(method):
    from gekodata.store.grouping import group_rows

    rng = np.random.default_rng(7)
    n = 5000
    idx, loss, conf, correct, pred = random_window(rng, n, 20_000, labels=True)
    grouped = group_rows(idx, n, method)
    distinct, inverse, counts = np.unique(idx, return_inverse=True, return_counts=True)
    np.testing.assert_array_equal(grouped.idx, distinct)
    np.testing.assert_array_equal(grouped.multiplicity, counts)
    for x in (loss, conf, correct):
        expected = (np.bincount(inverse, x) / counts).astype(np.float32)
        assert grouped.mean(x).tobytes() == expected.tobytes()
    merged, wandered = grouped.labels(pred)
    top = np.full(len(distinct), -1)
    np.maximum.at(top, inverse, pred)
    np.testing.assert_array_equal(merged, top)
    known_labels = [set(pred[(idx == i) & (pred >= 0)].tolist()) for i in distinct[:300]]
    np.testing.assert_array_equal(wandered[:300], [len(k) > 1 for k in known_labels])
    same = [len(set(correct[idx == i].tolist())) == 1 for i in distinct[:300]]
    np.testing.assert_array_equal(grouped.unanimous(correct)[:300], same)


@pytest.mark.parametrize("labels, group", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("rows", [3, 60, 900, 4000])  # 3 and 60 rows: the sort path; 900, 4000: counts
def test_update_is_bitwise_the_reference_fold(rows, labels, group):
    """Small and large windows, with and without repeats, several updates in a row: the store
    is bit for bit what the np.unique fold made (the same floats, whatever the grouping)."""
    rng = np.random.default_rng(rows)
    n = 1000
    store, reference = GEKOStateStore(n), GEKOStateStore(n)
    if group:
        store.ensure_column("group_streak")
        reference.ensure_column("group_streak")
    for step in range(4):
        window = random_window(rng, n, max(rows, 3), labels)
        if step == 1:  # distinct indices: no merge at all
            window = (rng.permutation(n)[: min(rows, n)],) + tuple(x[: min(rows, n)] if x is not None else None
                                                                 for x in window[1:])
        store.update(*window[:4], pred=window[4])
        reference_update(reference, *window[:4], pred=window[4])
        assert store.columns.keys() == reference.columns.keys()
        for name, column in reference.columns.items():
            assert store.columns[name].tobytes() == column.tobytes(), (step, name)
        assert store.loss_scale == reference.loss_scale and store.total_updates == reference.total_updates
        np.testing.assert_array_equal(store.loss_hist_counts, reference.loss_hist_counts)
        np.testing.assert_array_equal(store.loss_hist_max, reference.loss_hist_max)
