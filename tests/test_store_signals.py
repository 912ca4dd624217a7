"""The store's optional selection signals (forgetting events, learning progress, reference loss,
labels), each against a direct computation on a small hand-made sequence of reports."""

import numpy as np
import pytest

from gekodata.store.layout import COLUMNS, OPTIONAL_COLUMNS, REF_LOSS_MAX
from gekodata.store.state_store import GEKOStateStore

N = 6
# sync windows of (idx, loss, correct); sample 2 appears twice in windows 1 and 3 (duplicates are one
# observation: mean loss, correct when the mean correctness is >= 0.5)
WINDOWS = [
    ([0, 1, 2, 3], [2.0, 1.0, 3.0, 0.5], [0, 1, 0, 1]),
    (
        [0, 1, 2, 2, 4],
        [1.5, 0.8, 1.0, 2.0, 2.2],
        [1, 0, 1, 0, 0],
    ),  # 2: mean correctness 0.5 -> correct
    ([0, 1, 3, 4], [0.7, 0.9, 0.4, 1.0], [0, 1, 1, 1]),
    ([0, 2, 2, 3, 4], [0.6, 2.5, 1.5, 3.0, 0.3], [1, 0, 0, 0, 1]),  # 2: both wrong -> wrong
    ([0, 1, 2, 3, 4, 5], [0.9, 0.5, 0.9, 0.8, 0.2, 4.0], [0, 1, 1, 1, 1, 0]),
]


def observations():
    """Per sample: the list of (mean loss, correct) observations, one per window it appears in."""
    obs = {i: [] for i in range(N)}
    for idx, loss, correct in WINDOWS:
        idx, loss, correct = np.array(idx), np.array(loss), np.array(correct, dtype=float)
        for i in np.unique(idx):
            rows = idx == i
            obs[int(i)].append((loss[rows].mean(), correct[rows].mean() >= 0.5))
    return obs


def direct_forgetting(obs):
    """Toneva et al.: count of correct -> wrong transitions; trailing run of correct observations."""
    count = [sum(1 for a, b in zip(o, o[1:]) if a[1] and not b[1]) for o in obs.values()]
    streak = []
    for o in obs.values():
        run = 0
        for _, c in o:
            run = run + 1 if c else 0
        streak.append(run)
    return np.array(count), np.array(streak)


def direct_progress(obs, fast, slow):
    out = []
    for o in obs.values():
        if not o:
            out.append(0.0)
            continue
        f = s = o[0][0]
        for loss, _ in o[1:]:
            f += fast * (loss - f)
            s += slow * (loss - s)
        out.append(s - f)
    return np.array(out)


def feed(store, windows):
    for idx, loss, correct in windows:
        n = len(idx)
        store.update(np.array(idx), np.array(loss), np.full(n, 0.5), np.array(correct, dtype=float))


def tracked_store():
    store = GEKOStateStore(N, ema_alpha=0.5, slow_alpha=0.25)
    store.track("forgetting", "progress")
    return store


def test_default_store_stays_12_bytes_and_signals_cost_bytes_only_when_tracked():
    store = GEKOStateStore(1000)
    assert store.nbytes == 12 * 1000 and set(store.columns) == set(COLUMNS) and store.tracked == ()
    feed(store, [([0, 1], [1.0, 2.0], [1, 0])])
    assert store.nbytes == 12 * 1000  # no update allocates a signal by itself
    store.track("forgetting")
    assert store.nbytes == 14 * 1000 and store.tracked == ("forgetting",)
    store.track("progress", "forgetting")  # idempotent
    assert store.nbytes == 16 * 1000
    store.set_reference_loss([3], [0.5])
    store.set_labels(np.zeros(1000, dtype=np.int64))
    assert store.nbytes == 22 * 1000
    assert set(store.columns) <= set(COLUMNS) | set(OPTIONAL_COLUMNS)
    with pytest.raises(ValueError, match="unknown signal"):
        store.track("gradnorm")
    with pytest.raises(ValueError, match='track\\("forgetting"\\)'):
        _ = GEKOStateStore(3).forget_count
    with pytest.raises(ValueError, match="set_reference_loss"):
        _ = GEKOStateStore(3).reference_loss


def test_forgetting_events_and_learned_streak_match_a_direct_count():
    store = tracked_store()
    feed(store, WINDOWS)
    count, streak = direct_forgetting(observations())
    np.testing.assert_array_equal(store.forget_count, count)
    np.testing.assert_array_equal(store.learned_streak, streak)
    # the hand-made sequence exercises what it should: repeated forgetting, a duplicate merge
    assert count.tolist() == [2, 1, 1, 1, 0, 0] and streak.tolist() == [0, 2, 1, 1, 3, 0]


