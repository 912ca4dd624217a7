"""The torch ``Sampler`` and its runtime: the report buffer and its collective gather at sync
points, sharding of the global plan by rank, the resumable stream position, the epoch accounting
and the sampler's files."""

from .weighted_bucket import WeightedBucketSampler

__all__ = ["WeightedBucketSampler"]
