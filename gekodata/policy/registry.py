"""Rebuilding a policy from its config: the policy kinds by name.

A policy's :meth:`~gekodata.policy.SelectionPolicy.config` is saved with the sampler;
:func:`policy_from_config` turns it back into a policy by its ``"kind"`` (no kind: ``"bucket"``).
A new policy joins by adding its kind to ``POLICY_KINDS`` (and its class to
``BUILTIN_POLICIES``). :func:`not_a_policy` is the error for a value given where a policy belongs.
"""

from __future__ import annotations

from typing import Any, Callable

from .auto import AutoPolicy
from .base import SelectionPolicy
from .forgetting import ForgettingPolicy
from .geko import BucketPolicy
from .infobatch import InfoBatchPolicy
from .prompt_policy import PromptPolicy
from .reducible import ReducibleLossPolicy
from .user_weights import WeightPolicy


def _infobatch_from_config(config: dict[str, Any]) -> SelectionPolicy:
    return InfoBatchPolicy(**config)


# kind -> builder from the config without its "kind" key
POLICY_KINDS: dict[str, Callable[[dict[str, Any]], SelectionPolicy]] = {
    "bucket": BucketPolicy.from_config,
    "infobatch": _infobatch_from_config,
    "prompt": PromptPolicy.from_config,
    ForgettingPolicy.KIND: ForgettingPolicy.from_config,
    AutoPolicy.KIND: AutoPolicy.from_config,
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


BUILTIN_POLICIES: tuple[type[SelectionPolicy], ...] = (
    AutoPolicy,
    BucketPolicy,
    ForgettingPolicy,
    InfoBatchPolicy,
    PromptPolicy,
    ReducibleLossPolicy,
    WeightPolicy,
)
"""The policy classes gekodata offers, as the error for a non-policy lists them."""

PRESETS = ("aggressive", "balanced", "conservative")
"""The names of :meth:`BucketPolicy.preset` (``AGGRESSIVE``, ``BALANCED``, ``CONSERVATIVE``)."""


def not_a_policy(value: Any, name: str = "policy") -> TypeError:
    """The ``TypeError`` for ``value`` given as ``name`` that is not a
    :class:`SelectionPolicy`: it lists the built-in policies, and for a string (a preset's name,
    e.g. ``AGGRESSIVE``) says to build the preset with ``BucketPolicy.preset(name)``."""
    classes = ", ".join(cls.__name__ for cls in BUILTIN_POLICIES)
    if isinstance(value, str):
        hint = (
            f"{value!r} is a preset's name, not a policy: pass "
            f"{name}=BucketPolicy.preset({value!r})"
            if value.lower() in PRESETS
            else f"a string is not a policy; BucketPolicy.preset(name) takes one of {list(PRESETS)}"
        )
        return TypeError(
            f"{name} must be a SelectionPolicy, got the string {value!r}: {hint} "
            f"(built-in policies: {classes})"
        )
    if isinstance(value, type) and issubclass(value, SelectionPolicy):
        return TypeError(
            f"{name} must be a SelectionPolicy instance, got the class {value.__name__}: "
            f"pass {value.__name__}(...)"
        )
    return TypeError(
        f"{name} must be a SelectionPolicy (one of the built-in policies {classes}, or your "
        f"own subclass), got {type(value).__name__}"
    )
