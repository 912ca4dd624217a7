"""Labels travel with the report; the run diagnoses its data; the default uses the diagnosis
(issue 21)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from gekodata import (
    AutoPolicy,
    BucketPolicy,
    DataDiagnosis,
    GEKOStateStore,
    PruningDataset,
    Signals,
    WeightedBucketSampler,
    default_policy,
)
from gekodata.policy.auto import rare_class_members
from gekodata.policy.diagnosis import diagnose
from gekodata.signals import (
    causal_lm_signals,
    classification_signals,
    multi_label_signals,
    regression_signals,
)

N = 200


def _sampler(policy=None, n: int = N, epochs: int = 4) -> WeightedBucketSampler:
    ds = PruningDataset([{"x": i} for i in range(n)])
    return WeightedBucketSampler(ds, policy, num_epochs=epochs, seed=0)


# ---------------------------------------------------------------- Signals
def test_classification_signals_unpack_as_three_and_carry_pred_and_label():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]], requires_grad=True)
    targets = torch.tensor([0, 1])
    signals = classification_signals(logits, targets)
    loss, conf, correct = signals
    assert isinstance(signals, Signals) and len(signals) == 3
    assert signals.loss is loss and signals.conf is conf and signals.correct is correct
    assert signals.pred.tolist() == [0, 2] and signals.label.tolist() == [0, 1]
    assert correct.tolist() == [True, False]
    loss.sum().backward()  # the loss keeps its graph
    assert logits.grad is not None


def test_signals_without_classes_carry_no_label():
    logits = torch.randn(3, 4)
    for signals in (
        multi_label_signals(logits, torch.randint(0, 2, (3, 4))),
        regression_signals(torch.randn(3), torch.randn(3), tolerance=0.5),
        causal_lm_signals(torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))),
    ):
        assert signals.label is None and signals.pred is None
        assert len(tuple(signals)) == 3


def test_signals_pickle_with_their_labels():
    signals = classification_signals(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    back = pickle.loads(pickle.dumps(signals))
    assert back.label.tolist() == [0, 1, 2, 0] and torch.equal(back.pred, signals.pred)


# ---------------------------------------------------------------- labels reach the store
def test_report_signals_hands_the_labels_to_the_store():
    sampler = _sampler(BucketPolicy())
    idx = torch.arange(10)
    sampler.report(classification_signals(torch.randn(10, 3), idx % 3), idx)
    assert not sampler.store.has_labels  # not before the sync point
    sampler.flush()
    assert sampler.store.labels[:10].tolist() == (idx % 3).tolist()
    assert (sampler.store.labels[10:] == -1).all()
    assert sampler.store.predicted[:10].tolist() != [-1] * 10  # pred travelled too


def test_report_label_keyword_and_idx_keyword_with_signals():
    sampler = _sampler(BucketPolicy())
    idx = torch.arange(4)
    sampler.report(torch.ones(4), idx=idx, label=torch.tensor([1, 1, 2, 2]))
    sampler.report(classification_signals(torch.randn(4, 3), torch.tensor([0, 1, 2, 0])), idx=idx + 4)
    sampler.flush()
    assert sampler.store.labels[:8].tolist() == [1, 1, 2, 2, 0, 1, 2, 0]


def test_no_labels_keeps_the_store_small():
    sampler = _sampler(BucketPolicy())
    loss, conf, correct = classification_signals(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    sampler.report(loss, conf, correct, torch.arange(8))
    sampler.flush()
    assert "label" not in sampler.store.columns


def test_a_sample_with_two_labels_warns_and_keeps_the_latest():
    sampler = _sampler(BucketPolicy())
    idx = torch.arange(6)
    sampler.report(torch.ones(6), idx=idx, label=torch.zeros(6, dtype=torch.long))
    sampler.flush()
    sampler.report(torch.ones(6), idx=idx, label=torch.tensor([0, 0, 0, 0, 1, 2]))
    with pytest.warns(RuntimeWarning, match=r"2 sample\(s\) were reported with two different labels"):
        sampler.flush()
    assert sampler.store.labels[:6].tolist() == [0, 0, 0, 0, 1, 2]


def test_the_same_label_twice_is_silent():
    sampler = _sampler(BucketPolicy())
    for _ in range(2):
        sampler.report(torch.ones(3), idx=torch.arange(3), label=torch.tensor([2, 1, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.flush()


@pytest.mark.parametrize(
    "label, message",
    [
        (torch.tensor([0.0, 1.0, 2.0]), "label must hold integer class indices"),
        (torch.zeros(3, 4, dtype=torch.long), r"one-hot targets: pass targets.argmax\(-1\)"),
        (torch.tensor([0, 1]), r"label must be \[B\] = \[3\]"),
        (torch.tensor([0, -2, 1]), r"label must be in \[-1, 2\^31\)"),
    ],
)
def test_bad_labels_are_refused_with_the_fix(label, message):
    sampler = _sampler(BucketPolicy())
    with pytest.raises(ValueError, match=message):
        sampler.report(torch.ones(3), idx=torch.arange(3), label=label)
    assert sampler.efficiency_report().pending == 0  # nothing buffered


def test_signals_and_conf_correct_together_is_a_type_error():
    sampler = _sampler(BucketPolicy())
    signals = classification_signals(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match=r"report\(signals, batch\['idx'\]\)"):
        sampler.report(signals, torch.ones(2), torch.ones(2), torch.arange(2))


def test_pending_labels_travel_in_a_checkpoint(tmp_path):
    sampler = _sampler(BucketPolicy())
    sampler.set_epoch(0)
    sampler.report(torch.ones(5), idx=torch.arange(5), label=torch.tensor([3, 1, 4, 1, 5]))
    path = tmp_path / "s.safetensors"
    sampler.save(path)
    restored = _sampler(BucketPolicy())
    restored.load(path)
    restored.flush()
    assert restored.store.labels[:5].tolist() == [3, 1, 4, 1, 5]


# ---------------------------------------------------------------- the diagnosis
def _store_with(n: int, labels: np.ndarray, right: np.ndarray, conf: np.ndarray, reports: int = 3):
    store = GEKOStateStore(n)
    store.track("forgetting")
    store.set_labels(labels)
    idx = np.arange(n)
    for _ in range(reports):
        store.update(idx, -np.log(conf), conf, right.astype(np.float32))
    return store


def test_diagnosis_counts_flipped_labels_in_learned_classes_not_a_rare_class():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)  # 4 classes x 50
    right = np.ones(200, dtype=bool)
    flipped = rng.choice(150, 30, replace=False)  # 20% of classes 0-2 answered as another class
    right[flipped] = False
    right[150:190] = False  # class 3 is not learned yet: 40 of its 50 wrong
    conf = np.where(right, 0.9, 0.05).astype(np.float32)
    diagnosis = diagnose(_store_with(200, labels, right, conf))
    assert diagnosis.mislabeled == 30  # class 3's wrong samples are not counted
    assert diagnosis.mislabeled_share == pytest.approx(30 / 200)
    assert diagnosis.still_learning == 40
    assert diagnosis.class_counts == {0: 50, 1: 50, 2: 50, 3: 50}
    assert diagnosis.class_accuracy[3] == pytest.approx(0.2)
    assert diagnosis.learned_at_once == 200 - 70


def test_diagnosis_counts_flips_into_a_class_that_noise_dominates():
    # class 3: 10 real samples (right) and 30 flipped in from classes 0-2, answered as those
    labels = np.concatenate([np.repeat(np.arange(3), 50), np.full(40, 3)])
    truth = labels.copy()
    truth[160:] = np.arange(30) % 3
    right = labels == truth
    conf = np.where(right, 0.9, 0.05).astype(np.float32)
    store = _store_with(190, labels, right, conf, reports=0)
    for _ in range(3):
        store.update(np.arange(190), -np.log(conf), conf, right.astype(np.float32), pred=truth)
    diagnosis = diagnose(store)
    assert diagnosis.class_accuracy[3] == pytest.approx(0.25)  # not learned: the class test is blind
    assert diagnosis.mislabeled == 30  # but each flip is answered, stably, as a learned class


def test_diagnosis_without_labels_says_it_cannot_tell():
    store = GEKOStateStore(10)
    store.update(np.arange(10), np.ones(10), np.full(10, 0.1), np.zeros(10))
    diagnosis = diagnose(store)
    assert diagnosis.mislabeled is None and diagnosis.class_counts is None
    assert any("rare class and noise look the same" in line for line in diagnosis.lines())


def test_diagnosis_finds_rare_classes_and_imbalance():
    labels = np.concatenate([np.zeros(100, int), np.ones(100, int), np.full(10, 2)])
    d = diagnose(_store_with(210, labels, np.ones(210, bool), np.full(210, 0.9, np.float32)))
    assert d.rare_classes == [2] and d.imbalance == pytest.approx(10.0)
    assert DataDiagnosis.from_dict(d.to_dict()) == d


def test_sampler_reports_the_diagnosis_per_epoch_and_in_the_efficiency_report():
    sampler = _sampler(AutoPolicy(), epochs=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for idx in np.array_split(np.fromiter(iter(sampler), dtype=np.int64), 4):
            t = torch.from_numpy(idx)
            logits = torch.nn.functional.one_hot(t % 3, 3).float() * 4
            sampler.report(classification_signals(logits, t % 3), t)
    sampler.flush()
    report = sampler.efficiency_report()
    assert report.epochs[0].data is None  # planned before any report
    assert report.epochs[1].data["seen"] == N
    assert report.data == sampler.diagnosis() and report.data.mislabeled == 0
    assert "mislabeled: 0.0% look mislabeled" in str(report)
    assert report.to_dict()["data"]["class_counts"] == {"0": 67, "1": 67, "2": 66}


# ---------------------------------------------------------------- the default
def test_the_default_is_auto_policy():
    assert isinstance(default_policy(), AutoPolicy)
    assert isinstance(_sampler().policy, AutoPolicy)


def _noisy_store(share: float, n: int = 400) -> GEKOStateStore:
    labels = np.arange(n) % 4
    right = np.ones(n, dtype=bool)
    right[: int(share * n)] = False
    conf = np.where(right, 0.95, 0.02).astype(np.float32)
    return _store_with(n, labels, right, conf, reports=4)


def test_auto_policy_guards_only_where_enough_samples_look_mislabeled():
    policy = AutoPolicy()
    from gekodata.policy import Bucket

    noisy = policy.classify(_noisy_store(0.2))
    assert np.count_nonzero(noisy == Bucket.SUSPECT) == 80
    clean = policy.classify(_noisy_store(0.02))  # 2% < noise_min_share: hard samples, kept
    assert not (clean == Bucket.SUSPECT).any()


def test_auto_policy_never_skips_a_rare_class():
    from gekodata.policy import Bucket

    labels = np.concatenate([np.zeros(100, int), np.ones(100, int), np.full(10, 2)])
    store = _store_with(210, labels, np.ones(210, bool), np.full(210, 0.95, np.float32), reports=4)
    codes = AutoPolicy().classify(store)
    assert (codes[:200] == Bucket.FREEZE).all() and not (codes[200:] == Bucket.FREEZE).any()
    assert rare_class_members(labels).tolist() == [False] * 200 + [True] * 10
    codes = AutoPolicy(protect_rare=False).classify(store)
    assert (codes == Bucket.FREEZE).all()


def test_auto_policy_without_labels_is_the_forgetting_rule():
    from gekodata.policy import Bucket

    store = GEKOStateStore(50)
    store.track("forgetting")
    for _ in range(4):
        store.update(np.arange(50), np.full(50, 3.0), np.full(50, 0.02), np.zeros(50))
    codes = AutoPolicy().classify(store)
    assert not (codes == Bucket.SUSPECT).any()  # no labels: no guard


@pytest.mark.parametrize(
    "field, value",
    [("noise_min_share", 1.5), ("suspect_confidence", -0.1), ("audit_weight", 2.0)],
)
def test_auto_policy_refuses_bad_settings(field, value):
    with pytest.raises(ValueError, match=field):
        AutoPolicy(**{field: value})


def test_the_cli_report_says_what_the_data_looks_like(tmp_path, capsys):
    from gekodata.diagnostics import cli

    sampler = _sampler(AutoPolicy(), epochs=3)
    sampler.set_epoch(0)
    idx = torch.arange(N)
    right = torch.nn.functional.one_hot(idx % 2, 2).float() * 4
    sampler.report(classification_signals(right, idx % 2), idx)
    sampler.set_epoch(1)
    sampler.report(classification_signals(right, idx % 2), idx)
    sampler_path, store_path = tmp_path / "s.safetensors", tmp_path / "store.safetensors"
    sampler.save(sampler_path)  # the epoch-1 reports travel unfolded
    sampler.flush()
    sampler.store.save(store_path)
    for path in (sampler_path, store_path):
        assert cli.main(["report", str(path)]) == 0
        out = capsys.readouterr().out
        assert "mislabeled: 0.0% look mislabeled" in out and "classes: 2, imbalance 1.0x" in out
    assert cli.main(["report", str(store_path), "--json"]) == 0
    assert '"mislabeled_share": 0.0' in capsys.readouterr().out


def test_device_path_carries_labels_and_drops_a_bad_one_at_the_sync_point():
    """The deferred (device) path, exercised on CPU tensors: labels are checked at take()."""
    from gekodata.sampler.report_buffer import ReportBuffer

    buffer = ReportBuffer(GEKOStateStore(10))
    idx = torch.arange(4)
    buffer.add(torch.ones(4), None, None, idx, None, torch.tensor([1, 2, -5, 0]), defer_checks=True)
    with pytest.warns(RuntimeWarning, match=r"dropped 1 reported row\(s\).*label"):
        window = buffer.take()
    assert window.idx.tolist() == [0, 1, 3] and window.label.tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="label must hold integer class indices"):
        buffer.add(torch.ones(2), None, None, idx[:2], None, torch.ones(2), defer_checks=True)


def test_a_stream_selector_learns_labels_from_signals_too():
    from gekodata.streaming import StreamSelector

    selector = StreamSelector(20, num_epochs=2, seed=0)
    idx = torch.arange(6)
    selector.report(classification_signals(torch.randn(6, 3), idx % 3), idx)
    selector.flush()
    assert selector.store.labels[:6].tolist() == (idx % 3).tolist()
    with pytest.raises(TypeError, match=r"report\(signals, batch\['idx'\]\)"):
        selector.report(classification_signals(torch.randn(2, 3), idx[:2]), idx[:2], torch.ones(2))
