"""`lambda-affinity logs`: CloudWatch Logs Insights exports of a function's logs into a trace (sim.logs reads them)."""

from __future__ import annotations

import argparse

from ..files import check_output_target
from ..sim.logs import ANONYMOUS, LogStats, read_export
from ..sim.trace_writer import write_trace
from .options import warn


def add_parser(sub) -> None:
    p = sub.add_parser(
        "logs",
        help="turn CloudWatch Logs Insights exports (REPORT and AFFINITY lines) into a trace",
        description="Read Logs Insights exports (CSV or JSON: the console's download or `aws logs "
        "get-query-results`) of a query such as `fields @timestamp, @message, @logStream, @log`: Lambda's "
        "REPORT lines (one call each; `Init Duration` marks a cold start; the log stream is the environment) "
        "and the handler wrapper's AFFINITY lines, into the trace that `simulate --trace` and `calibrate` read "
        "(docs/own-function.md).",
    )
    p.add_argument("exports", nargs="+", metavar="FILE", help="Logs Insights exports (CSV or JSON), '-' for stdin")
    p.add_argument("--out", required=True, metavar="TRACE", help="the trace to write (gzip when it ends in .gz)")
    p.add_argument(
        "--user-col",
        metavar="FIELD",
        help="the export's column naming who made each call (e.g. a userId field of your JSON log lines), "
        "read from any line of the call; without it (and without an AFFINITY line's `session`) every call "
        f"is one user's, {ANONYMOUS!r}",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_target(args.out)  # before reading: a bad target costs no parse
    rows = []
    stats = LogStats()
    for path in args.exports:
        rows.extend(read_export(path, args.user_col, stats))
    rows.sort(key=lambda r: r.send)
    if not rows:
        warn("logs", f"no REPORT or AFFINITY line in {', '.join(args.exports)}: the trace has no rows")
    if rows and stats.without_user == len(rows):
        warn("logs", f"no call names a user: every row is {ANONYMOUS!r}'s (see --user-col)")
    written = write_trace(args.out, rows)
    print(
        f"wrote {written} rows to {args.out} from {stats.records} log events: {stats.reports} REPORT, "
        f"{stats.affinity_lines} AFFINITY, {stats.other_lines} other; {stats.cold} cold starts"
        + (f"; {stats.unmatched_affinity} AFFINITY lines without their REPORT" if stats.unmatched_affinity else "")
    )
    return 0
