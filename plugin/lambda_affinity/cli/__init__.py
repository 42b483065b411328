"""The `lambda-affinity` command: one subcommand per part."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from ..aws import deploy
from ..emulator import cli as emulator_cli
from ..platform import POLICIES, ConfigError, ModelConfig

# (option, ModelConfig field, type): model options default to None, so only
# those given override `--model FILE` (or the defaults).
_MODEL_OPTIONS = (
    ("--policy", "policy", str),
    ("--routers", "routers", int),
    ("--router-policy", "router_policy", str),
    ("--init-delay", "init_delay_s", float),
    ("--busy-overhead", "busy_overhead_s", float),
    ("--keep-alive", "keep_alive_s", float),
    ("--max-lifetime", "max_lifetime_s", float),
    ("--account-concurrency", "account_concurrency", int),
    ("--max-environments", "max_environments", int),
    ("--scale-limit", "scale_limit", int),
    ("--scale-window", "scale_window_s", float),
)


def _add_random_seed(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    """--random-seed ("seed" alone is the article's experiment here); --seed,
    its earlier name, still works and is not listed."""
    p.add_argument("--random-seed", dest="seed", type=int, default=default, metavar="N", help=help)
    p.add_argument("--seed", dest="seed", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _add_model_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The platform model's options; returns their actions (a sweep may vary each)."""
    d = ModelConfig()
    g = p.add_argument_group(
        "platform model",
        "defaults: the calibrated model (docs/model.md), or --model FILE's; an option given here overrides either",
    )
    return [
        g.add_argument(
            "--model",
            metavar="FILE",
            help="a YAML file with a `model:` mapping: `lambda-affinity "
            "calibrate --out`'s, or an emulator config (docs/traces.md)",
        ),
        g.add_argument(
            "--policy", choices=POLICIES, help=f"placement of invocations on idle environments (default {d.policy})"
        ),
        g.add_argument("--routers", type=int, help=f"routers for the partitioned policy (default {d.routers})"),
        g.add_argument("--router-policy", choices=("mru", "lru", "random"), help="placement inside each router"),
        g.add_argument(
            "--init-delay",
            type=float,
            metavar="S",
            help=f"modelled cold-start delay, seconds (default {d.init_delay_s})",
        ),
        g.add_argument(
            "--busy-overhead",
            type=float,
            metavar="S",
            help=f"time an environment stays reserved after each reply, seconds (default {d.busy_overhead_s:g})",
        ),
        g.add_argument(
            "--keep-alive", type=float, metavar="S", help=f"idle keep-alive, seconds (default {d.keep_alive_s:g})"
        ),
        g.add_argument(
            "--max-lifetime",
            type=float,
            metavar="S",
            help=f"maximum environment lifetime, seconds (default {d.max_lifetime_s:g})",
        ),
        g.add_argument("--account-concurrency", type=int, help="account concurrency limit"),
        g.add_argument("--max-environments", type=int, default=None, help="cap on live environments"),
        g.add_argument(
            "--scale-limit",
            type=int,
            help=f"new environments per function per --scale-window (default {d.scale_limit})",
        ),
        g.add_argument(
            "--scale-window",
            type=float,
            metavar="S",
            help=f"window of --scale-limit, seconds (default {d.scale_window_s:g})",
        ),
    ]


def _model_from_args(args: argparse.Namespace) -> ModelConfig:
    base = load_model_file(args.model).model if args.model else ModelConfig()
    given = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _ in _MODEL_OPTIONS}
    return base.replace(**{k: v for k, v in given.items() if v is not None})


def load_model_file(path: str):
    """The emulator's config reader, so a file `simulate --model` takes is one
    the emulator and --affinity-emulator-config take, and the other way round."""
    from ..emulator.config import ConfigFileError, load_config

    try:
        return load_config(path)
    except ConfigFileError as exc:
        raise ConfigError(f"--model {exc}") from None


