"""Which transformers / trl releases the trainers are tested with, checked when one is built.

:class:`~gekodata.hf.GekoTrainerMixin` extends four private ``Trainer`` methods (the module
docstring of :mod:`gekodata.hf.trainer` says which and why). A release may rename them, change
their arguments or what ``Trainer`` does around them, and then the plan would silently go wrong
(a full-length epoch where gekodata planned a short one, a resume at the wrong batch). So building
:class:`~gekodata.hf.GekoTrainer` or :class:`~gekodata.hf.GekoSFTTrainer` checks:

1. every private method the mixin extends exists on the trainer class, with the parameters the
   mixin is written against; otherwise ``RuntimeError``, always (the mixin cannot work);
2. the installed versions are in :data:`TESTED` (the ranges the test suite covers; the ``hf`` and
   ``trl`` extras in ``pyproject.toml`` state the same ranges, and ``tests/test_hf_compat.py`` checks that
   they agree); otherwise ``RuntimeError`` naming both, unless the environment variable
   :data:`ALLOW_UNTESTED` is ``1``: then a ``UserWarning`` and the run goes on, at your risk (run
   ``tests/test_hf.py`` and ``tests/test_hf_sft.py`` against that release first).

Needs ``packaging`` (a dependency of transformers) when a check runs, nothing at import.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Iterable, Sequence

# The releases tests/test_hf.py (and tests/test_hf_sft.py for trl) pass on (PEP 440 specifiers).
TESTED: dict[str, str] = {"transformers": ">=5.24,<5.25", "trl": ">=1.16,<1.17"}

ALLOW_UNTESTED = "GEKODATA_ALLOW_UNTESTED_VERSIONS"

# private Trainer method -> the parameters GekoTrainerMixin's override relies on (in order)
PRIVATE_HOOKS: dict[str, tuple[str, ...]] = {
    "_get_train_sampler": ("train_dataset",),
    "_set_signature_columns_if_needed": (),
    "_run_epoch": (
        "model",
        "epoch",
        "train_dataloader",
        "steps_in_epoch",
        "num_update_steps_per_epoch",
        "trial",
        "ignore_keys_for_eval",
        "start_time",
        "resume_from_checkpoint",
        "epochs_trained",
        "steps_trained_in_current_epoch",
    ),
    "_init_training_state": (
        "max_steps",
        "num_update_steps_per_epoch",
        "num_train_epochs",
        "resume_from_checkpoint",
        "trial",
    ),
}


def _installed(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except (
        PackageNotFoundError
    ):  # pragma: no cover - importable but not installed as a distribution
        module = __import__(package)
        return str(getattr(module, "__version__", "0"))


def untested_versions(packages: Iterable[str]) -> dict[str, str]:
    """``{package: installed version}`` for each of ``packages`` outside its :data:`TESTED` range."""
    from packaging.specifiers import SpecifierSet

    out = {}
    for package in packages:
        installed = _installed(package)
        if not SpecifierSet(TESTED[package]).contains(installed, prereleases=True):
            out[package] = installed
    return out


def missing_hooks(
    bases: Sequence[type], hooks: dict[str, tuple[str, ...]] | None = None
) -> dict[str, str]:
    """``{method: what is wrong}`` for each entry of ``hooks`` (default :data:`PRIVATE_HOOKS`)
    that ``bases`` (the classes after the mixin in a trainer's MRO: ``SFTTrainer``, ``Trainer``,
    ...) lack, or define with other parameters than the ones the override is written against."""
    problems = {}
    for name, expected in (PRIVATE_HOOKS if hooks is None else hooks).items():
        owner = next((klass for klass in bases if name in vars(klass)), None)
        if owner is None:
            problems[name] = "missing"
            continue
        params = tuple(p for p in inspect.signature(vars(owner)[name]).parameters if p != "self")
        if params != expected:
            problems[name] = f"{owner.__name__}.{name}{params} (expected {expected})"
    return problems


def check_supported(
    name: str,
    bases: Sequence[type],
    packages: tuple[str, ...],
    hooks: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Raise unless ``bases`` have the private ``hooks`` (default :data:`PRIVATE_HOOKS`) and
    ``packages`` are in their tested range (``name``: the trainer class, for the messages). The
    one check behind every gekodata trainer (GekoTrainer, GekoSFTTrainer, GekoGRPOTrainer)."""
    broken = missing_hooks(bases, hooks)
    if broken:
        details = "; ".join(f"{name}: {why}" for name, why in broken.items())
        raise RuntimeError(
            f"{name} cannot run on this transformers release: the private Trainer methods it "
            f"extends changed ({details}). Install a tested release: "
            + ", ".join(f"{p}{TESTED[p]}" for p in packages)
        )
    untested = untested_versions(packages)
    if not untested:
        return
    message = (
        f"{name} is tested with "
        + ", ".join(f"{p}{TESTED[p]}" for p in packages)
        + "; installed: "
        + ", ".join(f"{p} {v}" for p, v in untested.items())
        + ". It extends private Trainer methods, and a release that changes them can silently change "
        "gekodata's plan (epoch lengths, LR schedule, resume position). Install a tested release, or set "
        f"{ALLOW_UNTESTED}=1 to run anyway (after running tests/test_hf.py against this release)"
    )
    if os.environ.get(ALLOW_UNTESTED) == "1":
        warnings.warn(message, UserWarning, stacklevel=3)
        return
    raise RuntimeError(message)


__all__ = [
    "ALLOW_UNTESTED",
    "PRIVATE_HOOKS",
    "TESTED",
    "check_supported",
    "missing_hooks",
    "untested_versions",
]
