"""`lambda-affinity simulate`: synthetic users, or a trace's requests, through the platform model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time

from ..core.reproduce import fresh_seed, reproduce
from ..core.schema import ReplayedTrace, SummaryDoc
from ..core.summary import MissCostPrice, summarize
from ..core.tracker import Tracker
from ..files import STDIN
from ..report.render import rates_line, render_table
from ..sim.simulate import ReplayFileTask, Scenario, check_runs, pool_runs, replay_file_task, run_many
from ..sim.sweep import estimate_cost
from ..sim.trace import TraceOptionError, truncation_warning
from .executors import SMALL_WORK, add_executor_options, executor_from_args, progress_bar
from .managed_options import add_managed_options
from .options import (
    add_function_options,
    add_max_disorder,
    add_miss_cost_options,
    add_model_options,
    add_random_seed,
    add_scenario_options,
    price_from_args,
    scenario_from_args,
    warn,
)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="predict per-user hit rates in virtual time",
        description="Replay user activity (synthetic users, or a trace's requests) against the "
        "platform model in virtual time.",
    )
    add_scenario_options(p)
    p.add_argument("--runs", type=int, default=1, help="independent runs; per-user rates are pooled")
    add_random_seed(p, None, "random seed (default: a fresh one each time)")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of the table")
    t = p.add_argument_group(
        "replay",
        "--trace replays a file's requests open-loop instead of synthetic users "
        "(--users, --think, --duration, --burst, --gap, --start do not apply)",
    )
    t.add_argument(
        "--trace",
        metavar="FILE",
        help="the plugin's --affinity-trace file, or any CSV / JSON-lines "
        "file (.gz too) with a time and a user column (docs/traces.md)",
    )
    t.add_argument(
        "--time-col",
        metavar="NAME",
        help="the time column: epoch seconds, epoch ms or ISO 8601 "
        "(default: the first of send, timestamp, time, @timestamp, "
        "requestTimeEpoch)",
    )
    t.add_argument(
        "--user-col",
        metavar="NAME",
        help="the user or session column (default: the first of user, session, user_id, session_id, userId, sessionId)",
    )
    add_max_disorder(
        t, "rows may be this many seconds out of time order; they are put back in order (default %(default)g)"
    )
    add_model_options(p)
    add_managed_options(p)
    add_function_options(p)
    add_miss_cost_options(p)
    add_executor_options(p, "--runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    price = price_from_args(args)
    scenario = scenario_from_args(args, bool(args.trace))
    args.seed = fresh_seed(args.seed)  # drawn when none was given, and said: the run can be repeated exactly
    started = time.perf_counter()
    read = None
    if args.trace:
        tracker, totals, read = _replay_trace(args, scenario)
    else:
        check_runs(args.runs)
        work = estimate_cost([scenario], args.runs)["invocations"]
        with (
            executor_from_args(args, tasks=args.runs, work=work) as executor,
            progress_bar(f"simulate ({executor.jobs} jobs)", "runs", total=args.runs) as progress,
        ):
            tracker, totals = run_many(scenario, runs=args.runs, seed=args.seed, executor=executor, progress=progress)
    elapsed = time.perf_counter() - started
    doc = _summary(tracker, price, read)
    deploying = bool(scenario.deploy_every or scenario.deploy_at)
    if deploying:
        doc["deploys"] = totals["deploys"]
    if scenario.function.provisioned_concurrency:
        doc["spillover"] = totals["spillover"]
    if args.json:
        options = {"runs": args.runs, "trace": args.trace, "time_col": args.time_col, "user_col": args.user_col}
        options["max_disorder"] = args.max_disorder
        doc["reproduce"] = reproduce("simulate", args.seed, options, dataclasses.asdict(scenario))
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    _print_table(doc, tracker, read)
    deploys = f", {totals['deploys']} deploys" if deploying else ""
    deploys += f", {totals['spillover']} spilled over" if scenario.function.provisioned_concurrency else ""
    print(
        f"{totals['invocations']} invocations, {totals['throttled']} throttled{deploys}, simulated in {elapsed:.2f} s"
    )
    print(f"random seed {args.seed} (--random-seed {args.seed} repeats this run)")
    return 0


def _summary(tracker: Tracker, price: MissCostPrice, read: ReplayedTrace | None) -> SummaryDoc:
    doc = summarize(
        tracker.rows(), tracker.environments, per_miss_ms=price.per_miss_ms, per_miss_usd=price.per_miss_usd
    )
    if read is not None:
        doc["trace"] = read
    return doc


def _print_table(doc: SummaryDoc, tracker: Tracker, read: ReplayedTrace | None) -> None:
    rows = tracker.rows()
    print(render_table(doc, title="Simulated Lambda affinity"))
    if len(rows) <= 50:
        print(rates_line(rows))
    if read is not None:
        print(
            f"replayed {read['path']}: {read['rows']} requests over {read['span_s']:.1f} s "
            f"({read['blank_lines']} blank lines passed over, {read['reordered']} rows put back in time order)"
        )


def _replay_trace(args: argparse.Namespace, scenario: Scenario) -> tuple:
    """Each run reads the file again (streamed), its users prefixed `r{n}-` when pooled."""
    check_runs(args.runs)
    if args.trace == STDIN and args.runs > 1:
        raise TraceOptionError("--trace -: standard input can be read once: give --runs 1, or a file")
    base = random.Random(args.seed)
    tasks = [
        ReplayFileTask(
            args.trace,
            args.time_col,
            args.user_col,
            args.max_disorder,
            scenario,
            base.getrandbits(64),
            f"r{r}-" if args.runs > 1 else "",
        )
        for r in range(args.runs)
    ]
    # a trace's size is not known before reading it: more than one run is worth the workers
    with executor_from_args(args, tasks=args.runs, work=SMALL_WORK * (args.runs > 1)) as executor:
        results = executor.map(replay_file_task, tasks)
    tracker, totals = pool_runs(res for res, _ in results)
    stats = results[-1][1]
    read: ReplayedTrace = {
        "path": args.trace,
        "rows": stats.rows,
        "blank_lines": stats.blank_lines,
        "reordered": stats.reordered,
        "span_s": stats.span_s,
        "truncated": stats.truncated,
    }
    warn("simulate", truncation_warning(args.trace, stats))
    return tracker, totals, read
