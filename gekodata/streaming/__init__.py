"""Selection on streams: keep or skip each example of an iterable source as it passes.

* :mod:`~gekodata.streaming.keys`: the counter-based uniform of (seed, epoch, sample id).
* :mod:`~gekodata.streaming.selector`: :class:`StreamSelector`, the store, the policy, reports,
  and each epoch's keep probability per sample id.
* :mod:`~gekodata.streaming.stream`: :class:`SelectedStream`, the filtering ``IterableDataset``
  over a torch or HF ``datasets`` iterable source.

Needs nothing beyond gekodata's own dependencies; HF ``datasets``, torchdata and Mosaic
``streaming`` sources plug in as iterables (docs/streaming.md).
"""

from .keys import epoch_key, uniform, uniform_one
from .selector import StreamSelector
from .stream import SelectedStream

__all__ = ["SelectedStream", "StreamSelector", "epoch_key", "uniform", "uniform_one"]
