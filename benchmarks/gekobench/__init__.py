"""gekobench: the benchmark protocol of DESIGN.md §4 as an importable package.

The CLIs are ``python -m benchmarks.<name>`` (thin wrappers over these modules). One concept each:

* where things live and what ran: :mod:`.paths`, :mod:`.machine`, :mod:`.examples`;
* time to quality: :mod:`.data` (tensor datasets, accuracy, label noise), :mod:`.tasks` (data +
  model per task), :mod:`.variants` (selection-study training sets), :mod:`.arms` (named arm specs
  and registries), :mod:`.runner` (the training loop), :mod:`.study` (run / rerun / extend a task),
  :mod:`.default_choice` (choosing the default policy), :mod:`.reproduce`;
* statistics and files: :mod:`.stats` (paired statistics), :mod:`.results` (JSON read / write /
  merge);
* rendering from JSON: :mod:`.tables`, :mod:`.plots`, :mod:`.report_noise`, :mod:`.report_rl`,
  :mod:`.report_tokens`, :mod:`.docs` (the docs/benchmarks pages);
* other benchmarks' code: :mod:`.rl_grpo`, :mod:`.greso`, :mod:`.rl_sim`, :mod:`.token_arms`,
  :mod:`.overhead_cost`, :mod:`.tiny_loop`, :mod:`.scale_cost`.
"""
