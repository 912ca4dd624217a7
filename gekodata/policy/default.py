"""The policy a sampler gets when it is given none, and the evidence it was chosen by.

:func:`default_policy` is ``BucketPolicy()``: GEKO's buckets, thresholds and mountain curriculum,
no noise guard. It stays the default because no candidate measured against it was better on
every task (issue 13; ``benchmarks/select_default.py``, README "Selection: does choosing beat
training less?").

**What was compared.** A bare ``WeightedBucketSampler(ds)`` has no training labels, so the
candidates were label-free (and one that guards only where the store knows labels, which without
them *is* this policy): the mountain alone; with the noise guard at streaks 2, 3, 4; at streak 2
with a confidence test (``suspect_confidence`` 0.1 or 0.05: a SUSPECT must put at most that on its
label); the balanced preset with the guard (streak 2, 3, and 2 with the 0.1 test);
``ForgettingPolicy()``. Each ran on T2's four training-set variants (clean, 20% flipped labels,
half near-duplicates, three classes 10x rarer) with tuning seeds 100-104, each next to a random
subset of its own epoch sizes and a same-budget run, scored by the issue's goal.

**What it showed.**

* The mountain alone loses where labels are noisy: its PEAK epochs train only the wrong samples,
  there mostly the flipped ones (T2 tuning seeds: -0.011 against its random subset; T3: -0.008).
  It is ahead of its random subset on clean, redundant and imbalanced T2 data.
* The mountain with the guard and the 0.1 confidence test won the tuning round (13 of 16 checks,
  the mountain alone 9), and then failed the check task: without labels it took T3's rare classes
  for noise (macro accuracy 0.787 against 0.878 for the mountain alone). A guard must not mistake a
  rare class for noise, and without labels it cannot tell them apart.
* The same guard restricted to samples of known label (``suspect_needs_labels=True``, labels given)
  keeps the rare classes (T3 macro 0.871) and helps on noisy data (T2 tuning +0.007 against its
  random subset, where the mountain is -0.011), but costs 0.005-0.006 on clean data on T2's
  reported seeds and on T3. Not a win everywhere either.

So: keep GEKO's policy, and pick by data (README): with noisy labels ``ForgettingPolicy()`` or
``BucketPolicy(noise_guard=True, suspect_confidence=0.1, suspect_needs_labels=True)``, each with
``sampler.store.set_labels(labels)``.
"""

from __future__ import annotations

from .geko import BucketPolicy


def default_policy() -> BucketPolicy:
    """A fresh ``BucketPolicy()``: what :class:`~gekodata.sampler.weighted_bucket.WeightedBucketSampler` uses when
    it is given no policy (the module docstring says why)."""
    return BucketPolicy()
