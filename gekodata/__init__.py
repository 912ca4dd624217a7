"""gekodata: a PyTorch data layer that decides what gets trained.

Plug a :class:`WeightedBucketSampler` and a :class:`PruningDataset` into your own DataLoader and
call ``sampler.report(signals, idx)`` in your loop; gekodata keeps per-sample state, sorts
samples into buckets and plans each epoch from them.
"""

from .dataset import PruningDataset
from .diagnostics.efficiency import EfficiencyReport, EpochRecord
from .policy import (
    AGGRESSIVE,
    BALANCED,
    CONSERVATIVE,
    AutoPolicy,
    Bucket,
    BucketPolicy,
    Curriculum,
    ForgettingPolicy,
    InfoBatchPolicy,
    Phase,
    PromptPolicy,
    ReducibleLossPolicy,
    SelectionPolicy,
    WeightPolicy,
    default_policy,
)
from .policy.diagnosis import DataDiagnosis
from .sampler.weighted_bucket import WeightedBucketSampler
from .signals import (
    Signals,
    causal_lm_signals,
    classification_signals,
    multi_label_signals,
    regression_signals,
)
from .store.state_store import GEKOStateStore

__version__ = "0.1.0"

__all__ = [
    "AGGRESSIVE",
    "BALANCED",
    "CONSERVATIVE",
    "AutoPolicy",
    "Bucket",
    "BucketPolicy",
    "Curriculum",
    "DataDiagnosis",
    "EfficiencyReport",
    "EpochRecord",
    "ForgettingPolicy",
    "GEKOStateStore",
    "InfoBatchPolicy",
    "Phase",
    "PromptPolicy",
    "PruningDataset",
    "ReducibleLossPolicy",
    "SelectionPolicy",
    "Signals",
    "WeightPolicy",
    "WeightedBucketSampler",
    "__version__",
    "causal_lm_signals",
    "classification_signals",
    "default_policy",
    "multi_label_signals",
    "regression_signals",
]
