"""gekobench: the benchmark protocol of DESIGN.md §4 as an importable package.

Modules, one concept each: :mod:`.paths` (where results and docs live), :mod:`.machine`,
:mod:`.data` (tensor datasets, accuracy, label noise), :mod:`.tasks` (data + model per task),
:mod:`.variants` (selection-study training sets), :mod:`.arms` (named arm specs),
:mod:`.runner` (the training loop), :mod:`.stats` (paired statistics), :mod:`.results` (JSON
files), :mod:`.study` (run / rerun / extend a task's arms), :mod:`.tables` and :mod:`.plots`
(rendering), :mod:`.docs` (the docs/benchmarks pages).
"""
