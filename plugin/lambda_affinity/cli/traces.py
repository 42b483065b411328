"""`lambda-affinity merge-traces`: one trace, in send order, from a distributed run's per-worker files."""

from __future__ import annotations

import argparse
import os

from ..files import OutputFileError, check_input_file, check_output_target
from ..sim.trace import TraceError, merge, truncation_warning
from .options import add_max_disorder, warn


def add_parser(sub) -> None:
    p = sub.add_parser(
        "merge-traces",
        help="merge --affinity-trace files (one per worker) into one, in send order",
        description="Merge the plugin's trace files (a distributed run writes one per worker) into "
        "one file in send order, streamed, written whole or not at all. The output is --out; "
        "the older form OUT TRACE... still works when OUT does not exist yet.",
    )
    p.add_argument("traces", nargs="+", metavar="TRACE")
    p.add_argument("--out", metavar="FILE", help="the merged trace (gzip when it ends in .gz)")
    p.add_argument("--force", action="store_true", help="replace --out when it exists")
    add_max_disorder(p, "rows may be this many seconds out of send order in each file (default %(default)g)")
    p.set_defaults(func=run)


def output_and_inputs(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(out, traces): --out, or the older form's first argument, which must not exist (`merge-traces
    dt.w*.csv` with OUT forgotten would otherwise overwrite worker 0's trace)."""
    if args.out is not None:
        return args.out, list(args.traces)
    if len(args.traces) < 2:
        raise OutputFileError("no output: name it with --out FILE")
    out, traces = args.traces[0], list(args.traces[1:])
    if os.path.lexists(out):
        raise OutputFileError(
            f"{out} exists: the first argument is read as the output (the older form OUT TRACE...); "
            "name the output with --out FILE (and --force to replace it)"
        )
    warn("merge-traces", f"the output as first argument is the older form: use --out {out}")
    return out, traces


def run(args: argparse.Namespace) -> int:
    out, traces = output_and_inputs(args)
    # Every input, then the output, before anything is read or written
    for path in traces:
        check_input_file(path)
    check_output_target(out)
    if os.path.lexists(out) and not args.force:
        raise OutputFileError(f"{out} exists: give --force to replace it")
    # The same file by another name (./a.csv, a symlink, a hard link) too
    real = os.path.realpath(out)
    for path in traces:
        if os.path.realpath(path) == real or _same_file(path, out):
            raise TraceError(out, None, f"the output is also an input ({path})")
    stats: list = []
    rows = merge(traces, out, args.max_disorder, stats)
    for path, st in zip(traces, stats, strict=True):  # merge gives one ReadStats per input
        warn("merge-traces", truncation_warning(path, st))
    print(f"wrote {rows} rows from {len(traces)} traces to {out}")
    return 0


def _same_file(a: str, b: str) -> bool:
    """Whether both names are one existing file (a hard link too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
