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
    store.visits[0] = 65534  # the public view writes through
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
    with pytest.raises(
        ValueError,
        match=r"g\.safetensors: not a readable safetensors file \(truncated or corrupt\?\)",
    ):
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
    with pytest.raises(ValueError, match=r"not a gekodata\.state file"):
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
    assert (store.q_value >= 0).all() and (store.q_value <= 1).all()


# --------------------------------------------------------------------------- merged windows, bitwise
# Rows that share an index within one update are merged into one observation (the float64 mean of
# their float32 values in row order, cast to float32; the largest known label), by a sort for
# windows much smaller than the store (rows * 16 < num_samples) and by per-sample counts otherwise
# (gekodata.store.grouping). These tests pin that through the public update/state_dict only.
def public_state(store, rows=None):
    """``state_dict()`` with every column cut to its first ``rows`` samples (all when None)."""
    state = store.state_dict()
    cut = slice(None) if rows is None else slice(0, rows)
    state["columns"] = {name: column[cut] for name, column in state["columns"].items()}
    del state["num_samples"]
    return state


def assert_bitwise_equal(a, b, skip=()):
    """Two ``public_state`` results hold the same bits (columns, histogram, scalars)."""
    assert a["columns"].keys() == b["columns"].keys()
    for name in a["columns"]:
        if name not in skip:
            assert a["columns"][name].dtype == b["columns"][name].dtype, name
            assert a["columns"][name].tobytes() == b["columns"][name].tobytes(), name
    for key in a.keys() - {"columns"} - set(skip):
        if isinstance(a[key], np.ndarray):
            assert a[key].tobytes() == b[key].tobytes(), key
        else:
            assert a[key] == b[key], key


def fresh_like(store, num_samples):
    other = GEKOStateStore(num_samples)
    for name in ("group_streak", "pred_label"):  # the optional columns these tests allocate
        if name in store.columns:
            other.ensure_column(name)
    other.track(*store.tracked)
    return other


def test_merged_rows_by_hand():
    """Small windows with repeats, computed by hand: means, the largest known label, a wandered
    label restarting the wrong streak, and the group streak of unanimous / disagreeing rows."""
    store = GEKOStateStore(4, ema_alpha=0.5)
    store.ensure_column("group_streak")

    def update(idx, loss, conf, correct, pred):
        store.update(
            np.array(idx), np.array(loss), np.array(conf), np.array(correct), pred=np.array(pred)
        )

    update(
        [2, 0, 2, 2, 1],
        [1.0, 0.5, 2.0, 3.0, 0.25],
        [0.1, 0.9, 0.3, 0.5, 0.6],
        [0, 1, 0, 0, 1],
        [3, 1, 3, 5, -1],
    )
    assert store.visits.tolist() == [1, 1, 3, 0] and store.total_updates == 5
    np.testing.assert_allclose(store.loss[:3], [0.5, 0.25, 2.0], rtol=2e-3)
    assert store.confidence[2] == pytest.approx(0.3, abs=1 / 255)
    assert store.last_correct.tolist() == [True, True, False, False]
    assert store.predicted.tolist() == [
        1,
        -1,
        5,
        -1,
    ]  # the largest known label; -1 leaves it unknown
    assert store.wrong_streak.tolist() == [0, 0, 1, 0]
    assert store.group_streak.tolist() == [0, 0, -1, 0]  # one row judges no group

    update([2, 2, 3], [1.0, 1.0, 4.0], [0.5, 0.5, 0.5], [0, 0, 1], [5, 5, 2])
    assert store.visits.tolist() == [1, 1, 5, 1] and store.total_updates == 8
    assert store.loss[2] == pytest.approx(1.5, rel=2e-3)  # 2.0 + 0.5 * (1.0 - 2.0)
    assert store.loss[3] == pytest.approx(4.0, rel=2e-3)  # a first observation sets the EMA
    assert store.predicted.tolist() == [1, -1, 5, 2]
    assert store.wrong_streak.tolist() == [0, 0, 2, 0]  # wrong again with the same label
    assert store.group_streak.tolist() == [0, 0, -2, 0]

    update([2, 2], [1.0, 1.0], [0.5, 0.5], [0, 0], [5, 4])  # wrong, but the rows' labels disagree
    assert store.predicted[2] == 5 and store.wrong_streak[2] == 1 and store.group_streak[2] == -3
    update(
        [2, 2], [1.0, 1.0], [0.5, 0.5], [1, 0], [5, 5]
    )  # mean correctness 0.5: correct, not unanimous
    assert store.last_correct[2] and store.wrong_streak[2] == 0 and store.group_streak[2] == 0
    assert store.correctness[2] > 0


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


