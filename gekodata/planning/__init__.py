"""Planning an epoch: pure functions from (store, policy, budget, seed, epoch) to per-sample draw
counts, per-class draw counts, a keyed permutation and the epoch's index stream, plus the
forgetting audit's picks and the epoch's record."""
