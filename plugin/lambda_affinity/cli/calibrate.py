"""`lambda-affinity calibrate`: fit the platform model to traces (sim.calibrate fits it)."""

from __future__ import annotations

import argparse
import json
import sys

from ..core.reproduce import reproduce
from ..files import check_input_file, check_output_target, write_text
from ..platform.distributions import parse_distribution
from ..sim import calibrate, calibrate_report
from ..sim.simulate import Scenario
from .executors import add_executor_options, executor_from_args, progress_bar
from .options import add_max_disorder, add_random_seed, warn


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit the platform model to traces with env_ids (--affinity-trace)",
        description="Replay the traces' arrivals through candidate models and keep the one whose "
        "max-share, warm-cache rate, environments and cold starts match best "
        "(docs/traces.md).",
    )
    p.add_argument("traces", nargs="+", metavar="TRACE", help="--affinity-trace files; each an independent run")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write the fitted `model:` mapping (YAML) for simulate --model, "
        "the emulator's config or --affinity-emulator-config",
    )
    p.add_argument("--json", action="store_true", help="print the fit, every candidate and the notes as JSON")
    p.add_argument(
        "--latency",
        default="0",
        help="network round trip added to each replayed call, seconds (default 0: send times as arrivals)",
    )
    p.add_argument(
        "--service", default=Scenario().service, help="time on the environment per call, seconds (default %(default)s)"
    )
    p.add_argument("--replays", type=int, default=None, help="replays per candidate (default: 5-30, by trace size)")
    add_random_seed(p, 1, "random seed (default %(default)s)")
    add_max_disorder(p, "rows may be this many seconds out of send order (default %(default)g)")
    p.add_argument(
        "--no-screen",
        dest="screen",
        action="store_false",
        help="give every candidate all its replays (by default those clearly out after two stop there)",
    )
    add_executor_options(p, "replay the candidates")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    parse_distribution(args.latency, "latency")
    parse_distribution(args.service, "service")
    calibrate.check_replays(args.replays)  # before the traces are read
    for path in args.traces:
        check_input_file(path)
    if args.out:
        check_output_target(args.out)  # a folder, a device: refused before minutes of fitting
    measurement = calibrate.measure(args.traces, args.max_disorder)
    for message in measurement.warnings:
        warn("calibrate", message)
    rows = sum(len(a) for a in measurement.arrivals)
    replays = args.replays or calibrate.default_replays(measurement)
    work = rows * replays * calibrate.CANDIDATES_ABOUT
    with (
        executor_from_args(args, tasks=replays, work=work) as executor,
        progress_bar(
            f"calibrate ({executor.jobs} jobs)",
            "replays",
            f"calibrate: {rows:,} requests x {replays} replays x up to {calibrate.CANDIDATES_ABOUT} candidates "
            f"(fewer once screened): at most {work / 1e6:,.0f} M replayed requests",
        ) as progress,
    ):
        result = calibrate.calibrate(
            measurement,
            latency=args.latency,
            service=args.service,
            replays=args.replays,
            seed=args.seed,
            executor=executor,
            progress=progress,
            screen=args.screen,
        )
    if args.out:
        write_text(args.out, calibrate_report.to_yaml(result))
    if args.json:
        options = {"traces": args.traces, "latency": args.latency, "service": args.service, "replays": args.replays}
        options["max_disorder"] = args.max_disorder
        doc = {**calibrate_report.to_json(result), "reproduce": reproduce("calibrate", args.seed, options)}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(calibrate_report.render(result))
        print(f"random seed {args.seed} (--random-seed {args.seed} repeats this fit)")
        if args.out:
            print(f"wrote {args.out}")
    return 0
