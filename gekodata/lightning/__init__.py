"""PyTorch Lightning glue: :class:`GekoCallback` trains a ``LightningModule`` on a gekodata plan.

* :mod:`gekodata.lightning.callback`: :class:`GekoCallback` (set_epoch, reports from
  ``training_step``'s output, checkpoints inside Lightning's).
* :mod:`gekodata.lightning.outputs`: the ``training_step`` contract (:data:`OUTPUT_KEY`).
* :mod:`gekodata.lightning.checkpoint`: the sampler's state as checkpoint entries.
* :mod:`gekodata.lightning.loop`: what the callback reads and sets on Lightning's fit loop (the
  per-epoch length), and the setup checks; :data:`TESTED` the Lightning releases covered.
* :mod:`gekodata.lightning.schedule`: :func:`plan_progress_lr`, an LR schedule by plan progress.

Importing this package does not need Lightning; building :class:`GekoCallback` without it raises
``ImportError`` (``pip install 'gekodata[lightning]'``). The guide is ``docs/integrations/lightning.md``.
"""

from .callback import GekoCallback
from .outputs import OUTPUT_KEY, geko_outputs
from .schedule import plan_progress_lr

__all__ = ["OUTPUT_KEY", "GekoCallback", "geko_outputs", "plan_progress_lr"]