@pytest.mark.parametrize(
    "labels, group", [(False, False), (True, False), (False, True), (True, True)]
)
@pytest.mark.parametrize("rows", [3, 60, 900, 4000])
def test_sort_and_counts_grouping_give_the_same_bits(rows, labels, group):
    """The same windows (repeats, distinct indices, several updates in a row) folded into a store
    of 16 * rows samples (grouped by counts) and one a sample larger (grouped by a sort): the
    samples both have are bit for bit the same, the extra one untouched."""
    rng = np.random.default_rng(rows)
    n = 16 * rows  # rows * 16 >= n: counts; the larger store: rows * 16 < n + 1: sort
    by_counts, by_sort = GEKOStateStore(n), GEKOStateStore(n + 1)
    for store in (by_counts, by_sort):
        store.track("forgetting", "progress")
        if group:
            store.ensure_column("group_streak")
    for step in range(4):
        idx, loss, conf, correct, pred = random_window(rng, max(2, rows // 4), rows, labels)
        if step == 1:  # distinct indices: no merge at all
            idx = rng.permutation(n)[:rows]
        by_counts.update(idx, loss, conf, correct, pred=pred)
        by_sort.update(idx, loss, conf, correct, pred=pred)
        assert_bitwise_equal(public_state(by_counts), public_state(by_sort, n))
    untouched = fresh_like(by_sort, n + 1).state_dict()["columns"]
    for name, column in by_sort.state_dict()["columns"].items():
        assert column[n:].tobytes() == untouched[name][n:].tobytes(), name


@pytest.mark.parametrize(
    "rows", [3, 60, 900, 4000]
)  # 3 and 60 rows: the sort path; 900, 4000: counts
def test_repeats_fold_as_one_observation_of_their_float64_mean(rows):
    """A window with repeats leaves every per-sample column but ``visits`` exactly as the window
    of its distinct indices carrying the merged values computed here would (float64 sums in row
    order / count, as float32): one EMA step per sample, whatever the grouping path. Losses stay
    below ``min_loss_scale`` so both windows see the same loss scale."""
    rng = np.random.default_rng(rows + 1)
    n = 1000
    merged, premerged = GEKOStateStore(n), GEKOStateStore(n)
    for store in (merged, premerged):
        store.track("forgetting", "progress")
    for _ in range(3):
        idx = rng.integers(0, max(2, rows // 4), rows)
        loss, conf = (
            (rng.random(rows) * 0.9).astype(np.float32),
            rng.random(rows).astype(np.float32),
        )
        correct = (rng.random(rows) < 0.6).astype(np.float32)
        distinct, inverse, counts = np.unique(idx, return_inverse=True, return_counts=True)
        means = [
            (np.bincount(inverse, x.astype(np.float64)) / counts).astype(np.float32)
            for x in (loss, conf, correct)
        ]
        visits_before = merged.visits.copy()
        merged.update(idx, loss, conf, correct)
        premerged.update(distinct, *means)
        assert_bitwise_equal(
            public_state(merged),
            public_state(premerged),
            skip=("visits", "total_updates", "loss_hist_counts", "loss_hist_max"),
        )
        assert merged.loss_scale == premerged.loss_scale == 1.0
        expected = visits_before.astype(np.int64)
        np.add.at(expected, idx, 1)
        np.testing.assert_array_equal(merged.visits, expected)


@pytest.mark.parametrize("labels, group", [(False, False), (True, True)])
def test_a_window_split_by_index_or_reordered_gives_the_same_bits(labels, group):
    """With the loss scale fixed (losses below ``min_loss_scale``), a window folds to the same
    bits as its rows split into two windows that keep each index's rows together (in order), and
    a window of distinct indices as any permutation of it."""
    rng = np.random.default_rng(3)
    n = 500

    def store():
        s = GEKOStateStore(n)
        s.track("forgetting", "progress")
        if group:
            s.ensure_column("group_streak")
        return s

    for rows, span in ((40, 10), (3000, 400), (200, n)):
        whole, split, shuffled = store(), store(), store()
        for _ in range(3):
            idx, loss, conf, correct, pred = random_window(rng, span, rows, labels)
            if span == n:
                idx = rng.permutation(n)[:rows]
            loss = np.minimum(loss, 0.9).astype(np.float32)
            whole.update(idx, loss, conf, correct, pred=pred)
            first = rng.random(n) < 0.5  # which indices go to the first window
            for part in (first[idx], ~first[idx]):
                split.update(
                    idx[part],
                    loss[part],
                    conf[part],
                    correct[part],
                    pred=None if pred is None else pred[part],
                )
            assert_bitwise_equal(public_state(whole), public_state(split))
            if span == n:  # distinct indices: the order of the rows does not matter
                order = rng.permutation(rows)
                shuffled.update(
                    idx[order],
                    loss[order],
                    conf[order],
                    correct[order],
                    pred=None if pred is None else pred[order],
                )
                assert_bitwise_equal(public_state(whole), public_state(shuffled))
