"""Rerun a committed time-to-quality result's arms for one seed and compare with the JSON.

    python -m benchmarks.reproduce t3_clean --seed 0              # every arm of seed 0 (~15 s)
    python -m benchmarks.reproduce t2_quick --seed 0 --arms full  # one arm

Exits 1 if any arm's accuracy or passes (per epoch) differ from the committed figures.
"""

from __future__ import annotations

import argparse
import sys

from .gekobench.paths import RESULTS
from .gekobench.reproduce import reproduce


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stem", help="result file stem under benchmarks/results, e.g. t3_clean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="*", help="default: every arm that ran the seed")
    args = parser.parse_args(argv)
    rows = reproduce(RESULTS / f"{args.stem}.json", args.seed, args.arms)
    for r in rows:
        (acc0, n0), (acc1, n1) = r["committed"], r["rerun"]
        verdict = "exact (every epoch)" if r["exact"] else "DIFFERS"
        print(
            f"{r['arm']:<28} committed {acc0:.4f} / {n0:>6} passes   rerun {acc1:.4f} / {n1:>6}   {verdict}"
        )
    return 0 if rows and all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
