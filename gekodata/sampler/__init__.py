"""The torch ``Sampler`` and its runtime: the report buffer and its collective gather at sync
points, sharding of the global plan by rank, the resumable stream position, the epoch accounting
and the sampler's files."""

from ..arguments import instance_only
from .weighted_bucket import WeightedBucketSampler

# ``WeightedBucketSampler.load(path)`` on the class: a TypeError that says what to do instead
setattr(  # noqa: B010 (mypy refuses assigning to a method)
    WeightedBucketSampler,
    "load",
    instance_only(
        "build the sampler as for the run that saved the file (same dataset, policy and "
        "settings), then call sampler.load(path)"
    )(WeightedBucketSampler.__dict__["load"]),
)

__all__ = ["WeightedBucketSampler"]
