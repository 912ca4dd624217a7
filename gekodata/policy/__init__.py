"""Selection policies: what turns per-sample state into sampling weights."""
from .bucket_policy import (AGGRESSIVE, BALANCED, CONSERVATIVE, NUM_BUCKETS, Bucket, BucketPolicy, Curriculum,
                            InfoBatchPolicy, Phase, SelectionPolicy, policy_from_config)

__all__ = [
    "AGGRESSIVE",
    "BALANCED",
    "CONSERVATIVE",
    "NUM_BUCKETS",
    "Bucket",
    "BucketPolicy",
    "Curriculum",
    "InfoBatchPolicy",
    "Phase",
    "SelectionPolicy",
    "policy_from_config",
]
