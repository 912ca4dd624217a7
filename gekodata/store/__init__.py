"""Per-sample state: the column layout, the loss codec, the update kernels, optional signal
columns and the store files. :class:`GEKOStateStore` is the one public class; it records what was
reported and knows nothing of what a policy makes of it."""

from .state_store import GEKOStateStore

__all__ = ["GEKOStateStore"]
