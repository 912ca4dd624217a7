"""Per-sample state: the column layout, the loss codec, the update kernels, optional signal
columns, the named views policies read (:mod:`.views`) and the store files. :class:`GEKOStateStore`
is the one public class; it records what was reported, and keeps the bucket codes and pruned flags
the sampler writes back without knowing what a policy means by them."""

from .state_store import GEKOStateStore

__all__ = ["GEKOStateStore"]
