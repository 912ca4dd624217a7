"""Selection policies: what turns per-sample state into sampling weights.

* :mod:`~gekodata.policy.buckets`: :class:`Bucket` codes and the checks the policies share.
* :mod:`~gekodata.policy.curriculum`: :class:`Phase` and :class:`Curriculum`, bucket weights over
  the run's progress (GEKO's "mountain").
* :mod:`~gekodata.policy.base`: :class:`SelectionPolicy`, what the sampler asks of a policy.
* :mod:`~gekodata.policy.geko`: :class:`BucketPolicy`, GEKO's bucket rules, presets and
  the noise guard.
* :mod:`~gekodata.policy.infobatch`: :class:`InfoBatchPolicy` (Qin et al., ICLR 2024).
* :mod:`~gekodata.policy.prompt_policy`: :class:`PromptPolicy`, RL prompts planned from their
  groups' outcomes (GRESO-style skipping of zero-variance prompts, learnability).
* :mod:`~gekodata.policy.rates`: :class:`RatePolicy`, the frame of the policies below (draw rates
  in [0, 1], no boost, no starving epochs, optional noise guard and InfoBatch rescaling).
* :mod:`~gekodata.policy.forgetting`: :class:`ForgettingPolicy`, skip samples learned and never
  forgotten (Toneva et al., ICLR 2019).
* :mod:`~gekodata.policy.reducible`: :class:`ReducibleLossPolicy`, select by reducible loss
  (RHO-LOSS, Mindermann et al., ICML 2022).
* :mod:`~gekodata.policy.user_weights`: :class:`WeightPolicy`, the user's own per-sample weights
  (a distributed, resumable weighted sampler; weights may change between epochs).
* :mod:`~gekodata.policy.guard`: the noise guard, once: :class:`~gekodata.policy.guard.NoiseGuard`
  (its settings and test, class-aware with labels in the store) and
  :class:`~gekodata.policy.guard.GuardedPolicy` (the settings every guarded policy shares).
* :mod:`~gekodata.policy.registry`: :func:`policy_from_config`, a policy back from its config.
* :mod:`~gekodata.policy.diagnosis`: :class:`~gekodata.policy.diagnosis.DataDiagnosis`, what the
  store's signals say about the data (mislabeled share, class balance, redundancy).
* :mod:`~gekodata.policy.auto`: :class:`AutoPolicy`, the default: skip what is learned, keep rare
  classes, guard against noisy labels only where the diagnosis finds them.
* :mod:`~gekodata.policy.default`: :func:`default_policy`, the sampler's policy when it is given
  none, and the evidence it was chosen by.
"""

from .auto import AutoPolicy
from .base import SelectionPolicy
from .buckets import NUM_BUCKETS, Bucket
from .curriculum import Curriculum, Phase
from .default import default_policy
from .forgetting import ForgettingPolicy
from .geko import AGGRESSIVE, BALANCED, CONSERVATIVE, BucketPolicy
from .infobatch import InfoBatchPolicy
from .prompt_policy import PromptPolicy
from .rates import RatePolicy
from .reducible import ReducibleLossPolicy
from .registry import POLICY_KINDS, policy_from_config
from .user_weights import WeightPolicy

__all__ = [
    "AGGRESSIVE",
    "BALANCED",
    "CONSERVATIVE",
    "NUM_BUCKETS",
    "POLICY_KINDS",
    "AutoPolicy",
    "Bucket",
    "BucketPolicy",
    "Curriculum",
    "ForgettingPolicy",
    "InfoBatchPolicy",
    "Phase",
    "PromptPolicy",
    "RatePolicy",
    "ReducibleLossPolicy",
    "SelectionPolicy",
    "WeightPolicy",
    "default_policy",
    "policy_from_config",
]
