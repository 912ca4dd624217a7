"""The transformers / trl range GekoTrainer is tested with: stated in pyproject.toml, enforced at construction."""

import os
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from support.hf_toy import ToyText, tiny_bert
from transformers import Trainer, TrainingArguments

from gekodata import PruningDataset, WeightedBucketSampler
from gekodata.hf import GekoTrainer, GekoTrainerMixin, compat

ROOT = Path(__file__).resolve().parent.parent


def extras():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_pyproject_states_the_tested_ranges():
    found = {}
    for extra in ("hf", "trl"):
        for line in extras()[extra]:
            req = Requirement(line)
            if req.name in compat.TESTED:
                found.setdefault(req.name, set()).add(str(req.specifier))
    assert found == {name: {str(SpecifierSet(spec))} for name, spec in compat.TESTED.items()}


def test_installed_versions_are_the_tested_ones():
    """The suite runs on the range it claims (else the claim would be untested)."""
    packages = [p for p in compat.TESTED if p == "transformers" or _importable(p)]
    assert compat.untested_versions(packages) == {}


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def build(tmp_path, cls=GekoTrainer):
    ds = PruningDataset(ToyText(8))
    args = TrainingArguments(
        str(tmp_path), num_train_epochs=1, report_to=[], use_cpu=True, save_strategy="no"
    )
    sampler = WeightedBucketSampler(ds, num_epochs=1, shard=False)
    return cls(model=tiny_bert(), args=args, train_dataset=ds, sampler=sampler)


def test_untested_version_raises_or_warns_when_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(compat, "_installed", lambda package: "5.99.0")
    monkeypatch.delenv(compat.ALLOW_UNTESTED, raising=False)
    expected = r"tested with transformers>=5\.\d+,<5\.\d+; installed: transformers 5\.99\.0"
    with pytest.raises(RuntimeError, match=expected):
        build(tmp_path)
    monkeypatch.setenv(compat.ALLOW_UNTESTED, "1")
    with pytest.warns(UserWarning, match="5.99.0"):
        trainer = build(tmp_path)
    assert isinstance(trainer, GekoTrainer)


def test_changed_private_method_is_refused_even_when_allowed(tmp_path, monkeypatch):
    class Renamed(Trainer):  # a release whose _run_epoch takes other arguments
        def _run_epoch(self, model, epoch, loader, **kwargs):
            raise AssertionError("never reached")

    class OnRenamed(GekoTrainerMixin, Renamed):
        pass

    monkeypatch.setenv(compat.ALLOW_UNTESTED, "1")
    expected = r"private Trainer methods it extends changed \(_run_epoch: Renamed\._run_epoch"
    with pytest.raises(RuntimeError, match=expected):
        build(tmp_path, OnRenamed)
    assert compat.missing_hooks([object]) == {name: "missing" for name in compat.PRIVATE_HOOKS}
