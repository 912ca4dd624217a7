"""A newcomer's common first mistakes fail loudly and say the fix (issue 22)."""

import re
import warnings

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

import gekodata.policy as policies
from gekodata import (
    AGGRESSIVE,
    BALANCED,
    CONSERVATIVE,
    BucketPolicy,
    ForgettingPolicy,
    GEKOStateStore,
    InfoBatchPolicy,
    PruningDataset,
    ReducibleLossPolicy,
    SelectionPolicy,
    WeightedBucketSampler,
)
from gekodata.policy import RatePolicy


# ------------------------------------------------------------- 1. Subset(PruningDataset(d))
def test_subset_of_a_pruning_dataset_says_to_wrap_the_other_way_round():
    data = PruningDataset([{"x": i} for i in range(20)])
    subset = Subset(data, list(range(10, 20)))
    sampler = WeightedBucketSampler(subset, num_epochs=2)
    batch = torch.utils.data.default_collate([subset[i] for i in range(4)])
    with pytest.raises(ValueError, match=re.escape("PruningDataset(Subset(d, ...))")):
        sampler.report(torch.ones(4), idx=batch["idx"])


# --------------------------------------------------------------- 2. load called on the class
def test_store_load_on_the_class_says_from_file(tmp_path):
    path = tmp_path / "state.safetensors"
    GEKOStateStore(5).save(path)
    with pytest.raises(TypeError, match=re.escape("GEKOStateStore.from_file(path)")):
        GEKOStateStore.load(path)
    assert len(GEKOStateStore.from_file(path)) == 5
    store = GEKOStateStore(5)
    store.load(path)  # on an instance, as before
    GEKOStateStore.load(store, path)  # and the explicit unbound call


def test_sampler_load_on_the_class_says_build_then_load(tmp_path):
    path = tmp_path / "sampler.safetensors"
    WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=2).save(path)
    with pytest.raises(TypeError, match=re.escape("then call sampler.load(path)")):
        WeightedBucketSampler.load(path)
    WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=2).load(path)


# ------------------------------------------------------------------ 3. strict load settings
def test_strict_load_refuses_another_num_epochs_naming_both(tmp_path):
    path = tmp_path / "sampler.safetensors"
    WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=3).save(path)
    other = WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=5)
    with pytest.raises(ValueError, match=r"saved num_epochs differs.*saved 3, this sampler's 5"):
        other.load(path)
    other.load(path, strict=False)


def test_a_different_setting_names_saved_and_current_values(tmp_path):
    path = tmp_path / "sampler.safetensors"
    WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=3, seed=1).save(path)
    other = WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=3, seed=7)
    with pytest.raises(ValueError, match=r"saved seed differs.*saved 1, this sampler's 7"):
        other.load(path)
    policy = BucketPolicy.preset("balanced")
    WeightedBucketSampler(PruningDataset(list(range(8))), policy, num_epochs=3).save(path)
    other = WeightedBucketSampler(
        PruningDataset(list(range(8))), BucketPolicy.preset("aggressive"), num_epochs=3
    )
    with pytest.raises(
        ValueError, match=r"saved policy differs.*'freeze_confidence': 0\.85.*0\.9"
    ):  # only the entries that differ
        other.load(path)


# ------------------------------------------------------------------------ 4. loss of [B, 1]
def test_loss_with_a_trailing_axis_says_squeeze_and_reduction_none():
    sampler = WeightedBucketSampler(PruningDataset(list(range(8))), num_epochs=2)
    with pytest.raises(ValueError, match=re.escape("use loss.squeeze(-1)")):
        sampler.report(torch.ones(4, 1), idx=torch.arange(4))
    with pytest.raises(ValueError, match=re.escape('reduction="none"')):
        sampler.report(torch.tensor(1.0), idx=torch.arange(4))
    with pytest.raises(ValueError, match=re.escape('per sample (reduction="none")')):
        sampler.report(torch.ones(4, 7), idx=torch.arange(4))  # per token
    assert sampler.pending_reports == 0