def _add_scenario_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """Synthetic users' options, shared by simulate and sweep; returns their
    actions (a sweep may vary each). Distributions have metavar DIST."""
    from ..sim.simulate import Scenario

    d = Scenario()
    return [
        p.add_argument("--users", type=int, default=d.users),
        p.add_argument("--duration", type=float, default=d.duration_s, metavar="S", help="seconds users keep sending"),
        p.add_argument(
            "--think",
            default=d.think,
            metavar="DIST",
            help="think time: A:B uniform seconds, exp:MEAN, or fixed seconds (default %(default)s)",
        ),
        p.add_argument("--burst", type=int, default=d.burst, help="requests per session (0: one endless session)"),
        p.add_argument(
            "--gap",
            default=d.gap,
            metavar="DIST",
            help="pause between sessions, same forms as --think (default %(default)s)",
        ),
        p.add_argument(
            "--start", choices=("together", "spread"), default=d.start, help="all users at t=0, or after a first think"
        ),
        p.add_argument(
            "--latency",
            metavar="DIST",
            help=f"network round trip, seconds (default {d.latency}; with --trace 0: its times are "
            "taken as arrivals at Lambda's front end; or --model FILE's network_latency)",
        ),
        p.add_argument(
            "--service",
            metavar="DIST",
            help=f"time on the environment per invocation, seconds (default {d.service}, or "
            "--model FILE's service_time)",
        ),
    ]


def _add_miss_cost_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "cost of a miss",
        "price the warm-cache rate: time and money the cache saves per million requests (docs/sweep.md)",
    )
    g.add_argument(
        "--miss-cost-ms",
        type=float,
        metavar="MS",
        help="time a cache miss costs the handler, ms (e.g. a DynamoDB read)",
    )
    g.add_argument("--miss-cost-usd", type=float, metavar="USD", help="money a cache miss costs, USD")


def _scenario_from_args(args: argparse.Namespace, trace: bool = False):
    """The Scenario simulate's (and each sweep point's) options name."""
    from ..sim.simulate import Scenario

    latency, service = _timing(args, trace)
    return Scenario(
        users=args.users,
        duration_s=args.duration,
        think=args.think,
        burst=args.burst,
        gap=args.gap,
        start=args.start,
        latency=latency,
        service=service,
        model=_model_from_args(args),
    )


def _simulate_parser(sub) -> None:
    from ..sim.trace import DEFAULT_MAX_DISORDER_S

    p = sub.add_parser(
        "simulate",
        help="predict per-user hit rates in virtual time",
        description="Replay user activity (synthetic users, or a trace's requests) against the "
        "platform model in virtual time.",
    )
    _add_scenario_options(p)
    p.add_argument("--runs", type=int, default=1, help="independent runs; per-user rates are pooled")
    _add_random_seed(p, None, "random seed (default: a fresh one each time)")
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
    t.add_argument(
        "--max-disorder",
        type=float,
        default=DEFAULT_MAX_DISORDER_S,
        metavar="S",
        help="rows may be this many seconds out of time order; they are put back in order (default %(default)g)",
    )
    _add_model_options(p)
    _add_miss_cost_options(p)
    p.set_defaults(func=_cmd_simulate)


def _timing(args: argparse.Namespace, trace: bool) -> tuple[str, str]:
    """--latency and --service: given, else the model file's, else the defaults."""
    from ..sim.simulate import Scenario

    d = Scenario()
    emulator = load_model_file(args.model) if args.model else None
    latency = args.latency or (emulator and emulator.network_latency) or ("0" if trace else d.latency)
    service = args.service or (emulator and emulator.service_time) or d.service
    return latency, service


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ..core.summary import check_miss_cost, summarize
    from ..report.render import rates_line, render_table
    from ..sim.simulate import run_many

    check_miss_cost(args.miss_cost_ms, args.miss_cost_usd)
    scenario = _scenario_from_args(args, bool(args.trace))
    started = time.perf_counter()
    read = None
    if args.trace:
        tracker, totals, read = _replay_trace(args, scenario)
    else:
        tracker, totals = run_many(scenario, runs=args.runs, seed=args.seed)
    elapsed = time.perf_counter() - started
    rows = tracker.rows()
    doc = summarize(rows, tracker.environments, per_miss_ms=args.miss_cost_ms, per_miss_usd=args.miss_cost_usd)
    if read is not None:
        doc["trace"] = read
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(render_table(doc, title="Simulated Lambda affinity"))
    if len(rows) <= 50:
        print(rates_line(rows))
    if read is not None:
        print(
            f"replayed {read['path']}: {read['rows']} requests over {read['span_s']:.1f} s "
            f"({read['blank_lines']} blank lines passed over, {read['reordered']} rows put back in time order)"
        )
    print(f"{totals['invocations']} invocations, {totals['throttled']} throttled, simulated in {elapsed:.2f} s")
    return 0