def test_learning_progress_matches_a_direct_two_ema_computation():
    store = tracked_store()
    feed(store, WINDOWS)
    expected = direct_progress(observations(), 0.5, 0.25)
    # both EMAs are re-encoded after every step (codec: 6.8e-4 relative per step)
    np.testing.assert_allclose(store.learning_progress, expected, atol=5e-3)
    # falling and rising losses both occur, with the sign of the direct computation
    assert (expected < -0.05).any() and (expected > 0.05).any()
    np.testing.assert_array_equal(
        np.sign(store.learning_progress[abs(expected) > 0.05]),
        np.sign(expected[abs(expected) > 0.05]),
    )


@pytest.mark.parametrize("how", ["state_dict", "file"])
def test_signals_resume_exactly_through_state_dict_and_files(tmp_path, how):
    whole = tracked_store()
    feed(whole, WINDOWS)
    first = tracked_store()
    feed(first, WINDOWS[:2])
    first.set_reference_loss([1, 4], [0.25, 3.0])
    first.set_labels(np.arange(N) % 3)
    second = GEKOStateStore(N)
    if how == "state_dict":
        second.load_state_dict(first.state_dict())
    else:
        first.save(tmp_path / "s.safetensors")
        second = GEKOStateStore.from_file(tmp_path / "s.safetensors")
    assert second.slow_alpha == 0.25 and second.tracked == ("forgetting", "progress")
    feed(second, WINDOWS[2:])
    for name in ("forget_count", "learned_streak", "loss_slow_code", *COLUMNS):
        np.testing.assert_array_equal(second.columns[name], whole.columns[name], err_msg=name)
    np.testing.assert_array_equal(second.labels, np.arange(N) % 3)
    assert second.has_reference.tolist() == [False, True, False, False, True, False]


def test_store_files_with_and_without_signals_round_trip(tmp_path):
    plain = GEKOStateStore(N)
    feed(plain, WINDOWS)
    plain.save(tmp_path / "plain.safetensors")
    back = GEKOStateStore.from_file(tmp_path / "plain.safetensors")
    assert set(back.columns) == set(COLUMNS) and back.nbytes == 12 * N
    full = tracked_store()
    feed(full, WINDOWS)
    full.set_reference_loss(None, np.linspace(0, 2, N))
    full.save(tmp_path / "full.safetensors")
    again = GEKOStateStore.from_file(tmp_path / "full.safetensors")
    assert set(again.columns) == set(full.columns)
    for name, col in full.columns.items():
        np.testing.assert_array_equal(again.columns[name], col)


def test_tracking_mid_run_starts_from_the_current_state():
    store = GEKOStateStore(N)
    feed(store, WINDOWS[:3])
    store.track("forgetting", "progress")
    np.testing.assert_array_equal(store.learning_progress, 0.0)
    np.testing.assert_array_equal(store.learned_streak, store.last_correct.astype(np.uint8))
    np.testing.assert_array_equal(store.forget_count, 0)
    feed(store, WINDOWS[3:4])
    assert store.forget_count[[0, 3]].tolist() == [0, 1]  # 0 was wrong before window 3; 3 was right


def test_reference_loss_reducible_loss_checks_and_reset():
    store = GEKOStateStore(N)
    assert not store.has_reference.any()
    store.set_reference_loss([0, 2, 3], [0.5, 2.0, 0.0])
    ref = store.reference_loss
    np.testing.assert_allclose(ref[[0, 2, 3]], [0.5, 2.0, 0.0], rtol=1e-3)
    assert np.isnan(ref[[1, 4, 5]]).all()
    feed(store, WINDOWS[:1])  # 0, 1, 2, 3 seen
    red = store.reducible_loss
    np.testing.assert_allclose(
        red[[0, 2, 3]], [1.5, 1.0, 0.5], atol=5e-3
    )  # codec: 6.8e-4 x each loss
    assert np.isnan(red[[1, 4, 5]]).all()  # no reference (1) or unseen (4, 5)
    before = store.reference_loss
    for idx, values, match in [
        ([0], [np.nan], "finite"),
        ([0], [-1.0], ">= 0"),
        ([0], [1e39], "finite"),
        ([0], [3e31], "<="),
        ([9], [1.0], "in \\[0"),
        ([0, 1], [1.0], "equal length"),
        ([0.5], [1.0], "integers"),
    ]:
        with pytest.raises(ValueError, match=match):
            store.set_reference_loss(idx, values)
    np.testing.assert_array_equal(store.reference_loss, before)  # NaN (no reference) equals NaN
    store.set_reference_loss([5], [REF_LOSS_MAX])
    assert store.reference_loss[5] == pytest.approx(REF_LOSS_MAX, rel=1e-3)
    store.set_labels([1, 2], idx=[0, 3])
    store.track("forgetting")
    store.reset(np.array([0, 3]))
    assert not store.seen[[0, 3]].any() and store.has_reference[[0, 3]].all()
    assert store.labels[[0, 3]].tolist() == [1, 2] and store.labels[1] == -1
    with pytest.raises(ValueError, match="labels must be in"):
        store.set_labels([-2], idx=[0])
    with pytest.raises(ValueError, match="integers"):
        store.set_labels([0.5], idx=[0])
    with pytest.raises(ValueError, match="slow_alpha"):
        GEKOStateStore(3, slow_alpha=0.0)
