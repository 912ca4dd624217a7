"""Misuse fails loudly or does the right thing: issue 22's list, one test per case.

Cases already tested elsewhere are not repeated here; this table says where each one is
("here" = this module).

=====================================================  ==========================================
case (issue 22)                                        test
=====================================================  ==========================================
1. a loop without ``set_epoch`` (or the same epoch     here: test_a_new_pass_without_set_epoch_*
   every time)
1. grouped RL reports (PromptPolicy, G rows per        here: test_grouped_prompt_reports_*
   prompt) are no false positive
1. StatefulDataLoader restores (0 and 2 workers)       test_resume_positions.py (every position);
   stay exact                                          here: test_a_restored_position_at_the_end_*
2. stale state: store and data map vs. the             test_facade.py::
   efficiency report                                   test_what_is_pending_is_said_where_users_read_state
2. reports after training (an evaluation pass),        here: test_reports_for_samples_not_in_the_plan_*,
   indices of another split                            test_unplanned_reports_are_checked_at_the_sync_*
2. indices outside the dataset                         test_sampler.py, test_fuzz_sampler.py (ValueError)
3. 1-based epochs, epochs past ``num_epochs``,         test_facade.py::test_epochs_are_checked
   epochs going back
3. what runs of 3, 4 and 5 epochs get                  docs/concepts.md "Curriculum phases" (executed)
4. a checkpoint changes the run                        test_save_points.py (every save point, 2 ranks)
5. pruning with a policy that re-checks skipped        test_first_try.py::
   samples                                             test_pruning_with_a_rate_policy_warns_*
6. ``Subset(PruningDataset(d))``                       test_first_try.py::test_subset_of_a_pruning_*
6. ``load`` called on the class                        test_first_try.py::test_*_load_on_the_class_*
6. ``GEKOStateStore.from_file`` undocumented           here: test_from_file_is_documented
6. another ``num_epochs``; what the saved policy was   test_first_try.py::test_strict_load_*,
                                                       test_a_different_setting_names_*
6. ``loss`` of shape [B, 1]                            test_first_try.py::test_loss_with_a_trailing_*
6. ``AGGRESSIVE`` as a policy; the policy type error   test_first_try.py::test_a_preset_name_as_*,
                                                       test_the_policy_type_error_*
6. reading ``sampler.suspects()``                      docs/noisy-labels.md (attributes, executed)
7. ``state_dict`` after a completed pass and           here: test_a_completed_pass_then_the_same_*
   ``set_epoch`` of the same epoch
8. tuple items                                         test_first_try.py::test_the_docstring_says_*
8. a dataset's own ``"weight"`` key                    test_first_try.py::test_an_item_weight_key_*
8. an ``"idx"`` clash                                  test_dataset.py::test_custom_keys_and_collision
"why was it skipped" (bucket names, not codes)         here: test_explain_*
reprs: store size and buckets; sampler policy, phase   here: test_reprs_*
``py.typed`` shipped                                   here: test_py_typed_is_packaged
=====================================================  ==========================================
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gekodata import (
    BucketPolicy,
    GEKOStateStore,
    PromptPolicy,
    PruningDataset,
    WeightedBucketSampler,
)
from gekodata.prompts import report_groups

ROOT = Path(__file__).resolve().parent.parent
NEW_PASS = "the loop forget set_epoch"
UNPLANNED = "not in this epoch's plan"


def _no_loop_warnings():
    """A context in which the two loop warnings of this module are errors."""
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.filterwarnings("error", message="gekodata: a new pass")
    warnings.filterwarnings("error", message=r"gekodata: \d+ of \d+ reported rows")
    return context


def _train(sampler, loader, epochs, set_epoch=lambda sampler, epoch: sampler.set_epoch(epoch)):
    for epoch in range(epochs):
        if set_epoch is not None:
            set_epoch(sampler, epoch)
        for batch in loader:
            idx = batch["idx"]
            sampler.report(torch.full((len(idx),), 0.05), idx=idx)


def _loop(n=60, epochs=5, **kw):
    ds = PruningDataset([{"x": float(i)} for i in range(n)])
    sampler = WeightedBucketSampler(ds, BucketPolicy(), num_epochs=epochs, seed=0, **kw)
    return sampler, DataLoader(ds, batch_size=16, sampler=sampler)


# ------------------------------------------------------------------ 1. a pass without set_epoch
@pytest.mark.parametrize(
    "set_epoch",
    [None, lambda sampler, epoch: sampler.set_epoch(0)],
    ids=["never", "always-the-same-epoch"],
)
def test_a_new_pass_without_set_epoch_warns_once_and_the_report_says_so(set_epoch):
    sampler, loader = _loop()
    with pytest.warns(UserWarning, match=NEW_PASS) as caught:
        _train(sampler, loader, 5, set_epoch)
    assert sum(NEW_PASS in str(w.message) for w in caught) == 1  # once, not once per pass
    assert "sampler.set_epoch(epoch) before each epoch" in str(caught[0].message)
    record = sampler.epoch_record
    assert record.epoch == 0 and record.extra_passes == 4 and record.reported == 300
    report = sampler.efficiency_report()
    text = str(report)
    assert "more passes reported than planned for epoch 0" in text and NEW_PASS in text
    assert "-400.0%" not in text and "% saved" not in text  # no negative saving is stated
    assert report.repeated_epochs[0].extra_passes == 4
    assert report.to_dict()["epochs"][0]["extra_passes"] == 4


def test_a_new_pass_without_set_epoch_warns_with_sync_every():
    """Folding mid-epoch (sync_every) leaves nothing pending at the second pass: still caught."""
    sampler, loader = _loop(sync_every=2)
    with pytest.warns(UserWarning, match=NEW_PASS):
        _train(sampler, loader, 2, set_epoch=None)
    assert sampler.epoch_record.extra_passes == 1


def test_a_correct_loop_and_inspecting_a_plan_twice_do_not_warn():
    sampler, loader = _loop()
    context = _no_loop_warnings()
    try:
        list(sampler), list(sampler)  # no reports in between: looking is not training
        _train(sampler, loader, 5)
        sampler.flush()
    finally:
        context.__exit__(None, None, None)
    report = sampler.efficiency_report()
    assert not report.repeated_epochs and report.unplanned_passes == 0
    assert "saved (counted from reports)" in str(report)


def test_grouped_prompt_reports_are_no_false_positive():
    """GRPO-style reports (G completions per prompt, PromptPolicy counts G rows as one pass)
    through a correct loop: no warning, passes counted as planned."""
    G, n = 4, 32
    sampler = WeightedBucketSampler(
        PruningDataset(list(range(n))), PromptPolicy(group_size=G), num_epochs=4, seed=1
    )
    rng = np.random.default_rng(0)
    context = _no_loop_warnings()
    try:
        for epoch in range(4):
            sampler.set_epoch(epoch)
            prompts = np.array(list(sampler))
            for chunk in np.array_split(prompts, 3):
                report_groups(sampler, chunk, rng.integers(0, 2, (len(chunk), G)))
        sampler.flush()
    finally:
        context.__exit__(None, None, None)
    for record in sampler.efficiency_report().epochs:
        assert record.reported == record.planned and record.extra_passes == record.unplanned == 0


def test_grouped_prompt_reports_without_set_epoch_warn():
    G = 4
    sampler = WeightedBucketSampler(
        PruningDataset(list(range(16))), PromptPolicy(group_size=G), num_epochs=3, seed=1
    )
    with pytest.warns(UserWarning, match=NEW_PASS):
        for _ in range(2):
            prompts = np.array(list(sampler))
            report_groups(sampler, prompts, np.ones((len(prompts), G)))
    assert sampler.epoch_record.reported == 32 and sampler.epoch_record.extra_passes == 1


def test_a_restored_position_at_the_end_of_an_epoch_is_no_new_pass():
    """A loader restored at the end of an epoch (torchdata re-iterates the sampler) yields
    nothing more of that epoch and does not warn; the next set_epoch goes on."""
    sampler, _ = _loop(n=20)
    idx = np.array(list(sampler))
    sampler.report(np.full(len(idx), 0.1), idx=idx)
    position = sampler.state_dict()
    context = _no_loop_warnings()
    try:
        sampler.load_state_dict(position)
        assert list(sampler) == []
        sampler.set_epoch(1)
        assert len(list(sampler)) == len(sampler)
    finally:
        context.__exit__(None, None, None)


# ------------------------------------------------------ 2. reports for samples not in the plan
def _after_two_epochs(n=100):
    """A sampler at epoch 2 (PEAK) whose plan holds only the 10 hard samples."""
    sampler = WeightedBucketSampler(
        PruningDataset(list(range(n))), BucketPolicy(), num_epochs=5, seed=0
    )
    for epoch in range(2):
        sampler.set_epoch(epoch)
        idx = np.array(sampler.plan)
        sampler.report(np.where(idx % 10 == 0, 3.0, 0.01), idx=idx)
    sampler.set_epoch(2)
    assert sorted(set(sampler.plan.tolist())) == list(range(0, n, 10))
    return sampler


def test_reports_for_samples_not_in_the_plan_warn_once_per_epoch_and_are_counted():
    sampler = _after_two_epochs()
    planned = np.array(sampler.plan)
    sampler.report(np.full(len(planned), 2.0), idx=planned)  # training
    assert sampler.pending_reports == 10  # nothing is checked at the call
    with pytest.warns(UserWarning, match=UNPLANNED) as caught:
        sampler.report(np.full(100, 0.01), idx=np.arange(100))  # an evaluation pass, reported
        sampler.flush()
        sampler.report(np.full(5, 0.01), idx=np.arange(1, 6))  # again, same epoch: no new warning
        sampler.flush()
    messages = [str(w.message) for w in caught if UNPLANNED in str(w.message)]
    assert len(messages) == 1
    assert re.search(r"90 of 110 reported rows folded in epoch 2", messages[0])
    assert "do not call sampler.report in the evaluation loop" in messages[0]
    record = sampler.epoch_record
    assert record.reported == 115 and record.unplanned == 95
    assert int(sampler.store.visits[1]) == 3  # epoch 0 and two eval passes: nothing is lost
    report = sampler.efficiency_report()
    assert report.unplanned_passes == 95 and report.to_dict()["unplanned_passes"] == 95
    text = str(report)
    assert "unplanned" in text.splitlines()[0]
    assert "95 reported passes were for samples not in their epoch's plan" in text
    with pytest.warns(UserWarning, match="in epoch 3"):  # the next epoch warns again
        sampler.set_epoch(3)
        sampler.report(np.full(3, 0.01), idx=np.array([1, 2, 3]))
        sampler.flush()


def test_unplanned_reports_are_checked_at_the_sync_point_also_after_a_load(tmp_path):
    """The check reads host rows at the fold (no host sync per report for device tensors):
    deferred rows, and rows restored from a checkpoint, are counted the same way."""
    sampler = _after_two_epochs()
    sampler._buffer.add(  # the device path, on CPU tensors
        torch.full((4,), 0.5), None, None, torch.tensor([0, 1, 2, 3]), defer_checks=True
    )
    sampler.save(tmp_path / "s.safetensors")
    other = WeightedBucketSampler(
        PruningDataset(list(range(100))), BucketPolicy(), num_epochs=5, seed=0
    )
    other.load(tmp_path / "s.safetensors")
    for s in (sampler, other):
        with pytest.warns(UserWarning, match=r"3 of 4 reported rows folded in epoch 2"):
            s.flush()
        assert s.epoch_record.unplanned == 3


def test_counting_unplanned_rows_is_vectorized():
    """One membership test per window, built once per plan: a million rows against a plan of
    a million draws count in well under a second (a Python loop would take seconds)."""
    import time

    from gekodata.sampler.sharding import RankPlan

    n = 1_000_000
    rng = np.random.default_rng(0)
    pool = rng.integers(0, n, n)
    plan = RankPlan(pool, 0, rank=0, world_size=1, shard=True)
    rows = rng.integers(0, n, n)
    start = time.perf_counter()
    found = plan.count_unplanned(rows, n)
    assert time.perf_counter() - start < 1.0
    in_plan = np.zeros(n, dtype=bool)
    in_plan[pool] = True
    assert found == int(np.count_nonzero(~in_plan[rows]))
    assert (
        RankPlan(np.arange(5), 0, rank=0, world_size=1, shard=True).count_unplanned(
            np.array([0, 4, 4]), 5
        )
        == 0
    )


# ------------------------------------------- 7. state_dict after a pass and the same set_epoch
def test_a_completed_pass_then_the_same_epoch_agrees_with_its_state_dict():
    """After a completed, reported pass, ``set_epoch`` of the same epoch keeps the plan and the
    position: a restored sampler continues the finished pass (nothing left), and the live one,
    iterated again, starts a second pass of the same plan, which is the mistake of case 1 and
    warns."""
    sampler, _ = _loop(n=20, epochs=3)
    sampler.set_epoch(0)
    idx = np.array(list(sampler))
    sampler.report(np.full(len(idx), 0.1), idx=idx)
    sampler.set_epoch(0)
    state = sampler.state_dict()
    assert state["yielded"] == state["length"] == 20
    restored, _ = _loop(n=20, epochs=3)
    restored.load_state_dict(state)
    assert list(restored) == []
    with pytest.warns(UserWarning, match=NEW_PASS):
        again = list(sampler)
    assert sorted(again) == sorted(idx.tolist())


# ------------------------------------------------------------------ why was it skipped
def test_explain_names_the_bucket_and_says_why():
    sampler = _after_two_epochs()
    found = sampler.explain(torch.tensor([0, 1, 10]))
    assert len(found) == 3
    assert found.bucket.tolist() == ["HARD", "FREEZE", "HARD"]
    assert found.draws.tolist() == [1, 0, 1] and found.weight.tolist() == [5.0, 0.0, 5.0]
    assert found.visits.tolist() == [2, 1, 2]  # the easy sample was skipped in epoch 1
    assert found.last_correct.tolist() == [False, True, False]
    np.testing.assert_allclose(found.loss, [3.0, 0.01, 3.0], rtol=1e-2)
    assert found.label.tolist() == [-1, -1, -1] and found.phase == "PEAK"
    assert found.reason[1] == "skipped: FREEZE weighs 0 in PEAK"
    text = str(found)
    assert text.splitlines()[0] == "epoch 2 (PEAK):" and "skipped: FREEZE weighs 0 in PEAK" in text
    row = sampler.explain(1).rows()[0]
    assert row["idx"] == 1 and row["bucket"] == "FREEZE" and isinstance(row["loss"], float)
    with pytest.raises(ValueError, match="explain"):
        sampler.explain([100])


def test_explain_shows_pruned_samples_and_labels():
    sampler = WeightedBucketSampler(
        PruningDataset(list(range(12)), prune_frozen_after=1), BucketPolicy(), num_epochs=6
    )
    for epoch in range(3):
        sampler.set_epoch(epoch)
        idx = np.array(sampler.plan)
        sampler.report(np.full(len(idx), 0.01), None, None, idx, label=idx % 3)
    sampler.flush()
    found = sampler.explain(np.arange(12))
    assert found.pruned.any() and (found.draws[found.pruned] == 0).all()
    assert (found.weight[found.pruned] == 0).all()
    assert all(r.startswith("pruned") for r in np.array(found.reason)[found.pruned])
    assert found.label.tolist() == [i % 3 for i in range(12)]


# ------------------------------------------------------------------ reprs, py.typed, from_file
def test_reprs_show_size_buckets_policy_phase_and_epoch():
    sampler = _after_two_epochs()
    text = repr(sampler)
    for part in ("num_samples=100", "policy=BucketPolicy", "epoch=2 (PEAK)", "num_epochs=5"):
        assert part in text
    assert "buckets={'FREEZE': 90, 'HARD': 10}" in text
    store = repr(sampler.store)
    assert store.startswith("GEKOStateStore(num_samples=100, seen=100, pruned=0")
    assert "bucket_codes={1: 90, 4: 10}" in store and "nbytes=1200" in store
    assert repr(GEKOStateStore(3)).startswith("GEKOStateStore(num_samples=3, seen=0")


def test_py_typed_is_packaged():
    assert (ROOT / "gekodata" / "py.typed").is_file()
    config = (ROOT / "pyproject.toml").read_text()
    section = config.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^gekodata = \[.*"py\.typed".*\]', section, re.M)


def test_from_file_is_documented():
    guide = (ROOT / "docs" / "getting-started.md").read_text()
    assert "GEKOStateStore.from_file(" in guide and "sampler.explain(" in guide


def test_suspects_read_by_field_name_too():
    import numpy as np
    import pytest

    from gekodata.diagnostics.suspects import Suspects

    found = Suspects(*(np.arange(2) for _ in range(6)))
    assert found["idx"] is found.idx and found["visits"] is found.visits
    with pytest.raises(KeyError, match="a Suspects field is one of"):
        found["label"]