# ------------------------------------------------------------------- 5. presets as policies
@pytest.mark.parametrize("name", [AGGRESSIVE, BALANCED, CONSERVATIVE])
def test_a_preset_name_as_policy_says_bucket_policy_preset(name):
    with pytest.raises(TypeError, match=re.escape(f"policy=BucketPolicy.preset({name!r})")):
        WeightedBucketSampler(PruningDataset(list(range(8))), name, num_epochs=2)
    sampler = WeightedBucketSampler(
        PruningDataset(list(range(8))), BucketPolicy.preset(name), num_epochs=2
    )
    assert isinstance(sampler.policy, BucketPolicy)


def test_the_policy_type_error_lists_every_builtin_policy():
    from gekodata.policy.registry import BUILTIN_POLICIES

    exported = {
        value
        for value in vars(policies).values()
        if isinstance(value, type)
        and issubclass(value, SelectionPolicy)
        and value not in (SelectionPolicy, RatePolicy)  # the interface and a frame, not policies
    }
    assert exported == set(BUILTIN_POLICIES)
    with pytest.raises(TypeError, match="policy must be a SelectionPolicy") as raised:
        WeightedBucketSampler(PruningDataset(list(range(8))), {"kind": "bucket"}, num_epochs=2)
    for cls in exported:
        assert cls.__name__ in str(raised.value)
    with pytest.raises(TypeError, match=re.escape("got the class InfoBatchPolicy")):
        WeightedBucketSampler(PruningDataset(list(range(8))), InfoBatchPolicy, num_epochs=2)


# ------------------------------------------------------------------ 6. the item's own weight
@pytest.mark.parametrize("kind", [dict, "userdict"])
def test_an_item_weight_key_is_refused_in_unbiased_mode(kind):
    from collections import UserDict

    make = dict if kind is dict else UserDict
    data = PruningDataset([make(x=i, weight=0.5) for i in range(8)])
    assert data[0]["weight"] == 0.5  # no loss weights: the item's own key passes through
    WeightedBucketSampler(data, num_epochs=2, unbiased=True)
    with pytest.raises(ValueError, match=r"already has a key 'weight'.*pass weight_key="):
        data[0]
    with pytest.raises(ValueError, match="already has a key 'weight'"):
        data.__getitems__([0, 1])
    renamed = PruningDataset([make(x=i, weight=0.5) for i in range(8)], weight_key="w")
    WeightedBucketSampler(renamed, num_epochs=2, unbiased=True)
    assert renamed[0]["weight"] == 0.5 and renamed[0]["w"] == 1.0


def test_the_docstring_says_what_a_tuple_batch_is():
    doc = PruningDataset.__doc__
    assert '``batch["weight"]`` (``weight_key``) exists only when the sampler has loss weights' in (
        " ".join(doc.split())
    )
    assert "*fields, idx = batch" in doc
    data = PruningDataset(TensorDataset(torch.arange(4.0)))
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    *_fields, idx = batch
    assert idx.tolist() == [0, 1, 2, 3]


# -------------------------------------------------------- 7. pruning that defeats the policy
def test_rechecks_skipped_is_declared_per_class():
    assert SelectionPolicy.rechecks_skipped is False
    assert BucketPolicy.rechecks_skipped is False and InfoBatchPolicy.rechecks_skipped is False
    assert ForgettingPolicy.rechecks_skipped and ReducibleLossPolicy.rechecks_skipped


@pytest.mark.parametrize("policy", [ForgettingPolicy(), ReducibleLossPolicy()])
def test_pruning_with_a_rate_policy_warns_at_construction(policy):
    data = PruningDataset(list(range(8)), prune_frozen_after=2)
    store = GEKOStateStore(8)
    store.set_reference_loss(None, torch.full((8,), 0.1))  # ReducibleLossPolicy reads it
    with pytest.warns(UserWarning, match="Drop prune_frozen_after, or use BucketPolicy"):
        sampler = WeightedBucketSampler(data, policy, num_epochs=3, store=store)
    sampler.report(torch.ones(8), idx=torch.arange(8))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*prune_frozen_after.*")
        sampler.set_epoch(1)  # once, when the run starts


def test_pruning_with_bucket_policy_does_not_warn():
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*prune_frozen_after.*")
        WeightedBucketSampler(
            PruningDataset(list(range(8)), prune_frozen_after=2), BucketPolicy(), num_epochs=3
        )
        WeightedBucketSampler(PruningDataset(list(range(8))), ForgettingPolicy(), num_epochs=3)
