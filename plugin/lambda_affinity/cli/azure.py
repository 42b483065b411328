"""`lambda-affinity traces from-azure`: the public Azure Functions 2021 invocation trace as a trace
`simulate --trace` replays (sim.azure_trace; docs/traces.md)."""

from __future__ import annotations

import argparse
import os

from ..files import OutputFileError, check_input_file, check_output_target
from ..platform.distributions import duration_option as duration
from ..sim.azure_trace import DEFAULT_MAX_DISORDER_S, USER_FROM, convert


def add_parser(sub) -> None:
    traces = sub.add_parser(
        "traces",
        help="convert public traces into ones simulate --trace replays",
        description="Convert public invocation traces into traces `simulate --trace` replays (docs/traces.md).",
    )
    kinds = traces.add_subparsers(dest="kind", required=True)
    p = kinds.add_parser(
        "from-azure",
        help="the Azure Functions 2021 invocation trace (app, func, end_timestamp, duration)",
        description="Read the Azure Functions invocation trace 2021 (columns app, func, end_timestamp, duration; "
        "the CSV inside the dataset's .rar, or a part of it, .gz too) and write time,user,function,duration in "
        "arrival order (time = end_timestamp - duration), whole or not at all. Replay it with "
        "`simulate --trace OUT --duration-col duration --function-col function`.",
    )
    p.add_argument("src", metavar="AZURE_CSV")
    p.add_argument("--out", required=True, metavar="FILE", help="the converted trace (gzip when it ends in .gz)")
    p.add_argument("--force", action="store_true", help="replace --out when it exists")
    p.add_argument(
        "--user-from",
        choices=USER_FROM,
        default="function",
        help="the trace has no users: the user column is each row's function (app/func) or its app, an "
        "assumption (docs/traces.md; default %(default)s)",
    )
    p.add_argument(
        "--max-disorder",
        type=duration,
        default=DEFAULT_MAX_DISORDER_S,
        metavar="DURATION",
        help="rows may be this far out of arrival order; they are put back in order (default %(default)g: a day)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_input_file(args.src)
    check_output_target(args.out)
    if os.path.lexists(args.out) and not args.force:
        raise OutputFileError(f"{args.out} exists: give --force to replace it")
    done = convert(args.src, args.out, args.user_from, args.max_disorder)
    span = 0.0 if done.first is None or done.last is None else done.last - done.first
    print(
        f"wrote {done.rows} invocations of {done.functions} functions in {done.apps} apps over {span:.1f} s "
        f"to {args.out} ({done.reordered} rows put back in arrival order, {done.blank_lines} blank lines passed over)"
    )
    return 0
