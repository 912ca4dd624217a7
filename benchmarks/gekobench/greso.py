"""GRESO-style pre-rollout skipping, the baseline arm of both RL benchmarks (``rl_sim`` and ``rl``).

GRESO (Zheng et al. 2025, "Act Only When It Pays"; read, not copied): a prompt whose last ``z``
rollouts were all zero-variance (every completion of its group rewarded alike) is skipped before
rollout with probability ``1 - p ** z``, ``p = p_easy`` for an all-right run and ``p_hard`` for an
all-wrong one; after every rollout batch each ``p`` moves by ``STEP`` (0.01) toward a target share
of zero-variance groups among the batch's rolled-out prompts (``target`` 25% in all, ``hard`` of it
all wrong), within [``FLOOR``, 1]. Both rates start at 0.5.

:class:`GresoSkip` holds that state; the callers decide what a batch is (the simulation filters
fixed chunks of 256 candidates; the tiny-LM benchmark fills each rollout batch with kept prompts,
as GRESO keeps its batch size by drawing more candidates).
"""

from __future__ import annotations

import numpy as np


class GresoSkip:
    """GRESO's skip rule over ``n`` prompts (module docstring); its own generator from ``seed``."""

    STEP, FLOOR = 0.01, 0.01

    def __init__(self, n: int, seed: int, target: float = 0.25, hard: float = 0.5) -> None:
        self.n = n
        # signed zero-variance run per prompt: +k all right k times running, -k all wrong
        self.run = np.zeros(n, dtype=np.int64)
        self.p = np.array([0.5, 0.5])  # keep rates per zero-variance rollout: easy, hard
        self.targets = np.array([target * (1 - hard), target * hard])
        self.rng = np.random.default_rng([seed, 11])

    def order(self) -> np.ndarray:
        """This epoch's candidate order: a fresh permutation of the prompts."""
        return self.rng.permutation(self.n)

    def keep(self, candidates: np.ndarray) -> np.ndarray:
        """The candidates that survive the skip draw (one uniform draw per candidate, in order)."""
        run = self.run[candidates]
        base = np.where(run > 0, self.p[0], self.p[1])
        keep = np.where(run == 0, 1.0, base ** np.abs(run))
        return candidates[self.rng.random(len(candidates)) < keep]

    def observe(self, rolled: np.ndarray, all_right: np.ndarray, all_wrong: np.ndarray) -> None:
        """One rollout batch's groups (bool masks over ``rolled``): step the rates toward their
        targets, then extend or reset each rolled-out prompt's run. No-op for an empty batch."""
        if not len(rolled):
            return
        shares = np.array([all_right.mean(), all_wrong.mean()])
        step = np.where(shares > self.targets, -self.STEP, self.STEP)
        self.p = np.clip(self.p + step, self.FLOOR, 1.0)
        prev = self.run[rolled]
        self.run[rolled] = np.where(
            all_right, np.maximum(prev, 0) + 1, np.where(all_wrong, np.minimum(prev, 0) - 1, 0)
        )

    @property
    def keep_rates(self) -> tuple[float, float]:
        """The current (all-right, all-wrong) keep rates."""
        return float(self.p[0]), float(self.p[1])
