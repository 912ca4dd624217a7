"""Warnings for two loop mistakes the sampler can see, each naming the fix (issue 22).

* **A new pass without ``set_epoch``** (:func:`warn_extra_pass`): ``iter()`` over the same
  epoch's plan starts again after a pass ran to its end and was reported. The loop forgot
  ``sampler.set_epoch(epoch)`` (or passes the same number every epoch): the same indices repeat,
  nothing is folded into the store, the report buffer grows, and the run learns nothing.

  The sampler warns and carries on with the same plan; it neither refuses nor advances the
  epoch itself. Refusing would break loaders that legitimately call ``iter()`` on a sampler more
  than once per epoch (torchdata's ``StatefulDataLoader`` does so when it restores a state with
  workers), and ``iter()`` never plans, folds or communicates (a collective in ``iter()`` would
  hang ranks that iterate differently). Counting starts only after reports: iterating a plan
  twice to inspect it (``list(sampler)``) is not a mistake. The epoch's record counts the passes
  (:attr:`~gekodata.planning.record.EpochRecord.extra_passes`), and the efficiency report then
  says so in place of a negative saving.

* **Reports for samples not in the epoch's plan** (:func:`warn_unplanned`): an evaluation pass
  reported as training, or indices of another split. Checked where the rows are on the host
  anyway, at the sync point that folds them (no host sync per report for CUDA tensors), with one
  vectorized membership test per window. The rows are folded as reported (an accepted call is
  never lost) and counted in :attr:`~gekodata.planning.record.EpochRecord.unplanned`.

Each warns once per epoch; warnings are ``UserWarning`` whose message starts ``gekodata:``.
"""

from __future__ import annotations

import warnings


def warn_extra_pass(epoch: int, planned: int, pending: int, stacklevel: int) -> None:
    """Warn that a second pass over epoch ``epoch``'s plan (``planned`` indices on this rank)
    started without ``set_epoch``, with ``pending`` reported rows not yet folded."""
    warnings.warn(
        f"gekodata: a new pass over epoch {epoch}'s plan started after the last one ran to its "
        f"end and was reported, without sampler.set_epoch: the same {planned} indices repeat, "
        f"{pending} reported rows wait unfolded and nothing is learned. Did the loop forget "
        "set_epoch? Call sampler.set_epoch(epoch) before each epoch (for epoch in "
        "range(num_epochs): sampler.set_epoch(epoch); for batch in loader: ...), with a new "
        "epoch number each time",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def warn_unplanned(epoch: int, unplanned: int, rows: int, stacklevel: int) -> None:
    """Warn that ``unplanned`` of ``rows`` reported rows folded in epoch ``epoch`` are for samples
    not in its plan."""
    warnings.warn(
        f"gekodata: {unplanned} of {rows} reported rows folded in epoch {epoch} are for samples "
        "that are not in this epoch's plan (an evaluation pass reported as training, or indices "
        "of another split?). They are folded into the store and counted as 'unplanned' in the "
        "epoch record and the efficiency report. Report training passes only (do not call "
        "sampler.report in the evaluation loop), with the indices PruningDataset attached to "
        "the batch the sampler drew",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


__all__ = ["warn_extra_pass", "warn_unplanned"]
