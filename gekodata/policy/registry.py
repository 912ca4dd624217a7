"""Rebuilding a policy from its config: the policy kinds by name.

A policy's :meth:`~gekodata.policy.SelectionPolicy.config` is saved with the sampler;
:func:`policy_from_config` turns it back into a policy by its ``"kind"`` (no kind: ``"bucket"``).
A new policy joins by adding its kind to ``POLICY_KINDS``.
"""

from __future__ import annotations

from typing import Any, Callable

from .base import SelectionPolicy
from .forgetting import ForgettingPolicy
from .geko import BucketPolicy
from .infobatch import InfoBatchPolicy
from .prompt_policy import PromptPolicy
from .reducible import ReducibleLossPolicy
from .user_weights import WeightPolicy


def _infobatch_from_config(config: dict[str, Any]) -> SelectionPolicy:
    return InfoBatchPolicy(**config)


def _prompt_from_config(config: dict[str, Any]) -> SelectionPolicy:
    return PromptPolicy(**config)


# kind -> builder from the config without its "kind" key
POLICY_KINDS: dict[str, Callable[[dict[str, Any]], SelectionPolicy]] = {
    "bucket": BucketPolicy.from_config,
    "infobatch": _infobatch_from_config,
    "prompt": _prompt_from_config,
    ForgettingPolicy.KIND: ForgettingPolicy.from_config,
    ReducibleLossPolicy.KIND: ReducibleLossPolicy.from_config,
    WeightPolicy.KIND: WeightPolicy.from_config,
}


def policy_from_config(config: dict[str, Any]) -> SelectionPolicy:
    """Rebuild a policy from its :meth:`~SelectionPolicy.config`."""
    kwargs = dict(config)
    kind = kwargs.pop("kind", "bucket")
    build = POLICY_KINDS.get(kind) if isinstance(kind, str) else None
    if build is None:
        raise ValueError(f"unknown policy kind {kind!r}")
    return build(kwargs)
