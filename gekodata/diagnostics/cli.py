"""Command line: ``python -m gekodata {map,report} STATE``.

``STATE`` is a file written by :meth:`GEKOStateStore.save` or :meth:`WeightedBucketSampler.save`.

* ``python -m gekodata map STATE -o map.png [--title T] [--max-points N]``: the data map
  (confidence vs variability per sample, coloured by bucket), see :mod:`gekodata.diagnostics.datamap`.
* ``python -m gekodata report STATE [--json]``: sample, visit and bucket counts of the store; for
  sampler files also the per-epoch efficiency table and the saved fraction.

Bad input (missing file, another file format, no matplotlib for ``map``) prints one line
``gekodata: error: ...`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import datamap


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gekodata",
        description="Inspect a saved gekodata state (GEKOStateStore.save or WeightedBucketSampler.save file).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p_map = sub.add_parser(
        "map",
        help="write a data map PNG: confidence vs variability per sample, coloured by bucket",
        description="Data map (Dataset Cartography style) from the online store, no extra passes. "
        "variability = min(confidence * loss_std, 0.5), the delta-method std of "
        "p = exp(-loss). Unseen samples are left out; above --max-points seen samples a "
        "fixed-seed uniform subsample is drawn. Needs matplotlib (gekodata[plot]).",
    )
    p_map.add_argument("state", metavar="STATE", help="store or sampler file (.safetensors)")
    p_map.add_argument("-o", "--output", required=True, metavar="PNG", help="PNG file to write")
    p_map.add_argument("--title", default=None, help="figure title")
    p_map.add_argument(
        "--max-points",
        type=_positive_int,
        default=datamap.DEFAULT_MAX_POINTS,
        metavar="N",
        help=f"most points drawn (default {datamap.DEFAULT_MAX_POINTS:,})",
    )
    p_report = sub.add_parser(
        "report",
        help="print sample, visit and bucket counts (and the efficiency table of sampler files)",
        description="Summary of a saved state: samples, seen, visits, bucket counts and shares, pruned, "
        "mean confidence/correctness; for sampler files the per-epoch efficiency table.",
    )
    p_report.add_argument("state", metavar="STATE", help="store or sampler file (.safetensors)")
    p_report.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _error(message: str) -> int:
    first = " ".join(str(message).split())  # one line
    print(f"gekodata: error: {first}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Usage errors exit through argparse (``SystemExit(2)``); unreadable or foreign files and a
    missing matplotlib return 2 after a one-line message on stderr.
    """
    args = build_parser().parse_args(None if argv is None else list(argv))
    try:
        loaded = datamap.load_state(args.state)
    except FileNotFoundError:
        return _error(f"{args.state}: no such file")
    except IsADirectoryError:
        return _error(f"{args.state}: is a directory, not a state file")
    except (OSError, ValueError) as exc:
        return _error(str(exc))
    if args.command == "map":
        try:
            points = datamap.plot_data_map(
                loaded.store, args.output, title=args.title, max_points=args.max_points
            )
        except ImportError as exc:
            return _error(str(exc))
        except OSError as exc:
            return _error(f"{args.output}: cannot write ({exc.strerror or exc})")
        note = f" (uniform subsample of {points.num_seen:,})" if points.subsampled else ""
        print(
            f"wrote {args.output}: {len(points.index):,} points{note}, "
            f"{points.num_unseen:,} unseen samples not shown"
        )
        return 0
    summary = datamap.summarize(loaded)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(datamap.format_summary(summary, loaded.report))
    return 0


__all__: list[str] = ["build_parser", "main"]