def _replay_trace(args: argparse.Namespace, scenario) -> tuple:
    """Each run reads the file again (streamed), its users prefixed `r{n}-` when pooled."""
    import random

    from ..core.schema import ReplayedTrace
    from ..core.tracker import Tracker
    from ..sim.simulate import replay
    from ..sim.trace import ReadStats, read_arrivals, truncation_warning

    if args.runs < 1:
        raise ValueError("runs: must be >= 1")
    tracker, base = Tracker(), random.Random(args.seed)
    totals = {"invocations": 0, "cold_starts": 0, "throttled": 0}
    for r in range(args.runs):
        stats = ReadStats()
        arrivals = read_arrivals(args.trace, args.time_col, args.user_col, args.max_disorder, stats)
        res = replay(
            arrivals,
            scenario,
            seed=base.getrandbits(64),
            tracker=tracker,
            user_prefix=f"r{r}-" if args.runs > 1 else "",
        )
        for key in totals:
            totals[key] += getattr(res, key)
    read: ReplayedTrace = {
        "path": args.trace,
        "rows": stats.rows,
        "blank_lines": stats.blank_lines,
        "reordered": stats.reordered,
        "span_s": stats.span_s,
        "truncated": stats.truncated,
    }
    _warn("simulate", truncation_warning(args.trace, stats))
    return tracker, totals, read


