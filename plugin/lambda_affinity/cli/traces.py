"""`lambda-affinity merge-traces`: one trace, in send order, from a distributed run's per-worker files."""

from __future__ import annotations

import argparse
import os

from ..sim.trace import TraceError, merge, truncation_warning
from .options import add_max_disorder, warn


def add_parser(sub) -> None:
    p = sub.add_parser(
        "merge-traces",
        help="merge --affinity-trace files (one per worker) into one, in send order",
        description="Merge the plugin's trace files (a distributed run writes one per worker) into "
        "one file in send order, streamed.",
    )
    p.add_argument("out", metavar="OUT", help="the merged trace (gzip when it ends in .gz)")
    p.add_argument("traces", nargs="+", metavar="TRACE")
    add_max_disorder(p, "rows may be this many seconds out of send order in each file (default %(default)g)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The same file by another name (./a.csv, a symlink, an absolute path)
    # too: TraceWriter truncates the output before the lazy readers open it.
    out = os.path.realpath(args.out)
    for path in args.traces:
        if os.path.realpath(path) == out or _same_file(path, args.out):
            raise TraceError(args.out, None, f"the output is also an input ({path})")
    stats: list = []
    rows = merge(args.traces, args.out, args.max_disorder, stats)
    for path, st in zip(args.traces, stats, strict=True):  # merge gives one ReadStats per input
        warn("merge-traces", truncation_warning(path, st))
    print(f"wrote {rows} rows from {len(args.traces)} traces to {args.out}")
    return 0


def _same_file(a: str, b: str) -> bool:
    """Whether both names are one existing file (a hard link too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