def _sweep_parser(sub) -> None:
    from ..sim.sweep import MAX_POINTS, SPREADS

    p = sub.add_parser(
        "sweep",
        help="vary one scenario option over a list or range; chart the rates against it",
        description="Simulate a scenario (options as simulate) at each value of one factor, --runs "
        "times each, and write sweep.csv, sweep.json, sweep.html and sweep.svg: max-share, "
        "warm-cache rate and cold starts per request against the factor, with the "
        "spread across runs (docs/sweep.md).",
    )
    p.add_argument(
        "--vary",
        required=True,
        metavar="NAME=VALUES",
        help="the factor, a simulate option without its dashes, and its values: a list (users=1,10,100; "
        "policy=mru,partitioned; model=a.yaml,b.yaml) or a range: START..STOP:step:S, "
        f"START..STOP:lin:N, START..STOP:log:N (users=1..1000:log:7); at most {MAX_POINTS} points",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the four files (made if missing)")
    p.add_argument("--runs", type=int, default=3, help="runs per point, each with its own seed (default %(default)s)")
    _add_random_seed(
        p, 1, "base random seed; run r's seed derives from it and is the same at every point (default %(default)s)"
    )
    p.add_argument(
        "--spread",
        choices=SPREADS,
        default="minmax",
        help="the band around each mean: min..max over runs, or mean +- one sd (default %(default)s)",
    )
    p.add_argument(
        "--max-invocations",
        type=float,
        default=20e6,
        metavar="N",
        help="refuse a sweep estimated above N simulated invocations (default %(default).0f)",
    )
    factors = _add_scenario_options(p) + _add_model_options(p)
    _add_miss_cost_options(p)
    p.set_defaults(func=_cmd_sweep, factor_actions=factors)


def _sweep_factors(actions: list[argparse.Action]) -> dict:
    """name -> (sweep.Factor, argparse dest), from the options themselves:
    `keep-alive`, and the model field (`keep-alive-s`) as an alias."""
    from ..sim.sweep import Factor

    fields = {flag: field for flag, field, _ in _MODEL_OPTIONS}
    out = {}
    for action in actions:
        flag = action.option_strings[0]
        kind = (
            "int"
            if action.type is int
            else "float"
            if action.type is float
            else "distribution"
            if action.metavar == "DIST"
            else "text"
        )
        factor = Factor(flag[2:], kind, tuple(action.choices) if action.choices else None)
        for name in {flag[2:], fields.get(flag, flag[2:]).replace("_", "-")}:
            out[name] = (factor, action.dest)
    return out


def _cmd_sweep(args: argparse.Namespace) -> int:
    import copy
    import dataclasses

    from ..core.summary import check_miss_cost
    from ..sim import sweep

    check_miss_cost(args.miss_cost_ms, args.miss_cost_usd)
    if args.runs < 1:
        raise ValueError("runs: must be >= 1")
    known = _sweep_factors(args.factor_actions)
    vary = sweep.parse_vary(args.vary, {name: factor for name, (factor, _) in known.items()})
    dest = known[vary.factor.name][1]
    base = _scenario_from_args(args)
    scenarios = []
    for value, label in zip(vary.values, vary.labels, strict=True):
        point = copy.copy(args)
        setattr(point, dest, value)
        try:
            scenarios.append(_scenario_from_args(point))
            scenarios[-1].validate()
        except (ConfigError, ValueError) as exc:
            raise ValueError(f"--vary {vary.factor.name}={label}: {exc}") from None
    cost = sweep.estimate_cost(scenarios, args.runs)

    def say(message: str) -> None:
        print(f"lambda-affinity sweep: {message}", file=sys.stderr, flush=True)

    say(
        f"{cost['points']} points x {cost['runs']} runs: {cost['user_seconds']:,.0f} user-seconds "
        f"(users x duration), about {cost['invocations']:,.0f} invocations"
    )
    if not 0 <= cost["invocations"] <= args.max_invocations:
        raise ValueError(
            f"about {cost['invocations']:,.0f} invocations estimated, over --max-invocations "
            f"{args.max_invocations:,.0f}: fewer points, runs or users, a shorter --duration, "
            "or a higher --max-invocations"
        )
    started = time.perf_counter()
    points = sweep.sweep(vary, scenarios, args.runs, args.seed, args.miss_cost_ms, args.miss_cost_usd, progress=say)
    elapsed = time.perf_counter() - started
    description = _sweep_description(args, vary, base, dest)
    chart = sweep.rates_chart(vary, points, f"lambda-affinity sweep: {vary.factor.name}", args.spread, args.runs)
    base_doc = dataclasses.asdict(base)
    # each point has its own value of the factor: the base's is left out
    model_fields = {flag[2:].replace("-", "_"): field for flag, field, _ in _MODEL_OPTIONS}
    if dest in model_fields:
        base_doc["model"].pop(model_fields[dest])
    else:
        base_doc.pop(_SCENARIO_FIELDS.get(dest, dest), None)
    from ..report.charts import render_svg

    files = {
        "sweep.csv": sweep.to_csv(vary, points),
        "sweep.json": sweep.to_json(
            vary,
            points,
            runs=args.runs,
            base_seed=args.seed,
            spread=args.spread,
            scenario=base_doc,
            cost=cost,
            per_miss_ms=args.miss_cost_ms,
            per_miss_usd=args.miss_cost_usd,
        ),
        "sweep.html": sweep.html_report(vary, points, chart, description, args.spread, args.runs),
        # a file viewed on its own (an <img>, GitHub's dark mode) has no page colour to take: paint a light one
        "sweep.svg": render_svg(chart, theme="light") + "\n",
    }
    os.makedirs(args.out, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    print(sweep.render_points(vary, points, args.spread))
    print(
        f"{description}\nwrote {', '.join(os.path.join(args.out, n) for n in files)} "
        f"({cost['points'] * cost['runs']} runs simulated in {elapsed:.1f} s)"
    )
    return 0


# simulate option dest -> Scenario field, where they differ
_SCENARIO_FIELDS = {"duration": "duration_s"}


def _sweep_description(args: argparse.Namespace, vary, base, dest: str) -> str:
    """The sweep in a sentence: the factor's values, then the rest of the scenario (the factor left out)."""
    m = base.model
    parts = (
        ("users", f"{base.users} users"),
        ("duration", f"{base.duration_s:g} s"),
        ("think", f"think {base.think}"),
        ("burst", f"bursts of {base.burst} with gap {base.gap}" if base.burst else ""),
        ("start", f"start {base.start}"),
        ("latency", f"round trip {base.latency}"),
        ("service", f"service {base.service}"),
        (
            "policy",
            f"policy {m.policy}"
            + (f" ({m.routers} routers, {m.router_policy} in each)" if m.policy == "partitioned" else ""),
        ),
        ("keep_alive", f"keep-alive {m.keep_alive_s:g} s"),
        ("busy_overhead", f"busy overhead {m.busy_overhead_s:g} s"),
        ("model", f"--model {args.model}" if args.model else ""),
    )
    rest = ", ".join(text for name, text in parts if text and name != dest)
    return f"{vary.factor.name} = {', '.join(vary.labels)}; {rest}. {args.runs} runs per point (base seed {args.seed})."


def _calibrate_parser(sub) -> None:
    from ..sim.simulate import Scenario
    from ..sim.trace import DEFAULT_MAX_DISORDER_S

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
    _add_random_seed(p, 1, "random seed (default %(default)s)")
    p.add_argument(
        "--max-disorder",
        type=float,
        default=DEFAULT_MAX_DISORDER_S,
        metavar="S",
        help="rows may be this many seconds out of send order (default %(default)g)",
    )
    p.set_defaults(func=_cmd_calibrate)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from ..platform.distributions import parse_distribution
    from ..sim import calibrate

    parse_distribution(args.latency, "latency")
    parse_distribution(args.service, "service")
    if args.replays is not None and args.replays < 2:
        raise ValueError("replays: must be >= 2 (a run-to-run spread needs two)")
    measurement = calibrate.measure(args.traces, args.max_disorder)
    for message in measurement.warnings:
        _warn("calibrate", message)
    result = calibrate.calibrate(
        measurement, latency=args.latency, service=args.service, replays=args.replays, seed=args.seed
    )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(calibrate.to_yaml(result))
    if args.json:
        json.dump(calibrate.to_json(result), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(calibrate.render(result))
        if args.out:
            print(f"wrote {args.out}")
    return 0


def _merge_parser(sub) -> None:
    from ..sim.trace import DEFAULT_MAX_DISORDER_S

    p = sub.add_parser(
        "merge-traces",
        help="merge --affinity-trace files (one per worker) into one, in send order",
        description="Merge the plugin's trace files (a distributed run writes one per worker) into "
        "one file in send order, streamed.",
    )
    p.add_argument("out", metavar="OUT", help="the merged trace (gzip when it ends in .gz)")
    p.add_argument("traces", nargs="+", metavar="TRACE")
    p.add_argument(
        "--max-disorder",
        type=float,
        default=DEFAULT_MAX_DISORDER_S,
        metavar="S",
        help="rows may be this many seconds out of send order in each file (default %(default)g)",
    )
    p.set_defaults(func=_cmd_merge)


def _cmd_merge(args: argparse.Namespace) -> int:
    from ..sim.trace import merge, truncation_warning

    # The same file by another name (./a.csv, a symlink, an absolute path)
    # too: TraceWriter truncates the output before the lazy readers open it.
    out = os.path.realpath(args.out)
    for path in args.traces:
        if os.path.realpath(path) == out or _same_file(path, args.out):
            raise ValueError(f"{args.out}: the output is also an input ({path})")
    stats: list = []
    rows = merge(args.traces, args.out, args.max_disorder, stats)
    for path, st in zip(args.traces, stats, strict=True):  # merge gives one ReadStats per input
        _warn("merge-traces", truncation_warning(path, st))
    print(f"wrote {rows} rows from {len(args.traces)} traces to {args.out}")
    return 0


def _warn(command: str, message: str | None) -> None:
    """A warning on stderr: the result stands, but the user should know."""
    if message:
        print(f"lambda-affinity {command}: warning: {message}", file=sys.stderr)


def _same_file(a: str, b: str) -> bool:
    """Whether both names are one existing file (a hard link too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lambda-affinity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_parser(sub)
    _sweep_parser(sub)
    _calibrate_parser(sub)
    _merge_parser(sub)
    emulator_cli.add_parser(sub)
    deploy.add_parser(sub)
    # Listed for --help; main() hands its arguments to Locust untouched.
    sub.add_parser(
        "locust",
        help="run Locust with the lambda-affinity plugin loaded, so its --affinity-* "
        "options work and show in `lambda-affinity locust --help`",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["locust"]:
        # Imported only here: Locust's gevent patching must come before
        # anything else loads ssl or threading.
        from .. import locust_plugin

        return locust_plugin.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as exc:
        parser.exit(2, f"lambda-affinity {args.command}: error: {exc}\n")
    return 0
